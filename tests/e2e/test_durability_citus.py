"""Distributed commits survive a worker group's failover: with the default SYNCHRONOUS_MODE
(auto: quorum for Citus, as Patroni chooses) a writer commits cross-shard transactions through
the coordinator while the worker group's primary is SIGKILLed twice; afterwards every
transaction the coordinator acknowledged is there, both of its rows."""
import signal
import time

from conftest import (PairWriter, assert_pod_hygiene, execute, needs_citus, new_cluster,
                      other_members, wait_new_leader, wait_replica_streaming)

import pytest

KILLS = 2

pytestmark = needs_citus


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2edurc", "127.0.28", {0: 1, 1: 2})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    coord = c.writable_leader(0)
    execute(coord, "CREATE TABLE acked_pairs (id bigint PRIMARY KEY, pair bigint NOT NULL)")
    execute(coord, "SELECT create_distributed_table('acked_pairs', 'id', shard_count => 8)")
    return c


def quorum_standby(cluster, leader, standby):
    _, body = leader.api("/cluster")
    roles = {m.get("name"): m.get("role") for m in (body or {}).get("members", [])}
    return roles.get(standby.name) in ("sync_standby", "quorum_standby")


def test_rendered_default_is_quorum(cluster):
    _, config = cluster.writable_leader(1).api("/config")
    assert config.get("synchronous_mode") == "quorum", config
    assert config.get("failsafe_mode") is True, config


def test_no_acknowledged_distributed_commit_lost_across_worker_kills(cluster):
    writer = PairWriter(cluster, "acked_pairs")
    kills = []
    writer.start()
    try:
        for round_no in range(1, KILLS + 1):
            leader = cluster.writable_leader(1)
            standby, = other_members(cluster, 1, leader)
            cluster.wait_for(f"{standby.name} as quorum standby",
                             lambda: quorum_standby(cluster, leader, standby), 120)
            writer.wait_more(20, timeout=60)
            kills.append(time.time())
            leader.signal(signal.SIGKILL)
            assert leader.wait(timeout=30) == 128 + signal.SIGKILL
            new = wait_new_leader(cluster, 1, leader, timeout=120)
            assert new is standby, f"round {round_no}: {new.name} was promoted"
            writer.wait_more(20, timeout=120)
            leader.start()
            wait_replica_streaming(cluster, leader, timeout=180)
    finally:
        writer.halt.set()
        writer.join(30)
    coordinator = cluster.writable_leader(0)
    # Citus acknowledges a distributed COMMIT once its outcome is decided (the commit record
    # on the coordinator); a worker whose primary died between PREPARE and COMMIT PREPARED
    # holds that part as a prepared transaction, on its promoted standby too (quorum), until
    # Citus' 2PC recovery commits it (every citus.recover_2pc_interval, 60 s by default).
    # Run that recovery now, as the maintenance daemon would, before counting.
    execute(coordinator, "SELECT recover_prepared_transactions()")
    rows = execute(coordinator, "SELECT pair, count(*) FROM acked_pairs GROUP BY pair")
    present = {pair for pair, count in rows if count == 2}
    counts = dict(rows)
    lost = sorted(set(writer.acked) - present)
    assert len(writer.acked) > KILLS * 40
    assert not lost, (f"{len(lost)} acknowledged transactions lost, e.g. "
                      f"{[(n, counts.get(n, 0), writer.acked_at.get(n)) for n in lost[:10]]} "
                      f"(pair, rows found, acknowledged at); kills at {kills}")
    half = sorted(pair for pair, count in rows if count != 2)
    assert not half, f"transactions with one of their two rows: {half[:10]}"


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
