"""Metrics on Kubernetes (issue #17): without the Prometheus Operator's CRDs `helm install`
with the monitors on is refused and creates nothing; with them (the operator's own CRDs,
ensure_prometheus_operator_crds) the PodMonitor and PrometheusRule are accepted as rendered
(nothing pruned by their schemas) and the dashboard ConfigMap exists; the pods declare the
metrics ports, their exporter container runs (as nobody) and serves its metrics; with a
citus-init whose agent serves metrics, the agent's endpoints answer and the exporter logs in.
The tests of this module run in order on one small release (one member per group)."""
import os
import re
import signal
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import CHART, wait_for
from controlplane import KubeError

NS = "citus-metrics"
CLUSTER = "citusmon"
GROUPS = [0, 1]
CRD_FILES = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
ASSETS = CHART / "files" / "monitoring"
MONITORS = ["--set", "metrics.podMonitor.enabled=true", "--set", "metrics.podMonitor.labels.release=kps",
            "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kps",
            "--set", "metrics.dashboard.enabled=true"]
SMALL = ["--set", f"clusterName={CLUSTER}", "--set", "coordinator.replicas=1",
         "--set", "workers[0].citusGroup=1", "--set", "workers[0].citusType=worker",
         "--set", "workers[0].replicas=1"]
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MON = "/apis/monitoring.coreos.com/v1/namespaces/" + NS


def crd_dir():
    d = os.environ.get("PROMETHEUS_OPERATOR_CRDS")
    if not d or not all((Path(d) / f).is_file() for f in CRD_FILES):
        pytest.skip("the Prometheus Operator's CRDs are not there (PROMETHEUS_OPERATOR_CRDS, set by "
                    "tests/k8s/run through ensure_prometheus_operator_crds, which needs Go or the cache)")
    return Path(d)


def agent_serves_metrics():
    """Whether the citus-init built here knows AGENT_METRICS_PORT (the agent's metrics
    endpoint is built on another branch of issue #17)."""
    from localcluster import paths  # scripts/lib is on sys.path through kubelet.py (conftest)
    binary = paths.citus_init_binary()
    files = [binary] + sorted(binary.parent.rglob("*.so"))
    return any(b"AGENT_METRICS_PORT" in f.read_bytes() for f in files if f.is_file())


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def sample(text, name):
    """The value of an unlabelled sample `name` in Prometheus text, or None."""
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_monitors_refused_without_the_crds(kube):
    crd_dir()
    assert kube.api.get_or_none(f"{CRD_PATH}/podmonitors.monitoring.coreos.com") is None
    res = kube.helm("install", "citus", str(CHART), "-n", NS, "--create-namespace", *SMALL, *MONITORS,
                    check=False)
    assert res.returncode != 0, res.stdout
    assert "PodMonitor" in res.stdout and "ensure CRDs are installed first" in res.stdout, res.stdout
    assert kube.helm("status", "citus", "-n", NS, check=False).returncode != 0
    assert kube.api.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets")["items"] == []


@pytest.fixture(scope="module")
def crds(kube):
    d = crd_dir()
    names = []
    for f in CRD_FILES:
        crd = yaml.safe_load((d / f).read_text())
        names.append(crd["metadata"]["name"])
        try:
            kube.api.post(CRD_PATH, crd)
        except KubeError as e:
            if e.status != 409:
                raise
    for name in names:
        wait_for(f"CRD {name} established", lambda: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (kube.api.get(f"{CRD_PATH}/{name}").get("status") or {}).get("conditions") or []), 60, 0.5)
    yield names
    for name in names:
        kube.api.delete(f"{CRD_PATH}/{name}")


@pytest.fixture(scope="module")
def release(kube, crds):
    res = kube.helm("install", "citus", str(CHART), "-n", NS, "--create-namespace", *SMALL, *MONITORS,
                    "--timeout", "10m")
    yield res
    kube.remove_release(NS)


