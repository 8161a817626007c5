"""helm install with SSL verify-full, persistent volumes and the extension list: leaders,
extensions, helm test; helm uninstall leaves the PVCs and the documented leftovers."""
import base64
import http.client
import json
import shutil
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import CHART, ROOT, wait_for
from kubelet import LOOPBACK_SUBNET

NS = "citus-ssl"
CLUSTER = "citusdemo"
GROUPS = [0, 1, 2]
MEMBERS = {0: 3, 1: 2, 2: 2}
EXTENSIONS = ["postgis", "postgis_topology", "pg_partman"]


@pytest.fixture(scope="module")
def certs(kube):
    out = kube.state / "ssl-certs"
    # In a real pod, Patroni's own local connections go to 127.0.0.1, which the certificate
    # names; here each pod listens on its own loopback address, so the test certificate
    # names those too (the kubelet stand-in's address pool).
    pool = [f"{LOOPBACK_SUBNET}.{n}" for n in range(2, 250)]
    subprocess.run([str(ROOT / "scripts" / "generate-ssl-certs.sh"), "--cluster", CLUSTER,
                    "--namespace", NS, "--out", str(out), "--days", "2",
                    "--extra-san", *pool],
                   check=True, stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def release(kube, certs):
    kube.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NS}})
    kube.api.post(f"/api/v1/namespaces/{NS}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{CLUSTER}-ssl-certs"},
        "data": {f: base64.b64encode((certs / f).read_bytes()).decode()
                 for f in ("ca.crt", "server.crt", "server.key")}})
    t0 = time.monotonic()
    res = kube.helm("install", "citus", str(CHART), "-n", NS, "--timeout", "15m",
                    "--set", "ssl.enabled=true", "--set", "ssl.mode=verify-full",
                    # the test's own certificates (left empty, the chart would generate its own
                    # and refuse to replace a secret it did not create)
                    "--set", f"ssl.secretName={CLUSTER}-ssl-certs",
                    "--set", "storage.persistentVolume.enabled=true",
                    "--set", "additionalExtensions.enabled=true")
    print(f"\nTIMING helm install (verify-full + PVCs + extensions): {time.monotonic() - t0:.1f}s")
    yield res
    t0 = time.monotonic()
    kube.remove_release(NS)
    print(f"\nTIMING helm uninstall + namespace deletion: {time.monotonic() - t0:.1f}s")


def test_leaders_and_extensions(kube, release, certs):
    # helm install returned: the post-install extensions Job succeeded
    job = kube.api.get_or_none(f"/apis/batch/v1/namespaces/{NS}/jobs/{CLUSTER}-extensions-setup")
    assert job is None or job["status"].get("succeeded") == 1, job and job["status"]
    leaders = kube.wait_leaders(NS, CLUSTER, GROUPS, 600)
    for g, count in MEMBERS.items():
        kube.wait_replicas_running(NS, CLUSTER, g, count - 1, 300)
    pw = kube.secret_data(NS, CLUSTER)["superuser-password"]
    coord = leaders[0][0]
    have = {r[0] for r in kube.sql(coord, "SELECT extname FROM pg_extension", pw,
                                   sslmode="require")}
    assert set(EXTENSIONS) <= have, have
    # every member serves TLS
    for pod in kube.pods(NS, f"cluster-name={CLUSTER},citus-group"):
        row = kube.sql(pod, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", pw,
                       dbname="postgres", sslmode="require")
        assert row == [(True,)], pod["metadata"]["name"]


def test_rest_api_serves_https_only(kube, release, certs):
    """ssl.enabled: every member's Patroni REST API serves https with its certificate (checked
    against the CA, names included: the test certificate names the pod addresses); plain http
    is refused; the kubelet probes over https."""
    kube.wait_leaders(NS, CLUSTER, GROUPS, 600)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    for pod in kube.pods(NS, f"cluster-name={CLUSTER},citus-group"):
        name, ip = pod["metadata"]["name"], kube.addr(pod)
        assert kube.api_scheme(pod) == "https", name
        with urllib.request.urlopen(f"https://{ip}:8008/patroni", timeout=10, context=ctx) as r:
            assert json.loads(r.read().decode())["state"] in ("running", "streaming"), name
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://{ip}:8008/patroni", timeout=10).read()


def test_helm_test_passes(kube, release):
    res = kube.helm("test", "citus", "-n", NS, "--timeout", "5m", check=False)
    log = kube.pod_log(NS, f"{CLUSTER}-test")
    assert res.returncode == 0, f"helm test failed:\n{res.stdout}\n--- test pod log:\n{log}"
    assert "sslmode=verify-full" in log, log
    for ext in EXTENSIONS:
        assert f"ok: extension {ext}" in log, log


