"""Worker groups in and out under a writer (docs/operations.md, scripts/demo workers N): 2 -> 3
groups takes the new group's share of the shards (citus-init rebalance --wait), 3 -> 2 drains
the removed group (citus-init drain-group), deletes its pods and removes it from pg_dist_node
(citus-init remove-group); a drain that cannot be done changes nothing."""
import pytest

from conftest import PairWriter, assert_pod_hygiene, execute, needs_citus, new_cluster
from localcluster import ClusterError, demo

pytestmark = needs_citus

SHARDS = 30
INITIAL = 3000

PLACEMENTS_PER_GROUP = (
    "SELECT pl.groupid, count(*) FROM pg_dist_placement pl JOIN pg_dist_shard s USING "
    "(shardid) WHERE s.logicalrelid = 'wrk_pairs'::regclass GROUP BY pl.groupid")


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2ewrk", "127.0.33", {0: 1, 1: 1, 2: 1})
    c.start()
    c.wait_ready(240)
    coord = c.writable_leader(0)
    execute(coord, "CREATE TABLE wrk_pairs (id bigint PRIMARY KEY, pair bigint NOT NULL)")
    execute(coord, "SELECT create_distributed_table('wrk_pairs', 'id', shard_count => %s)",
            (SHARDS,))
    # negative ids: the writer's ids (2n, 2n+1 for n >= 1) never meet them
    execute(coord, "INSERT INTO wrk_pairs SELECT -g, -g FROM generate_series(1, %s) g",
            (INITIAL,))
    return c


def placements(cluster) -> dict:
    return dict(execute(cluster.writable_leader(0), PLACEMENTS_PER_GROUP))


def check_rows(cluster, writer) -> None:
    coord = cluster.writable_leader(0)
    (initial,), = execute(coord, "SELECT count(*) FROM wrk_pairs WHERE id < 0")
    assert initial == INITIAL
    rows = dict(execute(coord, "SELECT pair, count(*) FROM wrk_pairs WHERE id > 0 GROUP BY pair"))
    lost = sorted(n for n in writer.acked if rows.get(n) != 2)
    assert not lost, f"{len(lost)} acknowledged pairs not found whole, e.g. {lost[:10]}"
    assert set(rows) <= set(range(1, writer.attempts + 1))


def run_under_writer(cluster, action):
    # the writer's ids start at 2 again: an earlier writer's rows go first
    execute(cluster.writable_leader(0), "DELETE FROM wrk_pairs WHERE id > 0")
    writer = PairWriter(cluster, "wrk_pairs")
    writer.start()
    try:
        writer.wait_more(20, timeout=60)
        action()
        writer.wait_more(20, timeout=60)
    finally:
        writer.stop()
    errors = writer.attempts - len(writer.acked)
    print(f"writer: {len(writer.acked)} transactions committed, {errors} failed")
    return writer, errors


def test_scale_out_two_to_three_groups(cluster):
    assert sorted(placements(cluster)) == [1, 2]
    told = []
    writer, errors = run_under_writer(cluster, lambda: demo.set_workers(cluster, 3,
                                                                        tell=told.append))
    print("\n".join(told))
    assert any("rebalance finished" in line for line in told), told
    assert any("rebalance progress" in line for line in told), told
    (n,), = execute(cluster.writable_leader(0),
                    "SELECT count(*) FROM pg_dist_node WHERE groupid = 3 AND isactive")
    assert n == 1
    per_group = placements(cluster)
    assert sorted(per_group) == [1, 2, 3], per_group
    even = SHARDS / 3
    for g, count in per_group.items():
        assert abs(count - even) <= 0.1 * even, f"group {g}: {count} placements of {SHARDS}"
    assert errors == 0
    check_rows(cluster, writer)
    # again, as a Job would run it (COORDINATOR_HOST, here from a worker's pod), until Citus
    # plans no move (the default strategy weighs disk sizes, which the writer changed), and
    # then it says so
    worker = cluster.writable_leader(1)
    job = ["env", f"COORDINATOR_HOST={cluster.writable_leader(0).dns_name}",
           worker.command[0], "rebalance", "--wait"]
    for _ in range(3):
        res = worker.exec(job, timeout=600)
        lines = (res.stderr + res.stdout).splitlines()
        assert res.returncode == 0, lines
        if any("nothing to move" in line for line in lines):
            break
    else:
        pytest.fail(f"rebalance still moves shards after three runs: {lines}")


