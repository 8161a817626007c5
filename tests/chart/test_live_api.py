"""The chart against a real kube-apiserver (no pods run): what `helm template` cannot show.

- every object of the production example passes the API server's own validation;
- generated passwords survive `helm upgrade` (lookup), explicit ones win and then stay; an
  upgrade of a release whose secret lacks a key (restapi-password) adds it;
- the generated CA and member certificate survive `helm upgrade`; a new worker group or a
  certificate close to its end gets a new member certificate from the same CA; a TLS secret
  that is not the release's is refused with a clear message; `helm upgrade --dry-run`
  (client side, no lookup) is refused, `--dry-run=server` is not;
- the backups' generated passphrase survives `helm upgrade` and `helm uninstall`
  (resource-policy keep); the same release name takes it over again, another one is refused
  with what to set; a posix repository claim likewise stays;
- two releases with bypassApiService never clash on the cluster-scoped ClusterRole;
- the API server's own PodSecurity admission agrees with tests/chart/pss.py: the defaults
  meet `baseline`, runAsNonRoot meets `restricted`, the defaults do not.

Runs when tests/chart/run found kube-apiserver and kube-controller-manager already built
by the Kubernetes suite (ensure_kube; building them here would take far too long) and no
other cluster test holds /tmp/pck-cluster.lock; otherwise it skips and says why."""
import base64
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import CHART, EXAMPLES, HELM, ROOT

LOCK = "/tmp/pck-cluster.lock"


@pytest.fixture(scope="module")
def cluster():
    apiserver = os.environ.get("KUBE_APISERVER", "")
    cm = os.environ.get("KUBE_CONTROLLER_MANAGER", "")
    if not (os.access(apiserver, os.X_OK) and os.access(cm, os.X_OK)):
        pytest.skip("KUBE_APISERVER/KUBE_CONTROLLER_MANAGER not set to built binaries: run this "
                    "suite through tests/chart/run, which builds them (ensure_kube)")
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed")
    lock = open(LOCK, "a")
    wait = int(os.environ.get("CHART_LIVE_API_WAIT", "0"))
    try:
        if wait > 0:  # queue for the lock like `flock` does, for at most `wait` seconds
            def give_up(signum, frame):
                raise BlockingIOError
            previous = signal.signal(signal.SIGALRM, give_up)
            signal.alarm(wait)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, previous)
        else:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        pytest.skip("another cluster test holds %s; not starting a control plane next to it "
                    "(CHART_LIVE_API_WAIT=SECONDS waits for it)" % LOCK)
    sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))
    from controlplane import ControlPlane
    state = tempfile.mkdtemp(prefix="pck-chart-api-")
    cp = ControlPlane(Path(state), apiserver, cm)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        shutil.rmtree(state, ignore_errors=True)
        lock.close()


