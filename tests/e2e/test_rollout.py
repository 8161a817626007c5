"""scripts/demo rollout (issue #16, docs/operations.md "Rolling restarts") under a writer that
commits through the coordinator into both worker groups: every group changes leader exactly
once (its timeline goes up by one) and never by failover, every primary is restarted after
all of its replicas, the worker groups' switchovers fail no transaction (Patroni's Citus
support holds the coordinator's queries meanwhile), and the coordinator's own switchover
leaves a write gap that is measured and printed; a group that is not healthy stops the
rollout before anything of it is restarted."""
import pytest

from conftest import PairWriter, assert_pod_hygiene, execute, needs_citus, new_cluster
from localcluster import ClusterError, rollout

pytestmark = needs_citus

SHARDS = 8


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2eroll", "127.0.34", {0: 2, 1: 2, 2: 2})
    c.start()
    c.wait_ready(300)
    c.wait_streaming(180)
    execute(c.writable_leader(0), "CREATE TABLE roll_pairs (id bigint PRIMARY KEY, "
            "pair bigint NOT NULL)")
    execute(c.writable_leader(0), "SELECT create_distributed_table('roll_pairs', 'id', "
            "shard_count => %s)", (SHARDS,))
    return c


def test_rollout_restarts_replicas_first_with_one_switchover_per_group(cluster):
    pids = {name: pod.launcher for name, pod in cluster.pods.items()}
    told = []
    writer = PairWriter(cluster, "roll_pairs")
    writer.start()
    try:
        writer.wait_more(20, timeout=60)
        reports = rollout.rollout(cluster, told.append)
        writer.wait_more(20, timeout=60)
    finally:
        writer.stop()
    print("\n".join(told))
    assert [r["group"] for r in reports] == [1, 2, 0]
    for r in reports:
        members = {p.name for p in cluster.group(r["group"])}
        # every member restarted once, the old primary last
        assert sorted(r["restarted"]) == sorted(members), r
        assert r["restarted"][-1] == r["leader_before"], r
        assert r["leader_after"] != r["leader_before"], r
        assert r["timeline_after"] - r["timeline_before"] == 1, r
    assert all(cluster.pods[n].launcher != pids[n] for n in pids), "a member was not restarted"
    coordinator = reports[-1]["switchover"]
    gap = writer.longest_gap(*coordinator)
    in_coordinator = [t for t in writer.failed_at
                      if coordinator[0] <= t <= coordinator[1] + 2]
    elsewhere = [t for t in writer.failed_at if t not in in_coordinator]
    worker_gaps = [writer.longest_gap(*r["switchover"]) for r in reports[:-1]]
    print(f"writer: {len(writer.acked)} committed, {len(writer.failed_at)} failed "
          f"({len(in_coordinator)} during the coordinator's switchover); longest write gap: "
          f"coordinator switchover {gap:.2f}s, worker switchovers "
          f"{', '.join(f'{g:.2f}s' for g in worker_gaps)}")
    assert not elsewhere, f"{len(elsewhere)} transactions failed outside the coordinator's switchover"
    rows = dict(execute(cluster.writable_leader(0),
                        "SELECT pair, count(*) FROM roll_pairs GROUP BY pair"))
    lost = [n for n in writer.acked if rows.get(n) != 2]
    assert not lost, f"{len(lost)} acknowledged pairs not found whole"
    cluster.wait_ready(120)


def test_an_unhealthy_group_stops_the_rollout_before_it(cluster):
    victim = [p for p in cluster.group(2) if not p.is_primary()][0]
    victim.stop()
    try:
        before = {name: pod.launcher for name, pod in cluster.pods.items()}
        told = []
        with pytest.raises(ClusterError) as stopped:
            rollout.rollout(cluster, told.append)
        assert "rollout stopped at group 2" in str(stopped.value), stopped.value
        assert victim.name in str(stopped.value), stopped.value
        # group 1 was rolled (it comes first), group 2 and the coordinator were not touched
        for pod in cluster.group(2) + cluster.group(0):
            if pod is not victim:
                assert pod.launcher == before[pod.name], pod.name
        assert all(pod.launcher != before[pod.name] for pod in cluster.group(1))
    finally:
        victim.start()
    cluster.wait_ready(120)
    cluster.wait_streaming(180)


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