def test_bad_groups_are_refused(cluster):
    for group, words in (("0", "group 0 is the coordinator"),
                         ("9", "no such worker group"), ("x1", "not a worker group number")):
        rc, lines = demo.coordinator_command(cluster, ["drain-group", group])
        assert rc != 0 and any(words in line for line in lines), (group, lines)
    rc, lines = demo.coordinator_command(cluster, ["remove-group", "3"])
    assert rc != 0 and any("drain-group first" in line for line in lines), lines
    # the forms the chart's hook Jobs use
    for args, words in ((["drain-group", "--absent-from", "1,x"], "--absent-from \"1,x\""),
                        (["drain-group", "3", "--absent-from", "1"], "expected GROUP |"),
                        (["remove-group", "--absent-from", "1", "--wait-gone", "-1"],
                         "--wait-gone"),
                        (["rebalance", "--timeout", "5"], "give --expect LIST too"),
                        (["rebalance", "--expect", ""], "--expect \"\"")):
        rc, lines = demo.coordinator_command(cluster, args)
        assert rc == 64 and any(words in line for line in lines), (args, lines)
    rc, lines = demo.coordinator_command(cluster, ["drain-group", "--absent-from", "3,2,1"])
    assert rc == 0 and any("nothing to drain" in line for line in lines), lines
    rc, lines = demo.coordinator_command(cluster, ["remove-group", "--absent-from", "1,2,3"])
    assert rc == 0 and any("nothing to remove" in line for line in lines), lines
    # a group whose pods still run is never removed, even before the placements check
    rc, lines = demo.coordinator_command(cluster, ["remove-group", "2", "--wait-gone", "2"])
    assert rc == 1 and any("the group still runs" in line for line in lines), lines
    assert any("still accept connections after 2 s" in line for line in lines), lines
    # a group that never gets a primary: the rebalance waits for it, then says which
    rc, lines = demo.coordinator_command(cluster, ["rebalance", "--expect", "1,9",
                                                   "--timeout", "2"])
    assert rc == 1 and any("groups 9 not registered after 2 s" in line for line in lines), lines
    assert sorted(placements(cluster)) == [1, 2, 3]
    rows = execute(cluster.writable_leader(0),
                   "SELECT DISTINCT shouldhaveshards FROM pg_dist_node WHERE groupid > 0")
    assert rows == [(True,)]


def test_drain_refused_for_table_without_replica_identity(cluster):
    coord = cluster.writable_leader(0)
    execute(coord, "CREATE TABLE wrk_no_identity (id bigint, note text)")
    execute(coord, "SELECT create_distributed_table('wrk_no_identity', 'id', shard_count => 6, "
                   "colocate_with => 'none')")
    before = placements(cluster)
    with pytest.raises(ClusterError) as refused:
        demo.set_workers(cluster, 2, tell=lambda _: None)
    assert "wrk_no_identity" in str(refused.value)
    assert "replica identity" in str(refused.value)
    assert all(p.running() for p in cluster.group(3))
    assert cluster.spec.groups.get(3) == 1
    assert placements(cluster) == before
    rows = execute(coord, "SELECT shouldhaveshards FROM pg_dist_node WHERE groupid = 3")
    assert rows == [(True,)]
    execute(coord, "DROP TABLE wrk_no_identity")


def test_scale_in_three_to_two_groups(cluster):
    pods = cluster.group(3)
    told = []
    writer, errors = run_under_writer(cluster, lambda: demo.set_workers(cluster, 2,
                                                                        tell=told.append))
    print("\n".join(told))
    assert any("group drained" in line for line in told), told
    coord = cluster.writable_leader(0)
    assert execute(coord, "SELECT count(*) FROM pg_dist_placement WHERE groupid = 3") == [(0,)]
    assert execute(coord, "SELECT count(*) FROM pg_dist_node WHERE groupid = 3") == [(0,)]
    assert sorted(placements(cluster)) == [1, 2]
    assert not any(p.running() for p in pods)
    assert not any(p.dir.exists() for p in pods)
    assert 3 not in cluster.spec.groups and not cluster.group(3)
    assert errors == 0
    check_rows(cluster, writer)
    # the same removal again: the group is gone, nothing to do
    rc, lines = demo.coordinator_command(cluster, ["remove-group", "3"])
    assert rc == 0 and any("nothing to remove" in line for line in lines), lines
    cluster.wait_ready(120)


def test_last_group_cannot_be_drained(cluster):
    demo.set_workers(cluster, 1, tell=lambda _: None)
    before = placements(cluster)
    assert sorted(before) == [1]
    rc, lines = demo.coordinator_command(cluster, ["drain-group", "1"])
    assert rc != 0 and any("no other worker group can take" in line for line in lines), lines
    assert placements(cluster) == before


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
