"""The Kubernetes suite's session: a loopback control plane, the kubelet stand-in, helm.

The run script passes KUBE_APISERVER, KUBE_CONTROLLER_MANAGER and HELM (built and cached by
scripts/lib/common.sh). Everything started here is stopped by PID at the end of the session,
also when a test fails. KEEP_TEST_DIR=1 keeps the state directory (logs of every pod).
"""
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from controlplane import ControlPlane, KubeError  # noqa: E402
from kubelet import LOOPBACK_ANNOTATION  # noqa: E402

CHART = ROOT / "helm" / "citus-cluster"
PRIMARY_ROLES = ("primary", "master")


def wait_for(what, check, timeout, interval=1.0):
    """Poll check() until it returns something true; return it or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (OSError, KubeError, ValueError, KeyError, TypeError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Kube:
    def __init__(self, state, cp, kubelet_log):
        self.state = state
        self.cp = cp
        self.api = cp.api()
        self.kubelet_log = kubelet_log
        self.helm_bin = os.environ["HELM"]

    # -- helm ------------------------------------------------------------------------------
    def helm(self, *args, check=True, timeout=900):
        env = {"PATH": os.environ["PATH"], "HOME": str(self.state / "home"),
               "KUBECONFIG": str(self.cp.admin_kubeconfig),
               "HELM_CACHE_HOME": str(self.state / "helm-cache"),
               "HELM_CONFIG_HOME": str(self.state / "helm-config"),
               "HELM_DATA_HOME": str(self.state / "helm-data")}
        res = subprocess.run([self.helm_bin, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stdout}\n--- kubelet log tail:\n{self.kubelet_tail()}")
        return res

    def kubelet_tail(self, n=40):
        try:
            return "\n".join(self.kubelet_log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def pod_log(self, ns, name):
        p = self.state / "kubelet" / "logs" / f"{ns}_{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    # -- objects ---------------------------------------------------------------------------
    def pods(self, ns, selector=None):
        params = {"labelSelector": selector} if selector else {}
        return self.api.get(f"/api/v1/namespaces/{ns}/pods", **params)["items"]

    def pod(self, ns, name):
        return self.api.get_or_none(f"/api/v1/namespaces/{ns}/pods/{name}")

    def endpoints(self, ns, name):
        return self.api.get_or_none(f"/api/v1/namespaces/{ns}/endpoints/{name}")

    def secret_data(self, ns, name):
        s = self.api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
        return {k: base64.b64decode(v).decode() for k, v in s["data"].items()}

    # -- the database pods -----------------------------------------------------------------
    @staticmethod
    def addr(pod):
        """The loopback address the pod listens on (its pod IP is only a number, see
        kubelet.py)."""
        return pod["metadata"]["annotations"][LOOPBACK_ANNOTATION]

    @staticmethod
    def api_scheme(pod):
        """http or https: what the chart's probes use for this pod's Patroni REST API."""
        probe = pod["spec"]["containers"][0].get("readinessProbe") or {}
        return probe.get("httpGet", {}).get("scheme", "HTTP").lower()

    @classmethod
    def patroni(cls, pod, path="/patroni", timeout=3):
        ip = cls.addr(pod)
        scheme = cls.api_scheme(pod)
        # like the kubelet's probes, no certificate check here (test_c_ssl_persistence checks it)
        ctx = ssl._create_unverified_context() if scheme == "https" else None
        with urllib.request.urlopen(f"{scheme}://{ip}:8008{path}", timeout=timeout,
                                    context=ctx) as r:
            return json.loads(r.read().decode())

    def group_pods(self, ns, cluster, group):
        return sorted(self.pods(ns, f"cluster-name={cluster},citus-group={group}"),
                      key=lambda p: p["metadata"]["name"])

    def leader(self, ns, cluster, group):
        """(pod, endpoints) when the group's leader Endpoints name a running primary whose
        address is in the Endpoints; else None."""
        ep = self.endpoints(ns, f"{cluster}-{group}")
        if not ep:
            return None
        name = (ep["metadata"].get("annotations") or {}).get("leader")
        pod = self.pod(ns, name) if name else None
        if not pod or not pod["status"].get("podIP"):
            return None
        st = self.patroni(pod)
        addrs = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        if st.get("role") in PRIMARY_ROLES and st.get("state") == "running" \
                and addrs == [pod["status"]["podIP"]]:
            return pod, ep
        return None

    def wait_leaders(self, ns, cluster, groups, timeout):
        return wait_for(f"a leader in every group {groups} of {ns}/{cluster}",
                        lambda: (lambda found: found if all(found.values()) else None)(
                            {g: self.leader(ns, cluster, g) for g in groups}), timeout, 2)

    def wait_replicas_running(self, ns, cluster, group, count, timeout):
        def running():
            pods = self.group_pods(ns, cluster, group)
            states = [self.patroni(p) for p in pods if p["status"].get("podIP")]
            replicas = [s for s in states if s.get("role") == "replica"
                        and s.get("state") in ("running", "streaming")]
            return len(replicas) == count and pods
        return wait_for(f"{count} running replica(s) in group {group}", running, timeout, 2)

    def sql(self, pod, query, password, dbname="citus", sslmode="prefer", sslrootcert=None):
        import psycopg2
        kw = {"host": self.addr(pod), "port": 5432, "user": "postgres",
              "password": password, "dbname": dbname, "connect_timeout": 5,
              "sslmode": sslmode}
        if sslrootcert:
            kw["sslrootcert"] = str(sslrootcert)
        conn = psycopg2.connect(**kw)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def wait_no_pods(self, ns, selector=None, timeout=180):
        wait_for(f"every pod of {ns} ({selector or 'all'}) gone",
                 lambda: not self.pods(ns, selector), timeout, 2)

    def remove_release(self, ns, release="citus"):
        """helm uninstall, then delete the namespace (hook leftovers, PVCs) and wait until
        it is gone: the next scenario starts on an idle machine."""
        # no --wait: the namespace deletion below waits for everything
        self.helm("uninstall", release, "-n", ns, check=False)
        self.api.delete(f"/api/v1/namespaces/{ns}")
        wait_for(f"namespace {ns} deleted", lambda: self.api.get_or_none(
            f"/api/v1/namespaces/{ns}") is None, 300, 2)


def sockets_to_object_only_addresses():
    """TCP sockets (any state) whose peer is a pod IP or a ClusterIP: numbers that must only
    appear in objects here. Returns the offending `ss` lines (none expected)."""
    out = subprocess.run(["ss", "-tanH"], stdout=subprocess.PIPE, text=True).stdout
    bad = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5:
            peer = fields[4].rsplit(":", 1)[0]
            if peer.startswith(("198.18.", "198.19.", "10.96.")):
                bad.append(line)
    return bad


@pytest.fixture(scope="session")
def kube():
    for var in ("KUBE_APISERVER", "KUBE_CONTROLLER_MANAGER", "HELM"):
        if not os.environ.get(var):
            pytest.fail(f"{var} is not set: run tests/k8s/run (it builds and passes them)")
    state = Path(tempfile.mkdtemp(prefix="pck-k8s-", dir="/tmp"))
    os.chmod(state, 0o755)
    cp = ControlPlane(state / "control-plane", os.environ["KUBE_APISERVER"],
                      os.environ["KUBE_CONTROLLER_MANAGER"])
    kubelet = None
    kubelet_log = state / "kubelet.log"
    try:
        t0 = time.monotonic()
        cp.start()
        print(f"\ncontrol plane up in {time.monotonic() - t0:.1f}s (state {state})")
        with open(kubelet_log, "ab") as out:
            kubelet = subprocess.Popen(
                [sys.executable, str(HERE / "kubelet.py"), "--pki", str(cp.certs),
                 "--state", str(state / "kubelet")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        k = Kube(state, cp, kubelet_log)
        wait_for("the kubelet stand-in's Node", lambda: k.api.get_or_none(
            "/api/v1/nodes/pck-node"), 30)
        yield k
    finally:
        if kubelet is not None and kubelet.poll() is None:
            kubelet.send_signal(signal.SIGTERM)  # it stops every pod it runs, by PID
            try:
                kubelet.wait(120)
            except subprocess.TimeoutExpired:
                kubelet.kill()
                kubelet.wait(10)
        cp.stop()
        if os.environ.get("KEEP_TEST_DIR") == "1":
            print(f"state kept: {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(autouse=True)
def _timing(request):
    t0 = time.monotonic()
    yield
    print(f"\nTIMING {request.node.nodeid}: {time.monotonic() - t0:.1f}s")
