"""Metrics in the local cluster (issue #17's acceptance, docs/observability.md): a cluster
with metrics on (every pod: postgres_exporter as a second container, citus-init's agent
serving its own and Patroni's metrics; one Prometheus scraping them with the chart's rules).

Every endpoint is up, one primary per group, the Citus worker metrics on the coordinator's
primary, no exporter error on any member, every dashboard panel returns data (Patroni's
too), and losing a worker group's primary raises CitusGroupNoLeader (pending, firing) until
the failover resolves it. How long each alert phase took is printed, never asserted."""
import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

from conftest import (CITUS, ROOT, assert_pod_hygiene, backup_tools_problem, execute,
                      needs_citus, new_cluster, wait_new_leader, wait_promotable,
                      wait_replica_streaming)
from localcluster import metrics, paths, procs
from localcluster.cluster import POD_SOCKETS

sys.path.insert(0, str(ROOT / "tests" / "monitoring"))
import dashboard  # noqa: E402  (tests/monitoring/dashboard.py, shared with that suite)

pytestmark = pytest.mark.skipif(
    bool(metrics.missing_programs()),
    reason=f"{' and '.join(metrics.missing_programs())} not installed (Debian packages "
           f"{metrics.PACKAGES}; tests/e2e/run installs them)")

NAME = "e2emon"
GROUPS = {0: 2, 1: 2}
JOBS = sorted(metrics.JOBS)
BACKUPS_PROBLEM = backup_tools_problem()
SEL = f'cluster_name="{NAME}"'


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, NAME, "127.0.52", GROUPS, metrics=True,
                    backup=BACKUPS_PROBLEM is None)
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    if CITUS:
        execute(c.writable_leader(0), "CREATE TABLE IF NOT EXISTS e2e_mon (id bigint PRIMARY "
                                      "KEY, v text)")
        if not execute(c.writable_leader(0), "SELECT 1 FROM pg_dist_partition "
                                             "WHERE logicalrelid = 'e2e_mon'::regclass"):
            execute(c.writable_leader(0), "SELECT create_distributed_table('e2e_mon', 'id')")
        execute(c.writable_leader(0), "INSERT INTO e2e_mon SELECT i, repeat('x', 100) FROM "
                                      "generate_series(1, 1000) i ON CONFLICT DO NOTHING")
    return c


@pytest.fixture(scope="module")
def prom(cluster):
    return cluster.prometheus


def values_by_pod(prom, expr) -> dict:
    return {r["metric"].get("pod"): float(r["value"][1]) for r in prom.query(expr)}


def test_every_endpoint_is_up(cluster, prom):
    """up == 1 for every pod's exporter, Patroni (/patroni/metrics) and agent endpoint."""
    want = {(job, pod) for job in JOBS for pod in cluster.pods}

    def all_up():
        up = {(r["metric"]["job"], r["metric"]["pod"]) for r in prom.query(f"up{{{SEL}}} == 1")}
        return up == want
    try:
        cluster.wait_for("every endpoint up", all_up, 120)
    except Exception:
        down = [(t["labels"]["job"], t["labels"]["pod"], t["lastError"])
                for t in prom.targets() if t["health"] != "up"]
        pytest.fail(f"targets not up: {down}")
    labels = {tuple(sorted(r["metric"])) for r in prom.query(f"up{{{SEL}}}")}
    assert labels == {("__name__", "citus_group", "cluster_name", "instance", "job", "namespace",
                       "pod")}


def exporter_of(pod):
    """The pod's exporter container: (Proc, uid), a child of the pod's launcher."""
    found = [c for c in procs.children(pod.launcher[0])
             if procs.cmdline(c.pid)[:1] and procs.cmdline(c.pid)[0].endswith(metrics.EXPORTER)]
    assert len(found) == 1, f"{pod.name}: exporter processes {found}"
    with open(f"/proc/{found[0].pid}/status") as f:
        uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
    return found[0], uid


def test_exporter_runs_as_the_charts_second_container(cluster):
    """As nobody, with the pod's own socket directory (the same tmpfs PID 1's postgres uses),
    outside the PID namespace of citus-init."""
    sockets = os.path.realpath(POD_SOCKETS)  # /var/run is a link: resolve it on this side
    for pod in cluster.pods.values():
        proc, uid = exporter_of(pod)
        assert uid == pwd.getpwnam(metrics.MONITORING_OS_USER).pw_uid, pod.name
        devs = [os.stat(f"/proc/{p}/root{sockets}").st_dev for p in (proc.pid, pod.find_pid1())]
        assert devs[0] == devs[1], f"{pod.name}: the exporter sees another {POD_SOCKETS}"
        assert os.stat(os.path.dirname(sockets)).st_dev != devs[0], \
            f"{pod.name}: {POD_SOCKETS} is no tmpfs of the pod"
        assert os.readlink(f"/proc/{proc.pid}/ns/pid") != pod.pid_namespace(), pod.name


