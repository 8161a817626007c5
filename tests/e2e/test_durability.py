"""Synchronous mode keeps every acknowledged commit: a writer counts the rows the server
acknowledged while the coordinator's leader pod is SIGKILLed three times; afterwards every
acknowledged row is there."""
import signal

import pytest

from conftest import (assert_pod_hygiene, execute, new_cluster, other_members, wait_new_leader,
                      wait_replica_streaming)
from localcluster.writer import Writer as BaseWriter

KILLS = 3


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2edur", "127.0.23", {0: 2}, env={"SYNCHRONOUS_MODE": "true"})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    execute(c.writable_leader(0), "CREATE TABLE acked (id bigint PRIMARY KEY)")
    return c


class Writer(BaseWriter):
    """Inserts 1, 2, 3, ... one statement each, into whichever member Patroni calls the
    leader; remembers the ids whose commit the server acknowledged."""

    def connect(self):
        leader = self.cluster.leader(0)
        return leader.connect(connect_timeout=2) if leader is not None else None

    def write(self, cur, n: int) -> None:
        cur.execute("INSERT INTO acked (id) VALUES (%s)", (n,))


def wait_sync_standby(cluster, leader, standby, timeout: float = 120) -> None:
    """Synchronous in PostgreSQL and in Patroni's /sync key (which Patroni updates a loop
    after pg_stat_replication: only a member named there may be promoted)."""
    def check():
        rows = execute(leader, "SELECT application_name, sync_state FROM pg_stat_replication",
                       dbname="postgres")
        if (standby.name, "sync") not in rows and (standby.name, "quorum") not in rows:
            return False
        _, body = leader.api("/cluster")
        roles = {m.get("name"): m.get("role") for m in (body or {}).get("members", [])}
        return roles.get(standby.name) in ("sync_standby", "quorum_standby")
    cluster.wait_for(f"{standby.name} as synchronous standby", check, timeout)


def test_no_acknowledged_row_lost_across_leader_kills(cluster):
    writer = Writer(cluster)
    writer.start()
    try:
        for round_no in range(1, KILLS + 1):
            leader = cluster.writable_leader(0)
            standby, = other_members(cluster, 0, leader)
            wait_sync_standby(cluster, leader, standby)
            writer.wait_more(20, timeout=60)  # acknowledged while the standby is synchronous

            leader.signal(signal.SIGKILL)
            assert leader.wait(timeout=30) == 128 + signal.SIGKILL
            new = wait_new_leader(cluster, 0, leader, timeout=120)
            assert new is standby, f"round {round_no}: {new.name} was promoted"
            writer.wait_more(20, timeout=90)

            leader.start()
            wait_replica_streaming(cluster, leader, timeout=180)
    finally:
        writer.halt.set()
        writer.join(30)

    present = {r[0] for r in execute(cluster.writable_leader(0), "SELECT id FROM acked")}
    lost = sorted(set(writer.acked) - present)
    assert len(writer.acked) > KILLS * 40
    assert not lost, f"{len(lost)} acknowledged rows lost, e.g. {lost[:10]}"


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