def helm(cp, *args, check=True):
    env = dict(os.environ, KUBECONFIG=str(cp.admin_kubeconfig),
               HELM_CACHE_HOME=str(cp.dir / "helm-cache"), HELM_CONFIG_HOME=str(cp.dir / "helm-config"),
               HELM_DATA_HOME=str(cp.dir / "helm-data"))
    res = subprocess.run([HELM] + list(args), capture_output=True, text=True, env=env, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError("helm %s failed:\n%s%s" % (" ".join(args), res.stdout, res.stderr))
    return res


def passwords(cp, ns, name="citusdemo"):
    secret = cp.api().get("/api/v1/namespaces/%s/secrets/%s" % (ns, name))
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_production_example_passes_server_validation(cluster):
    prod = [e for e in EXAMPLES if e.endswith("production-values.yaml")]
    # --no-hooks: the extensions Job would wait for a coordinator no kubelet ever starts.
    helm(cluster, "install", "prod", CHART, "-n", "prod", "--create-namespace", "-f", prod[0], "--no-hooks")
    api = cluster.api()
    for name in ("citus-prod-0", "citus-prod-1", "citus-prod-2", "citus-prod-3"):
        sts = api.get("/apis/apps/v1/namespaces/prod/statefulsets/%s" % name)
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert api.get("/api/v1/namespaces/prod/services/citus-prod-workers")["spec"]["selector"]["role"] == "primary"


def test_generated_passwords_are_kept_across_upgrades(cluster):
    helm(cluster, "install", "rel", CHART, "-n", "db", "--create-namespace")
    first = passwords(cluster, "db")
    assert all(len(v) >= 32 for v in first.values())
    helm(cluster, "upgrade", "rel", CHART, "-n", "db")
    assert passwords(cluster, "db") == first
    helm(cluster, "upgrade", "rel", CHART, "-n", "db", "--set", "patroni.superuser.password=Expl1cit")
    now = passwords(cluster, "db")
    assert now["superuser-password"] == "Expl1cit"
    assert now["replication-password"] == first["replication-password"]
    helm(cluster, "upgrade", "rel", CHART, "-n", "db")  # value dropped again: the stored one stays
    assert passwords(cluster, "db")["superuser-password"] == "Expl1cit"
    # a release from before the REST API password: its secret lacks the key; the upgrade adds
    # one and keeps the others
    api = cluster.api()
    api.patch("/api/v1/namespaces/db/secrets/citusdemo", {"data": {"restapi-password": None}})
    old = passwords(cluster, "db")
    assert "restapi-password" not in old
    helm(cluster, "upgrade", "rel", CHART, "-n", "db")
    now = passwords(cluster, "db")
    assert len(now["restapi-password"]) >= 32
    assert {k: v for k, v in now.items() if k != "restapi-password"} == old
    helm(cluster, "upgrade", "rel", CHART, "-n", "db")
    assert passwords(cluster, "db") == now


def test_two_releases_with_bypass_api_service(cluster):
    for ns in ("a", "b"):
        helm(cluster, "install", "citus", CHART, "-n", ns, "--create-namespace",
             "--set", "patroni.bypassApiService=true", "--set", "secret.name=pw-" + ns)
    roles = cluster.api().get("/apis/rbac.authorization.k8s.io/v1/clusterroles")["items"]
    ours = sorted(r["metadata"]["name"] for r in roles if r["metadata"]["name"].endswith("-api-endpoints"))
    assert ours == ["a-citus-citusdemo-api-endpoints", "b-citus-citusdemo-api-endpoints"]


def _pod_security_namespace(api, name, level):
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": level,
                                 "pod-security.kubernetes.io/warn": level}}})


@pytest.mark.parametrize("level,sets,admitted", [
    ("baseline", [], True),
    ("restricted", ["securityContext.runAsNonRoot=true"], True),
    ("restricted", [], False),
], ids=["defaults in baseline", "runAsNonRoot in restricted", "defaults in restricted"])
def test_pod_security_admission(cluster, level, sets, admitted):
    """helm install into a namespace that enforces (and warns about) a Pod Security level:
    the API server warns about the StatefulSets' pod templates exactly when they break it,
    and the StatefulSet controller's pods are admitted exactly then."""
    import time
    api = cluster.api()
    ns = "pss-%s-%s" % (level, "ok" if admitted else "no")
    _pod_security_namespace(api, ns, level)
    args = ["install", "pss", CHART, "-n", ns, "--set", "coordinator.replicas=1",
            "--set-json", 'workers=[{"citusGroup": 1, "replicas": 1}]']
    for s in sets:
        args += ["--set", s]
    res = helm(cluster, *args)
    warned = "would violate PodSecurity" in res.stdout + res.stderr
    assert warned == (not admitted), res.stdout + res.stderr
    deadline = time.monotonic() + 60
    while True:
        pods = api.get("/api/v1/namespaces/%s/pods" % ns)["items"]
        events = [e["message"] for e in api.get("/api/v1/namespaces/%s/events" % ns)["items"]
                  if e.get("reason") == "FailedCreate"]
        if admitted and len(pods) == 2 or not admitted and events or time.monotonic() > deadline:
            break
        time.sleep(1)
    if admitted:
        assert len(pods) == 2, events
    else:
        assert pods == [] and any("violates PodSecurity" in m for m in events), (pods, events)