def test_uninstall_leaves_what_the_readme_says(kube, release):
    """helm uninstall --wait returns (no Service comes back), and what stays is exactly what
    the chart README lists: the PVCs, the hook objects (extensions Job and its pod, the test
    pod) and Patroni's Endpoints (leader, -config, -sync with the default synchronous mode,
    -failover), all labelled cluster-name=<c>; the README's
    `kubectl delete job,pod,endpoints -l cluster-name=<c>` then leaves only the PVCs."""
    pvcs = kube.api.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims")["items"]
    assert len(pvcs) == 7, [p["metadata"]["name"] for p in pvcs]
    kube.helm("uninstall", "citus", "-n", NS, "--wait", "--timeout", "5m")
    kube.wait_no_pods(NS, "citus-group")
    # the data stays
    pvcs_after = kube.api.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims")["items"]
    assert sorted(p["metadata"]["name"] for p in pvcs_after) == sorted(
        p["metadata"]["name"] for p in pvcs)
    kinds = [("/api/v1/namespaces/{ns}/pods", "Pod"),
             ("/api/v1/namespaces/{ns}/services", "Service"),
             ("/api/v1/namespaces/{ns}/endpoints", "Endpoints"),
             ("/api/v1/namespaces/{ns}/configmaps", "ConfigMap"),
             ("/api/v1/namespaces/{ns}/secrets", "Secret"),
             ("/api/v1/namespaces/{ns}/serviceaccounts", "ServiceAccount"),
             ("/apis/apps/v1/namespaces/{ns}/statefulsets", "StatefulSet"),
             ("/apis/batch/v1/namespaces/{ns}/jobs", "Job"),
             ("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", "PodDisruptionBudget"),
             ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", "Role"),
             ("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", "RoleBinding")]
    # not the release's: the namespace's own objects and the TLS secret the test created
    not_ours = {"kube-root-ca.crt", "default", f"{CLUSTER}-ssl-certs"}

    def leftovers():
        left = {}
        for path, kind in kinds:
            objs = [o for o in kube.api.get(path.format(ns=NS))["items"]
                    if o["metadata"]["name"] not in not_ours]
            if objs:
                left[kind] = objs
        return left

    # what the README says may stay (besides the PVCs)
    documented = {"Job": {f"{CLUSTER}-extensions-setup"},
                  "Pod": {f"{CLUSTER}-test"},
                  "Endpoints": {f"{CLUSTER}-{g}{suffix}" for g in GROUPS
                                for suffix in ("", "-config", "-sync", "-failover")}}

    def undocumented():
        bad = []
        for kind, objs in leftovers().items():
            for o in objs:
                name = o["metadata"]["name"]
                job_pod = kind == "Pod" and name.startswith(f"{CLUSTER}-extensions-setup-")
                if not job_pod and name not in documented.get(kind, set()):
                    bad.append(f"{kind} {name}")
                elif o["metadata"].get("labels", {}).get("cluster-name") != CLUSTER:
                    bad.append(f"{kind} {name} (without the cluster-name label)")
        return bad
    # garbage collection (Endpoints of deleted Services) takes moments
    seen = []

    def none_undocumented():
        seen[:] = undocumented()
        return not seen
    try:
        wait_for("only documented leftovers", none_undocumented, 60, 2)
    except AssertionError as e:
        raise AssertionError(f"{e}; undocumented: {seen}") from None
    left = leftovers()
    print("after helm uninstall:", {k: sorted(o["metadata"]["name"] for o in v)
                                    for k, v in left.items()})
    # the hook Job is kept for its logs
    assert [j["metadata"]["name"] for j in left.get("Job", [])] == [f"{CLUSTER}-extensions-setup"]

    # the README's clean-up command
    if shutil.which("kubectl"):
        subprocess.run(["kubectl", "--kubeconfig", str(kube.cp.admin_kubeconfig), "-n", NS,
                        "delete", "job,pod,endpoints", "-l", f"cluster-name={CLUSTER}"],
                       check=True, stdout=subprocess.DEVNULL)
    else:  # the same through the API
        for path in ("/apis/batch/v1/namespaces/{ns}/jobs", "/api/v1/namespaces/{ns}/pods",
                     "/api/v1/namespaces/{ns}/endpoints"):
            kube.api.request("DELETE", path.format(ns=NS),
                             body={"kind": "DeleteOptions", "apiVersion": "v1",
                                   "propagationPolicy": "Background"},
                             params={"labelSelector": f"cluster-name={CLUSTER}"})
    wait_for("nothing but the PVCs left", lambda: not leftovers(), 60, 2)
