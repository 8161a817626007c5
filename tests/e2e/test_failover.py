"""Destructive tests on a small cluster (coordinator 2, one worker group of 2): unplanned
coordinator failover, worker failover (Citus), graceful stop. Each test brings the stopped
pod back like the kubelet would and leaves the cluster whole for the next one."""
import signal
import time

import pytest

from conftest import (assert_pod_hygiene, execute, gone_without_trace, needs_citus, new_cluster,
                      other_members, wait_new_leader, wait_promotable, wait_replica_streaming,
                      write_resumes)


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2efail", "127.0.22", {0: 2, 1: 2})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    execute(c.writable_leader(0), "CREATE TABLE IF NOT EXISTS e2e_writes (id serial PRIMARY KEY,"
                                  " note text)")
    return c


def test_unplanned_coordinator_failover(cluster):
    wait_promotable(cluster, 0)
    old = cluster.writable_leader(0)
    ns = old.pid_namespace()
    old.signal(signal.SIGKILL)  # PID 1 dies: the kernel kills everything in the pod
    assert old.wait(timeout=30) == 128 + signal.SIGKILL
    gone_without_trace(old, ns)

    new = wait_new_leader(cluster, 0, old, timeout=90)
    assert new in other_members(cluster, 0, old)
    write_resumes(cluster, "after unplanned failover")
    cluster.wait_for("extensions on the new coordinator leader",
                     lambda: cluster.extensions_present(new), 90)

    old.start()  # the kubelet restarts the pod
    wait_replica_streaming(cluster, old)
    assert execute(cluster.writable_leader(0),
                   "SELECT count(*) FROM e2e_writes WHERE note = 'after unplanned failover'") \
        == [(1,)]


@needs_citus
def test_worker_failover(cluster):
    wait_promotable(cluster, 1)
    old = cluster.writable_leader(1)
    old.signal(signal.SIGKILL)
    assert old.wait(timeout=30) == 128 + signal.SIGKILL
    new = wait_new_leader(cluster, 1, old, timeout=90)
    coordinator = cluster.writable_leader(0)

    def registered():
        rows = execute(coordinator, "SELECT nodename FROM pg_dist_node "
                                    "WHERE groupid = 1 AND noderole = 'primary'")
        return rows == [(new.dns_name,)]
    cluster.wait_for("pg_dist_node pointing at the new worker primary", registered, 60)

    def distributed_round_trip():
        with cluster.writable_leader(0).connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS e2e_dist (id bigint PRIMARY KEY, v int)")
            cur.execute("SELECT count(*) FROM pg_dist_partition "
                        "WHERE logicalrelid = 'e2e_dist'::regclass")
            if cur.fetchone()[0] == 0:
                cur.execute("SELECT create_distributed_table('e2e_dist', 'id')")
            cur.execute("INSERT INTO e2e_dist SELECT i, i FROM generate_series(1, 100) i "
                        "ON CONFLICT (id) DO UPDATE SET v = excluded.v + 1")
            cur.execute("SELECT count(*) FROM e2e_dist")
            return cur.fetchone()[0] == 100
    cluster.wait_for("distributed reads and writes", distributed_round_trip, 60)

    old.start()
    wait_replica_streaming(cluster, old)


def test_graceful_stop_hands_over(cluster):
    wait_promotable(cluster, 0)
    old = cluster.writable_leader(0)
    ns = old.pid_namespace()
    grace = float(old.env.get("TERMINATION_GRACE_PERIOD", 30))
    stopped_at = time.monotonic()
    old.signal(signal.SIGTERM)
    rc = old.wait(timeout=grace + 5)
    assert rc == 0, f"PID 1 exit status {rc}"
    assert time.monotonic() - stopped_at < grace  # within the deadline, never SIGKILLed
    gone_without_trace(old, ns)
    log = old.log_text()
    assert "database system is shut down" in log  # postgres finished its clean shutdown

    wait_new_leader(cluster, 0, old, timeout=60)
    write_resumes(cluster, "after graceful stop")

    old.start()
    wait_replica_streaming(cluster, old)
    restarted = old.log_text()
    for sign in ("database system was interrupted", "was not properly shut down"):
        assert sign not in restarted, f"crash recovery after a graceful stop: {sign!r}"


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