def tls_secrets(cp, ns, cluster="citusdemo"):
    api = cp.api()
    out = {}
    for name in ("%s-ssl-ca" % cluster, "%s-ssl-certs" % cluster):
        s = api.get("/api/v1/namespaces/%s/secrets/%s" % (ns, name))
        out[name] = (s["data"], s["metadata"].get("annotations", {}))
    return out


def _checkhost(pem_b64, host):
    with tempfile.NamedTemporaryFile("wb", suffix=".crt") as f:
        f.write(base64.b64decode(pem_b64))
        f.flush()
        out = subprocess.run(["openssl", "x509", "-in", f.name, "-noout", "-checkhost", host],
                             capture_output=True, text=True).stdout
    return "does match certificate" in out


def test_generated_certificates_are_kept_across_upgrades(cluster):
    ns = "tls"
    helm(cluster, "install", "rel", CHART, "-n", ns, "--create-namespace", "--no-hooks")
    first = tls_secrets(cluster, ns)
    ca, certs = first["citusdemo-ssl-ca"][0], first["citusdemo-ssl-certs"][0]
    assert set(certs) == {"ca.crt", "server.crt", "server.key"} and certs["ca.crt"] == ca["ca.crt"]
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks")
    assert tls_secrets(cluster, ns) == first, "an upgrade without changes keeps CA and certificate"
    # a client-side dry run cannot look up the secrets: refused instead of showing new ones
    res = helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--dry-run", check=False)
    assert res.returncode != 0 and "helm upgrade found no secret" in res.stderr, res.stderr
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--dry-run=server")
    # a third worker group: the member certificate must name it; same CA, so running
    # members trust the new one at once
    three = '[{"citusGroup": 1, "replicas": 2}, {"citusGroup": 2, "replicas": 2}, {"citusGroup": 3, "replicas": 2}]'
    pod3 = "citusdemo-3-1.citusdemo-3-hl.%s.svc.cluster.local" % ns
    assert not _checkhost(certs["server.crt"], pod3)
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", "--set-json", "workers=" + three)
    grown = tls_secrets(cluster, ns)
    new = grown["citusdemo-ssl-certs"][0]
    assert grown["citusdemo-ssl-ca"] == first["citusdemo-ssl-ca"] and new["ca.crt"] == ca["ca.crt"]
    assert new["server.crt"] != certs["server.crt"] and new["server.key"] != certs["server.key"]
    assert _checkhost(new["server.crt"], pod3)
    assert _checkhost(new["server.crt"], "citusdemo-1-0.citusdemo-1-hl.%s.svc.cluster.local" % ns)
    # close to its end (the annotation the chart keeps says so): a new one from the same CA
    api = cluster.api()
    import time
    soon = str(int(time.time()) + 10 * 86400)
    api.patch("/api/v1/namespaces/%s/secrets/citusdemo-ssl-certs" % ns,
              {"metadata": {"annotations": {"citus-cluster/not-after": soon}}})
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", "--set-json", "workers=" + three)
    renewed = tls_secrets(cluster, ns)
    assert renewed["citusdemo-ssl-certs"][0]["server.crt"] != new["server.crt"]
    assert renewed["citusdemo-ssl-certs"][0]["ca.crt"] == ca["ca.crt"]
    assert int(renewed["citusdemo-ssl-certs"][1]["citus-cluster/not-after"]) > int(soon) + 300 * 86400
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", "--set-json", "workers=" + three)
    assert tls_secrets(cluster, ns) == renewed


def test_a_tls_secret_that_is_not_the_releases_is_refused(cluster):
    """A user's own secret under the generated name (the original chart's way: create
    citusdemo-ssl-certs, then install): refused with what to set, instead of Helm's
    ownership error or silently replacing the user's certificates."""
    ns = "own-tls"
    api = cluster.api()
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    api.post("/api/v1/namespaces/%s/secrets" % ns, {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "citusdemo-ssl-certs"}, "data": {"ca.crt": "eA=="}})
    res = helm(cluster, "install", "rel", CHART, "-n", ns, "--no-hooks", check=False)
    assert res.returncode != 0
    assert 'secret "citusdemo-ssl-certs" already exists in namespace "own-tls" and is not this release\'s' in res.stderr
    assert "set ssl.secretName=citusdemo-ssl-certs" in res.stderr
    helm(cluster, "install", "rel", CHART, "-n", ns, "--no-hooks", "--set", "ssl.secretName=citusdemo-ssl-certs")
    assert api.get("/api/v1/namespaces/%s/secrets/citusdemo-ssl-certs" % ns)["data"] == {"ca.crt": "eA=="}


