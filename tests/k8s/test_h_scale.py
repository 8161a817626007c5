"""Worker groups in and out with `helm upgrade` (issue #16, docs/operations.md "Scaling worker
groups"): adding a group to `workers` runs the post-upgrade rebalance Job, which waits until
Patroni registered the group and moves its share of the shards to it; removing one runs the
pre-upgrade drain Job (every placement moved off while the group still runs), then the
post-upgrade remove Job (once the deleted StatefulSet's pods are gone, the group leaves
pg_dist_node). A drain Citus cannot do without blocking writes fails the upgrade and leaves
the group running and holding its shards. The tests run in order on one release."""
import pytest
import yaml

from conftest import CHART, wait_for

NS = "citus-scale"
CLUSTER = "citusscale"
SHARDS = 30
ROWS = 3000
PLACEMENTS = ("SELECT pl.groupid, count(*) FROM pg_dist_placement pl JOIN pg_dist_shard s USING "
              "(shardid) WHERE s.logicalrelid = 'items'::regclass GROUP BY pl.groupid")


def values(kube, groups):
    path = kube.state / f"values-scale-{'-'.join(map(str, groups))}.yaml"
    path.write_text(yaml.safe_dump({
        "clusterName": CLUSTER, "coordinator": {"replicas": 1},
        "workers": [{"citusGroup": str(g), "citusType": "worker", "replicas": 1} for g in groups]}))
    return str(path)


def upgrade(kube, groups, check=True):
    return kube.helm("upgrade", "citus", str(CHART), "-n", NS, "-f", values(kube, groups),
                     "--timeout", "15m", check=check)


def job_log(kube, job):
    pods = kube.pods(NS, f"job-name={CLUSTER}-{job}")
    assert pods, f"no pod of Job {CLUSTER}-{job}"
    return kube.pod_log(NS, pods[-1]["metadata"]["name"])


class Release:
    def __init__(self, kube):
        self.kube = kube
        self.pw = kube.secret_data(NS, CLUSTER)["superuser-password"]

    def sql(self, query):
        coord = self.kube.wait_leaders(NS, CLUSTER, [0], 120)[0][0]
        return self.kube.sql(coord, query, self.pw, sslmode="require")

    def placements(self):
        return dict(self.sql(PLACEMENTS))


@pytest.fixture(scope="module")
def release(kube):
    kube.helm("install", "citus", str(CHART), "-n", NS, "--create-namespace", "-f",
              values(kube, [1, 2]), "--timeout", "15m")
    try:
        kube.wait_leaders(NS, CLUSTER, [0, 1, 2], 600)
        r = Release(kube)
        wait_for("both worker groups registered", lambda: r.sql(
            "SELECT count(*) FROM pg_dist_node WHERE groupid > 0 AND isactive")[0][0] == 2, 120)
        r.sql("CREATE TABLE items (id bigint PRIMARY KEY, note text)")
        r.sql(f"SELECT create_distributed_table('items', 'id', shard_count => {SHARDS})")
        r.sql(f"INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, {ROWS}) g")
        yield r
    finally:
        kube.remove_release(NS)


def test_upgrade_without_a_new_group_runs_no_scaling_job(kube, release):
    upgrade(kube, [1, 2])
    assert not kube.pods(NS, "app.kubernetes.io/component=scale")


def test_a_new_group_takes_its_share(kube, release):
    before = release.placements()
    assert sorted(before) == [1, 2]
    upgrade(kube, [1, 2, 3])
    log = job_log(kube, "rebalance")
    print(log)
    assert "rebalance finished" in log or "nothing to move" in log, log
    assert release.sql("SELECT count(*) FROM pg_dist_node WHERE groupid = 3 AND isactive "
                       "AND noderole = 'primary'") == [(1,)]
    per_group = release.placements()
    assert sorted(per_group) == [1, 2, 3], per_group
    even = SHARDS / 3
    for g, n in per_group.items():
        assert abs(n - even) <= 0.1 * even, f"group {g}: {n} placements of {SHARDS}"
    assert release.sql("SELECT count(*) FROM items") == [(ROWS,)]


def test_a_drain_citus_cannot_do_fails_the_upgrade_and_deletes_nothing(kube, release):
    release.sql("CREATE TABLE no_identity (id bigint, note text)")
    release.sql("SELECT create_distributed_table('no_identity', 'id', shard_count => 6, "
                "colocate_with => 'none')")
    before = release.placements()
    res = upgrade(kube, [1, 2], check=False)
    print(res.stdout)
    assert res.returncode != 0, res.stdout
    assert "pre-upgrade" in res.stdout and f"{CLUSTER}-drain" in res.stdout, res.stdout
    log = job_log(kube, "drain")
    assert "no_identity" in log and "replica identity" in log, log
    # group 3 still runs, keeps its shards and takes new ones
    assert kube.api.get_or_none(f"/apis/apps/v1/namespaces/{NS}/statefulsets/{CLUSTER}-3")
    kube.wait_leaders(NS, CLUSTER, [3], 60)
    assert release.placements() == before
    assert release.sql("SELECT shouldhaveshards FROM pg_dist_node WHERE groupid = 3") == [(True,)]
    release.sql("DROP TABLE no_identity")


def test_a_removed_group_is_drained_then_removed(kube, release):
    upgrade(kube, [1, 2])
    drain, remove = job_log(kube, "drain"), job_log(kube, "remove-groups")
    print(drain, remove)
    assert "group drained" in drain, drain
    assert "group removed from the cluster's metadata" in remove, remove
    assert release.sql("SELECT count(*) FROM pg_dist_placement WHERE groupid = 3") == [(0,)]
    assert release.sql("SELECT count(*) FROM pg_dist_node WHERE groupid = 3") == [(0,)]
    assert sorted(release.placements()) == [1, 2]
    assert release.sql("SELECT count(*) FROM items") == [(ROWS,)]
    assert kube.api.get_or_none(f"/apis/apps/v1/namespaces/{NS}/statefulsets/{CLUSTER}-3") is None
    assert not kube.pods(NS, f"cluster-name={CLUSTER},citus-group=3")
    # new tables keep to the groups that stay
    release.sql("CREATE TABLE later (id bigint PRIMARY KEY)")
    release.sql("SELECT create_distributed_table('later', 'id', shard_count => 4)")
    assert release.sql("SELECT DISTINCT pl.groupid FROM pg_dist_placement pl JOIN pg_dist_shard s "
                       "USING (shardid) WHERE s.logicalrelid = 'later'::regclass ORDER BY 1") == \
        [(1,), (2,)]
