"""The default shutdown budget (the chart's terminationGracePeriodSeconds 30, SHUTDOWN_DEADLINE
25) is enough for a busy primary: stopped like the kubelet stops a pod while a writer fills its
shared buffers, it finishes its shutdown checkpoint without being forced (no SIGQUIT), Patroni
releases the leader key itself, and the replica takes over at once instead of waiting for the
key's ttl."""
import threading
import time

from conftest import execute, new_cluster, other_members, wait_replica_streaming


class BulkWriter(threading.Thread):
    """Batches of 5,000 rows of 200 bytes through the group's primary, as fast as it takes
    them: buffers stay dirty for the shutdown checkpoint."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.batches = cluster, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                with self.cluster.connect_primary(0) as conn, conn.cursor() as cur:
                    while not self.halt.is_set():
                        cur.execute("INSERT INTO bulk SELECT g, repeat('x', 200) "
                                    "FROM generate_series(1, 5000) g")
                        self.batches += 1
            except Exception:  # noqa: BLE001 - the primary goes away mid-test, by design
                time.sleep(0.2)


def dcs_leader(pod):
    """The leader's name as the DCS records it, asked through pod's REST API."""
    _, body = pod.api("/cluster")
    for m in (body or {}).get("members", []):
        if m.get("role") in ("leader", "standby_leader"):
            return m.get("name")
    return None


def is_sync_standby(leader, standby):
    """Named in Patroni's synchronous set: only such a member may take over (quorum mode,
    the default for Citus)."""
    _, body = leader.api("/cluster")
    roles = {m.get("name"): m.get("role") for m in (body or {}).get("members", [])}
    return roles.get(standby.name) in ("sync_standby", "quorum_standby") or \
        not leader.cluster.spec.citus_enabled()


def test_busy_primary_stops_cleanly_and_hands_over(request):
    cluster = new_cluster(request, "e2estop", "127.0.31", {0: 2})
    cluster.start()
    cluster.wait_ready(240)
    cluster.wait_streaming(240)
    old = cluster.writable_leader(0)
    replica, = other_members(cluster, 0, old)
    execute(old, "CREATE TABLE bulk (id int, pad text)")
    writer = BulkWriter(cluster)
    writer.start()
    try:
        cluster.wait_for(f"{replica.name} in the synchronous set",
                         lambda: is_sync_standby(old, replica), 120)
        start = writer.batches
        cluster.wait_for("a busy primary", lambda: writer.batches >= start + 100, 120)
        dirty = execute(old, "SELECT buffers_checkpoint + buffers_clean + buffers_backend, "
                             "pg_size_pretty(pg_database_size(current_database())) "
                             "FROM pg_stat_bgwriter")
        t0 = time.monotonic()
        status = old.stop()  # TERM to PID 1, like the kubelet; KILL only after the grace period
        stopped = time.monotonic() - t0
        # Released by the old primary: gone from the DCS long before its ttl would expire it.
        cluster.wait_for("the old primary's leader key gone from the DCS",
                         lambda: dcs_leader(replica) != old.name, 5, interval=0.1)
        cluster.wait_for("the replica writable", lambda: cluster.writable_leader(0) is replica,
                         60, interval=0.1)
        handover = time.monotonic() - t0
    finally:
        writer.halt.set()
        writer.join(timeout=30)
    log = old.log_text()
    assert status == 0, f"the old primary's pod ended with {status}"
    assert 'msg="asking PostgreSQL for an immediate shutdown"' not in log
    print(f"shutdown budget: busy primary ({writer.batches} batches of 5,000 rows, "
          f"bgwriter/db {dirty}) stopped in {stopped:.1f} s of the 30 s grace period; "
          f"TERM -> replica writable {handover:.1f} s")
    old.start()
    wait_replica_streaming(cluster, old)