BACKUP_S3 = ["--set", "backup.enabled=true", "--set", "backup.s3.endpoint=s3.example.com",
             "--set", "backup.s3.bucket=citus-bk", "--set", "backup.s3.accessKey=AK",
             "--set", "backup.s3.secretKey=SK"]


def cipher_pass(cp, ns, name="citusdemo-backup"):
    return passwords(cp, ns, name)["cipher-pass"]


def test_backup_passphrase_is_kept_across_upgrades_and_uninstall(cluster):
    ns, api = "bk", cluster.api()
    helm(cluster, "install", "rel", CHART, "-n", ns, "--create-namespace", "--no-hooks", *BACKUP_S3)
    first = cipher_pass(cluster, ns)
    assert len(first) == 64
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", *BACKUP_S3)
    assert cipher_pass(cluster, ns) == first
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", *BACKUP_S3,
         "--set", "backup.s3.accessKey=AK2", "--set", "backup.schedule.full=0 3 * * *")
    assert cipher_pass(cluster, ns) == first, "other backup values change, the passphrase stays"
    assert passwords(cluster, ns, "citusdemo-backup-s3")["s3-key"] == "AK2"
    # backups switched off and on again: the secret stayed (keep) and is taken over again
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks")
    assert cipher_pass(cluster, ns) == first
    helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--no-hooks", *BACKUP_S3)
    assert cipher_pass(cluster, ns) == first
    res = helm(cluster, "uninstall", "rel", "-n", ns)
    assert "citusdemo-backup" in res.stdout + res.stderr, "helm says what it kept"
    assert cipher_pass(cluster, ns) == first, "uninstall keeps the passphrase"
    assert api.get_or_none("/api/v1/namespaces/%s/secrets/citusdemo-backup-s3" % ns) is None
    # another release of the same cluster name: refused, naming the values that use the secret
    res = helm(cluster, "install", "other", CHART, "-n", ns, "--no-hooks", *BACKUP_S3, check=False)
    assert res.returncode != 0
    assert 'secret "citusdemo-backup" already exists in namespace "bk" and is not this release\'s (release "rel" kept it' in res.stderr
    assert "backup.encryption.existingSecret=citusdemo-backup" in res.stderr
    helm(cluster, "install", "other", CHART, "-n", ns, "--no-hooks", *BACKUP_S3,
         "--set", "backup.encryption.existingSecret=citusdemo-backup")
    helm(cluster, "uninstall", "other", "-n", ns)
    # the same release name again: Helm takes the kept secret over, lookup keeps its value
    helm(cluster, "install", "rel", CHART, "-n", ns, "--no-hooks", *BACKUP_S3)
    assert cipher_pass(cluster, ns) == first
    # a client-side dry run cannot look the passphrase up: refused
    res = helm(cluster, "upgrade", "rel", CHART, "-n", ns, "--dry-run", *BACKUP_S3, check=False)
    assert res.returncode != 0 and "helm upgrade found no secret" in res.stderr, res.stderr