def test_launcher_refuses_a_bad_container_file(tmp_path):
    """A container setting pod-launcher does not know: a clear error naming the file and the
    setting, and nothing started."""
    (tmp_path / "mounts").write_text("")
    (tmp_path / "env").write_text("PATH=/usr/bin:/bin\n")
    (tmp_path / "containers").mkdir()
    bad = tmp_path / "containers" / "exporter"
    bad.write_text("user nobody\nlog /dev/null\nimage postgres-exporter\narg true\n")
    marker = tmp_path / "started"
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                          str(paths.LAUNCHER), str(tmp_path), "touch", str(marker)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert f"{bad}: unknown setting 'image' (expected user, log, env or arg)" in res.stderr
    assert not marker.exists()


def test_exactly_one_primary_per_group(cluster, prom):
    for g in cluster.groups:
        primaries = values_by_pod(prom, f'patroni_primary{{{SEL},citus_group="{g}"}} == 1')
        assert list(primaries) == [cluster.leader(g).name], f"group {g}: {primaries}"
        members = values_by_pod(prom, f'patroni_primary{{{SEL},citus_group="{g}"}}')
        assert set(members) == {p.name for p in cluster.group(g)}, f"group {g}: {members}"


@needs_citus
def test_citus_worker_metrics_on_the_coordinator_primary(cluster, prom):
    coordinator = cluster.leader(0).name
    rows = prom.query(f'citus_node_active{{{SEL},noderole="primary"}}')
    assert {r["metric"]["pod"] for r in rows} == {coordinator}, rows
    workers = {r["metric"]["groupid"]: float(r["value"][1]) for r in rows
               if r["metric"]["groupid"] != "0"}
    assert workers == {str(g): 1.0 for g in cluster.groups if g != 0}
    names = {r["metric"]["groupid"]: r["metric"]["nodename"] for r in rows}
    for g in cluster.groups[1:]:
        assert names[str(g)] == cluster.leader(g).dns_name


def test_no_exporter_errors_on_any_member(cluster, prom):
    """pg_up 1 and pg_exporter_last_scrape_error 0 on every member, replicas included, over
    the last scrapes (not just the latest one)."""
    pods = set(cluster.pods)
    cluster.wait_for("pg_up 1 on every member",
                     lambda: set(values_by_pod(prom, f"pg_up{{{SEL}}} == 1")) == pods, 90)
    cluster.wait_for("no exporter error on any member",
                     lambda: set(values_by_pod(prom, f"pg_exporter_last_scrape_error{{{SEL}}} == 0"))
                     == pods, 60)
    time.sleep(10)  # five scrapes
    worst = values_by_pod(prom, f"max_over_time(pg_exporter_last_scrape_error{{{SEL}}}[10s])")
    assert worst == {p: 0.0 for p in pods}, worst
    loads = values_by_pod(prom, f"pg_exporter_user_queries_load_error{{{SEL}}} == 1")
    assert not loads, f"queries.yaml failed to load: {loads}"


def test_agent_metrics(cluster, prom):
    pods = set(cluster.pods)
    for name in ("citus_init_agent_start_time_seconds", "citus_init_agent_restarts_total"):
        assert set(values_by_pod(prom, f"{name}{{{SEL}}}")) == pods, name
    if cluster.spec.ssl:
        server = values_by_pod(prom, f'citus_init_certificate_expiry_timestamp_seconds{{{SEL},'
                                     f'certificate="server"}} > time()')
        assert set(server) == pods, server


def leader_runs(cluster, group: int, args: list, timeout: float) -> None:
    """citus-init ARGS in the group's primary, like kubectl exec; it must succeed."""
    leader = cluster.writable_leader(group)
    assert leader is not None, f"group {group} has no writable primary"
    res = leader.exec([leader.command[0], *args], timeout=timeout)
    msg = f"citus-init {' '.join(args)} on {leader.name}: exit {res.returncode}: {res.stderr[-800:]}"
    assert res.returncode == 0, msg


@pytest.fixture(scope="module")
def dashboard_data(cluster):
    """What the panels need beyond a running cluster: a backup of every group and a restore
    point (the backup panels), and a session holding connections to the workers (Citus'
    connection pool)."""
    held = None
    if CITUS:
        held = cluster.connect_primary(0)
        with held.cursor() as cur:
            cur.execute("SELECT count(*) FROM e2e_mon")
    if BACKUPS_PROBLEM is None:
        for g in cluster.groups:  # what scripts/demo backup does
            leader_runs(cluster, g, ["backup", "--type", "full"], timeout=600)
        if CITUS:
            leader_runs(cluster, 0, ["restore-point"], timeout=300)
    yield
    if held is not None:
        held.close()


