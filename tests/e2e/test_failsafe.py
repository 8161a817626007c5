"""A DCS outage does not demote primaries (FAILSAFE_MODE, on by default): etcd, the local
cluster's stand-in for the Kubernetes API, is stopped for 60 s under a writer; the primary
stays primary, no write fails, and after the DCS is back the cluster is normal again. The same
outage with FAILSAFE_MODE=false demotes the primary (what the default prevents)."""
import threading
import time

import pytest

from conftest import assert_one_leader_per_group_streaming, new_cluster

OUTAGE = 60


class Writer(threading.Thread):
    """One connection to the primary pod itself (not looked up through the DCS), a commit
    every 0.1 s; every failure is kept."""

    def __init__(self, pod):
        super().__init__(daemon=True)
        self.pod, self.ok, self.errors = pod, 0, []
        self.halt = threading.Event()

    def run(self):
        conn = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = self.pod.connect(connect_timeout=3)
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO failsafe_writes DEFAULT VALUES")
                self.ok += 1
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                conn = None
            time.sleep(0.1)


def outage(cluster, seconds):
    """Stop etcd for `seconds`; the primary's role every second meanwhile."""
    roles = []
    leader = cluster.writable_leader(0)
    cluster.etcd.stop()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            roles.append(leader.patroni_state().get("role"))
            time.sleep(1)
    finally:
        cluster.etcd.start()
    return leader, roles


def make(request, name, subnet, failsafe):
    c = new_cluster(request, name, subnet, {0: 2}, env={"FAILSAFE_MODE": failsafe})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    with c.writable_leader(0).connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS failsafe_writes (id serial PRIMARY KEY, "
                    "at timestamptz DEFAULT now())")
    return c


def test_dcs_outage_keeps_the_primary(request):
    cluster = make(request, "e2esafe", "127.0.29", "true")
    writer = Writer(cluster.writable_leader(0))
    writer.start()
    try:
        leader, roles = outage(cluster, OUTAGE)
    finally:
        writer.halt.set()
        writer.join(timeout=30)
    assert set(roles) <= {"primary", "master"}, f"the primary changed role: {roles}"
    assert writer.ok > OUTAGE * 3 and not writer.errors, writer.errors[:5]
    cluster.wait_for("the leader again in the DCS, every replica streaming",
                     lambda: cluster.writable_leader(0) is leader and cluster.all_streaming(), 120)
    assert_one_leader_per_group_streaming(cluster)
    print(f"failsafe: {writer.ok} commits during a {OUTAGE} s DCS outage, 0 failed")


def test_without_failsafe_the_same_outage_demotes(request):
    cluster = make(request, "e2enosafe", "127.0.30", "false")
    leader, roles = outage(cluster, 30)
    assert any(r not in ("primary", "master") for r in roles), (
        f"FAILSAFE_MODE=false kept the primary through a 30 s DCS outage: {roles}")
    cluster.wait_for("a leader again after the DCS is back",
                     lambda: cluster.writable_leader(0), 120)
