"""Without Citus (CITUS_ENABLED=false, what scripts/demo runs when the extension is not
installed or DEMO_CITUS=false): every group is its own Patroni HA cluster with scope
<cluster>-<group> and the same extension handling: every group's leader creates the citus
database and the configured extensions, again after a failover. Runs whether or not Citus is
installed (the spec forces the mode)."""
import os
import signal
import subprocess

import pytest
import yaml

from conftest import (ROOT, assert_one_leader_per_group_streaming, assert_pod_hygiene, execute,
                      gone_without_trace, new_cluster, other_members, wait_new_leader,
                      wait_replica_streaming, write_resumes)
from localcluster import ClusterError, ClusterSpec, paths

NAME = "e2enocitus"
TABLE = "e2e_writes"


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, NAME, "127.0.25", {0: 2, 1: 2}, citus=False)
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    for g in c.groups:
        execute(c.writable_leader(g), f"CREATE TABLE IF NOT EXISTS {TABLE} "
                                      "(id serial PRIMARY KEY, note text)")
    return c


# -- choosing the mode (no cluster needed) --------------------------------------------------

@pytest.fixture
def no_citus_installed(monkeypatch, tmp_path):
    """paths sees a machine where the citus extension is not installed."""
    missing = tmp_path / "extension" / "citus.control"
    monkeypatch.setattr(paths, "citus_control_file", lambda: missing)
    return missing


def test_mode_auto_without_citus_installed(monkeypatch, no_citus_installed):
    monkeypatch.delenv(paths.CITUS_MODE_VAR, raising=False)
    assert paths.citus_mode() == (False, f"Citus is not installed ({no_citus_installed} is "
                                         "missing)")
    assert ClusterSpec().citus_enabled() is False


def test_mode_forced_by_demo_citus(monkeypatch, no_citus_installed):
    monkeypatch.setenv(paths.CITUS_MODE_VAR, "false")
    assert paths.citus_mode() == (False, "Citus disabled by DEMO_CITUS=false")
    monkeypatch.setenv(paths.CITUS_MODE_VAR, "true")
    with pytest.raises(ClusterError) as e:
        ClusterSpec().citus_enabled()
    assert str(e.value) == (f"Citus requested by DEMO_CITUS=true, but it is not installed: "
                            f"{no_citus_installed} is missing")
    # an explicit spec wins over the variable
    assert ClusterSpec(citus=False).citus_enabled() is False


def test_unknown_demo_citus_value_is_refused(monkeypatch):
    monkeypatch.setenv(paths.CITUS_MODE_VAR, "sometimes")
    with pytest.raises(ClusterError, match=r"^DEMO_CITUS='sometimes' is not understood; "
                                           r"expected auto .*, true or false$"):
        ClusterSpec().citus_enabled()
    res = subprocess.run([str(ROOT / "scripts" / "demo"), "status"], capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, DEMO_CITUS="sometimes"))
    assert res.returncode == 1
    assert "DEMO_CITUS='sometimes' is not understood" in res.stderr


# -- the cluster ----------------------------------------------------------------------------

def test_each_group_is_its_own_patroni_cluster(cluster):
    for pod in cluster.pods.values():
        scope = f"{NAME}-{pod.group}"
        assert pod.env["CITUS_ENABLED"] == "false"
        rendered = yaml.safe_load((pod.run_dir / "patroni.yml").read_text())
        assert rendered["scope"] == scope, pod.name
        assert "citus" not in rendered, f"{pod.name}: rendered a citus section"
        status, body = pod.api("/patroni")
        assert status == 200 and body["patroni"]["scope"] == scope, (pod.name, body)
        _, members = pod.api("/cluster")
        assert sorted(m["name"] for m in members["members"]) == \
            sorted(p.name for p in cluster.group(pod.group)), pod.name


def test_one_leader_per_group_and_replicas_stream(cluster):
    assert_one_leader_per_group_streaming(cluster)


def test_every_group_leader_has_the_database_and_extensions(cluster):
    for g in cluster.groups:
        leader = cluster.writable_leader(g)
        dbs = execute(leader, "SELECT datname FROM pg_database WHERE datname = %s",
                      (cluster.database,), dbname="postgres")
        assert dbs == [(cluster.database,)], f"group {g}"
        have = {r[0] for r in execute(leader, "SELECT extname FROM pg_extension")}
        assert cluster.wanted_extensions() <= have, f"group {g}: {sorted(have)}"
        assert "citus" not in have, f"group {g}"
        schema = execute(leader, "SELECT extnamespace::regnamespace::text FROM pg_extension "
                                 "WHERE extname = 'pg_partman'")
        assert schema == [("partman",)], f"group {g}"


def test_unplanned_failover_of_one_group(cluster):
    """Group 1's leader dies (SIGKILL of PID 1); a new leader takes over, creates the
    extensions on promotion (one was dropped before, so it has to), writes resume, the old pod
    rejoins as a replica; group 0 keeps its leader and timeline throughout."""
    g0_leader = cluster.writable_leader(0)
    g0_timeline = g0_leader.patroni_state().get("timeline")
    old = cluster.writable_leader(1)
    (survivor,) = other_members(cluster, 1, old)
    execute(old, "DROP EXTENSION postgis_topology")
    execute(old, f"INSERT INTO {TABLE} (note) VALUES ('before failover')")

    def replayed():
        exts = {r[0] for r in execute(survivor, "SELECT extname FROM pg_extension")}
        rows = execute(survivor, f"SELECT count(*) FROM {TABLE} WHERE note = 'before failover'")
        return "postgis_topology" not in exts and rows == [(1,)]
    cluster.wait_for(f"{survivor.name} replaying the drop and the write", replayed, 30)

    ns = old.pid_namespace()
    old.signal(signal.SIGKILL)
    assert old.wait(timeout=30) == 128 + signal.SIGKILL
    gone_without_trace(old, ns)

    new = wait_new_leader(cluster, 1, old, timeout=90)
    assert new is survivor
    write_resumes(cluster, "after failover", group=1, table=TABLE)
    cluster.wait_for("extensions created by the new leader of group 1",
                     lambda: cluster.extensions_present(new), 60)

    old.start()  # the kubelet restarts the pod
    wait_replica_streaming(cluster, old)
    assert execute(cluster.writable_leader(1),
                   f"SELECT note FROM {TABLE} ORDER BY id") == [("before failover",),
                                                                  ("after failover",)]

    assert cluster.writable_leader(0) is g0_leader
    assert g0_leader.patroni_state().get("timeline") == g0_timeline
    write_resumes(cluster, "group 0 unaffected", group=0, table=TABLE, timeout=5)


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