def rendered(kube, kind, name):
    manifest = kube.helm("get", "manifest", "citus", "-n", NS).stdout
    found = [d for d in yaml.safe_load_all(manifest) if d and d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_monitors_accepted_as_rendered(kube, release):
    pm = kube.api.get(f"{MON}/podmonitors/{CLUSTER}")
    assert pm["spec"] == rendered(kube, "PodMonitor", CLUSTER)["spec"], "the CRD's schema pruned or changed fields"
    assert pm["metadata"]["labels"]["release"] == "kps"
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics-agent", "metrics", "metrics-agent"]
    pr = kube.api.get(f"{MON}/prometheusrules/{CLUSTER}")
    assert pr["spec"] == yaml.safe_load((ASSETS / "alerts.yaml").read_text())
    assert pr["metadata"]["labels"]["release"] == "kps"
    cm = kube.api.get(f"/api/v1/namespaces/{NS}/configmaps/{CLUSTER}-dashboard")
    assert cm["data"]["patroni-citus-k8s.json"] == (ASSETS / "dashboard.json").read_text()
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def exporter_process(addr):
    """(pid, [real, effective, saved, file-system uid]) of the exporter listening on addr."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if Path(cmd[0].decode()).name == "prometheus-postgres-exporter" and \
                    f"--web.listen-address={addr}:9187".encode() in cmd:
                status = (proc / "status").read_text()
                return int(proc.name), re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        except (OSError, IndexError):
            continue
    return None


def socket_in_shared_volume(kube, pod):
    """PostgreSQL's socket file in the pod's `sockets` emptyDir (the kubelet stand-in's
    directory of it), which both containers mount at /var/run/postgresql."""
    m = pod["metadata"]
    vol = kube.state / "kubelet" / "pods" / f"{m['namespace']}_{m['name']}_{m['uid'][:8]}" / "volumes" / "sockets"
    return (vol / ".s.PGSQL.5432").is_socket()


def test_pods_expose_the_metrics_ports(kube, release):
    kube.wait_leaders(NS, CLUSTER, GROUPS, 420)
    pods = kube.pods(NS, f"cluster-name={CLUSTER},citus-group")
    assert len(pods) == 2
    for pod in pods:
        name = pod["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert ports["metrics"] == 9187 and ports["metrics-agent"] == 9188, ports

        def exporter_ready():
            p = kube.pod(NS, name)
            st = {c["name"]: c for c in p["status"].get("containerStatuses", [])}
            return st.get("exporter", {}).get("ready") and p
        p = wait_for(f"{name}: the exporter container ready", exporter_ready, 120, 1)
        st = {c["name"]: c for c in p["status"]["containerStatuses"]}
        assert st["exporter"]["restartCount"] == 0 and "running" in st["exporter"]["state"]
        addr = kube.addr(pod)
        assert exporter_process(addr)[1] == ["65534"] * 4, "the exporter runs as nobody"
        status, text = get(f"http://{addr}:9187/metrics")
        assert status == 200 and "pg_up" in text and "pg_exporter_last_scrape_error" in text, text[-2000:]
        assert socket_in_shared_volume(kube, pod), "PostgreSQL's socket is not in the shared sockets volume"
    # every member is Ready: both containers' readiness
    wait_for("every pod Ready", lambda: all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group")), 120, 2)


def test_exporter_restarts_alone(kube, release):
    """A dead exporter is restarted by itself; the database container goes on."""
    pod = kube.pods(NS, f"cluster-name={CLUSTER},citus-group=1")[0]
    name, addr = pod["metadata"]["name"], kube.addr(pod)
    pid, _ = exporter_process(addr)
    os.kill(pid, signal.SIGKILL)

    def restarted():
        st = {c["name"]: c for c in kube.pod(NS, name)["status"]["containerStatuses"]}
        return st["exporter"]["restartCount"] == 1 and st["exporter"]["ready"] and st
    st = wait_for(f"{name}: the exporter restarted and ready", restarted, 60, 1)
    assert st["postgres"]["restartCount"] == 0 and "running" in st["postgres"]["state"]
    assert st["exporter"]["lastState"]["terminated"]["exitCode"] != 0
    assert exporter_process(addr)[0] != pid
    assert get(f"http://{addr}:9187/metrics")[0] == 200
    assert kube.patroni(pod)["state"] == "running"


def test_non_root_pod_shares_the_socket_too(kube, release):
    """securityContext.runAsNonRoot: citus-init (uid 999) cannot chown the sockets emptyDir
    and needs only to write to it; PostgreSQL's socket lands there and the exporter runs."""
    ns, cluster = NS + "-nonroot", "citusnr"
    kube.helm("install", "nonroot", str(CHART), "-n", ns, "--create-namespace", "--set", f"clusterName={cluster}",
              "--set", "coordinator.replicas=1", "--set-json", "workers=[]",
              "--set", "securityContext.runAsNonRoot=true", "--timeout", "10m")
    try:
        kube.wait_leaders(ns, cluster, [0], 420)
        (pod,) = kube.pods(ns, f"cluster-name={cluster},citus-group")
        wait_for("the socket in the shared volume", lambda: socket_in_shared_volume(kube, pod), 60, 1)
        addr = kube.addr(pod)
        assert exporter_process(addr)[1] == ["65534"] * 4
        assert get(f"http://{addr}:9187/metrics")[0] == 200
    finally:
        kube.remove_release(ns, "nonroot")


def test_agent_endpoints_and_exporter_login(kube, release):
    if not agent_serves_metrics():
        pytest.skip("the citus-init built here does not serve metrics yet (AGENT_METRICS_PORT is the agent's "
                    "side of issue #17): the agent's port 9188 and the exporter's login as citus_monitor "
                    "are checked once it does")
    kube.wait_leaders(NS, CLUSTER, GROUPS, 420)
    for pod in kube.pods(NS, f"cluster-name={CLUSTER},citus-group"):
        addr = kube.addr(pod)
        patroni = wait_for(f"{addr}:9188/patroni/metrics", lambda: get(f"http://{addr}:9188/patroni/metrics"), 60, 1)
        assert patroni[0] == 200 and sample(patroni[1], "patroni_primary") == 1.0, patroni[1][:2000]
        agent = get(f"http://{addr}:9188/metrics")
        assert agent[0] == 200 and "citus_init_" in agent[1], agent[1][:2000]
        # the agent created citus_monitor and its pg_ident line: the exporter logs in, without errors
        text = wait_for(f"{addr}: pg_up 1", lambda: (lambda t: sample(t, "pg_up") == 1.0 and t)(
            get(f"http://{addr}:9187/metrics")[1]), 120, 2)
        assert sample(text, "pg_exporter_last_scrape_error") == 0.0, text[-3000:]