@pytest.mark.parametrize("title", dashboard.titles())
def test_dashboard_panel_returns_data(cluster, prom, dashboard_data, title):
    if title in dashboard.NEEDS_CITUS and not CITUS:
        pytest.skip("needs Citus (not installed, or DEMO_CITUS=false)")
    if title in dashboard.NEEDS_BACKUPS:
        if BACKUPS_PROBLEM is not None:
            pytest.skip(f"needs backups: {BACKUPS_PROBLEM}")
        if title == "Newest restore point" and not CITUS:
            pytest.skip("restore points are Citus-only")
    dashboard.wait_panel_data(title, prom.query, dashboard.variables(NAME), timeout=90)


def test_dashboard_variables_have_values(cluster, prom):
    for name, match, label in dashboard.variable_queries(dashboard.variables(NAME)):
        values = prom.api(f"label/{label}/values", **{"match[]": match})
        assert values, f"${name}: {match}"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cost_printed(cluster, prom, capsys):
    """What metrics cost here (printed, never asserted): the exporters' resident memory and
    CPU per scrape (scrapes counted by the exporter itself), Prometheus' memory and CPU."""
    scrapes = {r["metric"]["pod"]: float(r["value"][1])
               for r in prom.query(f"pg_exporter_scrapes_total{{{SEL}}}")}
    rows = []
    for pod in cluster.pods.values():
        proc, _ = exporter_of(pod)
        rows.append((rss_mib(proc.pid), 1000 * cpu_seconds(proc.pid) / max(scrapes.get(pod.name, 0), 1)))
    p = prom.proc[0]
    with capsys.disabled():
        print(f"\nexporters ({len(rows)} pods, scrape every {metrics.SCRAPE_INTERVAL}): "
              f"RSS {min(r[0] for r in rows):.1f}-{max(r[0] for r in rows):.1f} MiB, CPU "
              f"{min(r[1] for r in rows):.1f}-{max(r[1] for r in rows):.1f} ms per scrape "
              f"(since start, first connections included); Prometheus: RSS {rss_mib(p):.0f} MiB, "
              f"CPU {cpu_seconds(p):.1f} s since start")


def no_leader_alert(prom, group: int):
    """The CitusGroupNoLeader alert of the group (its state), or None."""
    for a in prom.alerts():
        lab = a["labels"]
        if (lab.get("alertname") == "CitusGroupNoLeader" and lab.get("cluster_name") == NAME
                and lab.get("citus_group") == str(group)):
            return a["state"]
    return None


def test_worker_primary_loss_raises_no_leader_until_the_failover(cluster, prom, capsys):
    group = 1  # a worker group (without Citus: group 1's own HA cluster)
    for g in cluster.groups:
        assert no_leader_alert(prom, g) is None, f"group {g} alerts before anything happened"
    wait_promotable(cluster, group)
    old = cluster.writable_leader(group)
    exporter, _ = exporter_of(old)
    killed = time.monotonic()
    old.signal(signal.SIGKILL)
    assert old.wait(timeout=30) == 128 + signal.SIGKILL
    assert not procs.same_process(exporter.pid, exporter.start_ticks), \
        f"{old.name}'s exporter outlived the pod"

    phases, new_leader_at = {}, None
    deadline = killed + 180
    while "resolved" not in phases:
        assert time.monotonic() < deadline, f"CitusGroupNoLeader for group {group}: {phases}"
        state = no_leader_alert(prom, group)
        now = time.monotonic() - killed
        if state == "pending":
            phases.setdefault("pending", now)
        elif state == "firing":
            phases.setdefault("firing", now)
        elif state is None and "firing" in phases:
            phases["resolved"] = now
        if new_leader_at is None and cluster.leader(group) not in (None, old):
            new_leader_at = now
        time.sleep(0.25)
    assert list(phases) == ["pending", "firing", "resolved"], phases
    new = wait_new_leader(cluster, group, old, timeout=30)
    with capsys.disabled():
        print(f"\nCitusGroupNoLeader (group {group}, for 10s, scrape {metrics.SCRAPE_INTERVAL}, "
              f"evaluation {metrics.EVALUATION_INTERVAL}) after SIGKILL of {old.name}: pending "
              f"{phases['pending']:.1f}s, firing {phases['firing']:.1f}s, new leader "
              f"{new.name} seen {new_leader_at or float('nan'):.1f}s, resolved "
              f"{phases['resolved']:.1f}s")
    assert values_by_pod(prom, f'patroni_primary{{{SEL},citus_group="{group}"}} == 1') \
        == {new.name: 1.0}

    old.start()  # the kubelet restarts the pod; its exporter comes back with it
    wait_replica_streaming(cluster, old)
    cluster.wait_for(f"{old.name}'s endpoints up again", lambda: len(prom.query(
        f'up{{{SEL},pod="{old.name}"}} == 1')) == len(JOBS), 90)


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
