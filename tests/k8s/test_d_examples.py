"""Every examples/*.yaml installed by running the commands of its header as they are written
(bash, from a directory laid out like the repository root, kubectl and helm against this
control plane), then `helm test` passes. A header that forgets a secret key, a priority
class or a namespace flag fails here the way it would fail for a user.

What the stand-ins change, and only that:
- the examples' prerequisites that are not commands: cert-manager with the ClusterIssuer
  `internal-ca` (tests/k8s/certmanager.py); images, storage classes and node placement are
  not checked by the kubelet stand-in;
- certificates also name the pods' loopback addresses, as in test_c_ssl_persistence (every
  pod listens on its own loopback address here): scripts/generate-ssl-certs.sh is called
  through a wrapper that appends `--extra-san <the pool>`, and the cert-manager stand-in
  adds them itself.
"""
import importlib.util
import os
import shutil
import subprocess
import time

import pytest
import yaml

from certmanager import CertManager
from conftest import ROOT
from kubelet import LOOPBACK_SUBNET

EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml"))
POOL = [f"{LOOPBACK_SUBNET}.{n}" for n in range(2, 250)]


def _example_headers():
    """tests/chart/example_headers.py, the one parser of the examples' headers."""
    spec = importlib.util.spec_from_file_location(
        "example_headers", ROOT / "tests" / "chart" / "example_headers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


headers = _example_headers()


@pytest.fixture(scope="module")
def cert_manager(kube):
    cm = CertManager(kube.api, extra_ips=POOL)
    cm.install()
    cm.add_cluster_issuer("internal-ca")
    cm.start()
    yield cm
    cm.stop()
    cm.uninstall()
    assert not cm.errors, cm.errors


def _workdir(kube, name):
    """A directory laid out like the repository root for the header's relative paths, with
    the generate-ssl-certs.sh wrapper; and a bin directory with helm."""
    work = kube.state / "examples" / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "scripts").mkdir(parents=True)
    for entry in ("helm", "examples"):
        (work / entry).symlink_to(ROOT / entry)
    for entry in (ROOT / "scripts").iterdir():
        if entry.name != "generate-ssl-certs.sh":
            (work / "scripts" / entry.name).symlink_to(entry)
    wrapper = work / "scripts" / "generate-ssl-certs.sh"
    wrapper.write_text("#!/bin/sh\n# the kubelet stand-in's pods listen on their own loopback addresses\n"
                       f'exec "{ROOT}/scripts/generate-ssl-certs.sh" "$@" --extra-san {" ".join(POOL)}\n')
    wrapper.chmod(0o755)
    bindir = work / ".bin"
    bindir.mkdir()
    (bindir / "helm").symlink_to(kube.helm_bin)
    return work, bindir


def _namespace(example):
    ns = set(headers.namespaces(str(example)))
    assert len(ns) == 1, ns
    script = headers.header_script(str(example))
    value = ns.pop()
    if value.startswith("$"):  # NS=... at the top of the header
        var = value.strip("${}")
        (line,) = [l for l in script.splitlines() if l.startswith(var + "=")]
        value = line.split("=", 1)[1].strip()
    return value


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_installs_as_its_header_says(kube, cert_manager, example):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the examples' headers use it")
    values = yaml.safe_load(example.read_text())
    cluster, ns = values["clusterName"], _namespace(example)
    work, bindir = _workdir(kube, example.stem)
    script = headers.header_script(str(example))
    assert "helm install" in script and "helm test" in script, script
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(kube.state / "home"),
           "KUBECONFIG": str(kube.cp.admin_kubeconfig),
           "HELM_CACHE_HOME": str(kube.state / "helm-cache"),
           "HELM_CONFIG_HOME": str(kube.state / "helm-config"),
           "HELM_DATA_HOME": str(kube.state / "helm-data")}
    priority = values.get("priorityClassName")
    t0 = time.monotonic()
    try:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        print(f"\nTIMING {example.name}: header commands {time.monotonic() - t0:.1f}s")
        log = kube.pod_log(ns, f"{cluster}-test")
        assert res.returncode == 0, (f"the header of {example.name} failed ({res.returncode}):\n{res.stdout}"
                                     f"\n--- test pod log:\n{log}\n--- kubelet log tail:\n{kube.kubelet_tail()}")
        assert "all checks passed" in log, log
        assert f"ok: {len(values.get('workers', []))} active worker nodes" in log, log
        for ext in (values.get("additionalExtensions") or {}).get("extensions", []) \
                if (values.get("additionalExtensions") or {}).get("enabled") else []:
            assert f"ok: extension {ext.split(':')[0]}" in log, log
        if (values.get("ssl") or {}).get("enabled"):
            assert f"sslmode={values['ssl']['mode']}" in log, log
        # every database pod runs the example's security settings (admitted under the
        # namespace's Pod Security level, when the header sets one)
        pods = kube.pods(ns, f"cluster-name={cluster},citus-group")
        assert len(pods) == (values.get("coordinator") or {}).get("replicas", 3) + sum(
            int(w["replicas"]) for w in values.get("workers", []))
        if (values.get("securityContext") or {}).get("runAsNonRoot"):
            for p in pods:
                assert p["spec"]["securityContext"]["runAsNonRoot"] is True
    finally:
        kube.remove_release(ns)
        if priority:  # cluster-scoped, created by the header
            kube.api.delete(f"/apis/scheduling.k8s.io/v1/priorityclasses/{priority}")