def test_posix_repository_claim_is_kept(cluster):
    ns, api = "bk-posix", cluster.api()
    posix = ["--set", "backup.enabled=true", "--set", "backup.repo.type=posix"]
    helm(cluster, "install", "rel", CHART, "-n", ns, "--create-namespace", "--no-hooks", *posix)
    claim = api.get("/api/v1/namespaces/%s/persistentvolumeclaims/citusdemo-backup-repo" % ns)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    helm(cluster, "uninstall", "rel", "-n", ns)
    assert api.get("/api/v1/namespaces/%s/persistentvolumeclaims/citusdemo-backup-repo" % ns)
    kept_pass = ["--set", "backup.encryption.existingSecret=citusdemo-backup"]
    res = helm(cluster, "install", "other", CHART, "-n", ns, "--no-hooks", *posix, *kept_pass, check=False)
    assert res.returncode != 0 and "backup.posix.existingClaim=citusdemo-backup-repo" in res.stderr, res.stderr
    helm(cluster, "install", "other", CHART, "-n", ns, "--no-hooks", *posix, *kept_pass,
         "--set", "backup.posix.existingClaim=citusdemo-backup-repo")


def _scale_jobs(cp, ns, *args):
    """{job name: (hook, weight, container args)} of the scaling hook Jobs a server-side dry
    run of `helm upgrade` would run."""
    import yaml
    res = helm(cp, "upgrade", "rel", CHART, "-n", ns, "--dry-run=server", *args)
    hooks = res.stdout.split("HOOKS:", 1)[1].split("MANIFEST:", 1)[0]
    jobs = {}
    for doc in yaml.safe_load_all(hooks):
        if doc and doc["kind"] == "Job" and doc["metadata"]["labels"].get(
                "app.kubernetes.io/component") == "scale":
            spec = doc["spec"]["template"]["spec"]
            assert spec["automountServiceAccountToken"] is False
            assert doc["spec"]["backoffLimit"] == 0
            c, = spec["containers"]
            assert c["command"] == ["citus-init"]
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["COORDINATOR_HOST"] == "citusdemo-0"
            a = doc["metadata"]["annotations"]
            jobs[doc["metadata"]["name"]] = (a["helm.sh/hook"], a["helm.sh/hook-weight"],
                                             c["args"])
    return jobs


def _workers(*groups):
    import json
    return ["--set-json", "workers=" + json.dumps(
        [{"citusGroup": str(g), "citusType": "worker", "replicas": 2} for g in groups])]


def test_scaling_hooks_follow_the_worker_groups(cluster):
    """The drain, remove and rebalance Jobs exist only in an upgrade that removes or adds a
    worker group (the values against the release's StatefulSets, by lookup), with the
    groups that stay as their argument."""
    ns = "scale"
    helm(cluster, "install", "rel", CHART, "-n", ns, "--create-namespace")
    assert _scale_jobs(cluster, ns) == {}
    assert _scale_jobs(cluster, ns, *_workers(1, 2)) == {}
    assert _scale_jobs(cluster, ns, *_workers(1, 2, 3)) == {
        "citusdemo-rebalance": ("post-upgrade", "2",
                                ["rebalance", "--wait", "--expect", "1,2,3", "--timeout", "600"])}
    assert _scale_jobs(cluster, ns, *_workers(1, 2, 3), "--set", "rebalance.onScaleOut=false") == {}
    assert _scale_jobs(cluster, ns, *_workers(1)) == {
        "citusdemo-drain": ("pre-upgrade", "0", ["drain-group", "--absent-from", "1"]),
        "citusdemo-remove-groups": ("post-upgrade", "1", ["remove-group", "--absent-from", "1",
                                                          "--wait-gone", "330"])}
    # a group swapped for another: the old one drained and removed, the new one rebalanced in
    assert _scale_jobs(cluster, ns, *_workers(1, 3), "--set", "terminationGracePeriodSeconds=60") == {
        "citusdemo-drain": ("pre-upgrade", "0", ["drain-group", "--absent-from", "1,3"]),
        "citusdemo-remove-groups": ("post-upgrade", "1", ["remove-group", "--absent-from", "1,3",
                                                          "--wait-gone", "360"]),
        "citusdemo-rebalance": ("post-upgrade", "2",
                                ["rebalance", "--wait", "--expect", "1,3", "--timeout", "600"])}
    # every worker group removed: the drain has nowhere to go and says so when it runs
    assert _scale_jobs(cluster, ns, "--set-json", "workers=[]")["citusdemo-drain"][2] == \
        ["drain-group", "--absent-from", ""]
    helm(cluster, "uninstall", "rel", "-n", ns)
