"""Distributed commits survive a worker group's failover: with the default SYNCHRONOUS_MODE
(auto: quorum for Citus, as Patroni chooses) a writer commits cross-shard transactions through
the coordinator while the worker group's primary is SIGKILLed twice; afterwards every
transaction the coordinator acknowledged is there, both of its rows."""
import signal
import threading
import time

from conftest import (assert_pod_hygiene, execute, needs_citus, new_cluster, other_members,
                      wait_new_leader, wait_replica_streaming)

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


class CrossShardWriter(threading.Thread):
    """Transaction n inserts ids 2n and 2n+1 (on different shards for most n) through the
    coordinator's leader; remembers the n whose COMMIT the coordinator acknowledged."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.acked, self.attempts = cluster, [], 0
        self.halt = threading.Event()

    def run(self):
        conn = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = self.cluster.connect_primary(0, autocommit=False)
                self.attempts += 1
                n = self.attempts
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO acked_pairs VALUES (%s, %s), (%s, %s)",
                                (2 * n, n, 2 * n + 1, n))
                conn.commit()
                self.acked.append(n)
            except Exception:  # noqa: BLE001 - not acknowledged
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def wait_more(self, count, timeout):
        target = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"writer stalled at {len(self.acked)}"
            time.sleep(0.1)


def quorum_standby(cluster, leader, standby):
    _, body = leader.api("/cluster")
    roles = {m.get("name"): m.get("role") for m in (body or {}).get("members", [])}
    return roles.get(standby.name) in ("sync_standby", "quorum_standby")


def test_rendered_default_is_quorum(cluster):
    _, config = cluster.writable_leader(1).api("/config")
    assert config.get("synchronous_mode") == "quorum", config
    assert config.get("failsafe_mode") is True, config


def test_no_acknowledged_distributed_commit_lost_across_worker_kills(cluster):
    writer = CrossShardWriter(cluster)
    writer.start()
    try:
        for round_no in range(1, KILLS + 1):
            leader = cluster.writable_leader(1)
            standby, = other_members(cluster, 1, leader)
            cluster.wait_for(f"{standby.name} as quorum standby",
                             lambda: quorum_standby(cluster, leader, standby), 120)
            writer.wait_more(20, timeout=60)
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
    rows = execute(cluster.writable_leader(0), "SELECT pair, count(*) FROM acked_pairs "
                                               "GROUP BY pair")
    present = {pair for pair, count in rows if count == 2}
    lost = sorted(set(writer.acked) - present)
    assert len(writer.acked) > KILLS * 40
    assert not lost, f"{len(lost)} acknowledged transactions lost, e.g. {lost[:10]}"
    half = sorted(pair for pair, count in rows if count != 2)
    assert not half, f"transactions with one of their two rows: {half[:10]}"


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
