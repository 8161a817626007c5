"""The pod environment the chart renders, fed to the real `citus-init check`.

Each rendered StatefulSet's container env (downward-API fields filled in as the kubelet
would) is given to citus-init, whose configuration loader validates every variable and file
and prints the Patroni configuration it would write. Only the mount points move to temporary
directories (same files, same names). This ties three parts together: the chart's names,
docs/citus-init.md as implemented, and the certificates of scripts/generate-ssl-certs.sh."""
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

from conftest import EXAMPLES, NAMESPACE, ROOT, render

CITUS_INIT = os.path.join(ROOT, "build", "citus-init")
POD_IP = "127.0.77.1"
MOUNTS = {"SECRETS_DIR": "/etc/patroni/secrets", "SSL_CERT_DIR": "/etc/ssl/certs/postgresql"}


@pytest.fixture(scope="module")
def workdir():
    if not os.access(CITUS_INIT, os.X_OK):
        pytest.skip("build/citus-init is not built (tests/chart/run builds it with ensure_build)")
    d = tempfile.mkdtemp(prefix="pck-chart-check-")
    yield d
    shutil.rmtree(d)


def make_certs(workdir, cluster, groups):
    out = os.path.join(workdir, "certs-%s-%d" % (cluster, groups))
    if not os.path.exists(out):
        subprocess.run([os.path.join(ROOT, "scripts", "generate-ssl-certs.sh"), "--cluster", cluster,
                        "--namespace", NAMESPACE, "--groups", str(groups), "--out", out],
                       check=True, capture_output=True)
    return out


def pod_env(sts, r, workdir, certs):
    """The environment citus-init sees in pod <sts>-0, mounts relocated under workdir."""
    spec = sts["spec"]["template"]["spec"]
    c = spec["containers"][0]
    pod = sts["metadata"]["name"] + "-0"
    base = os.path.join(workdir, pod)
    shutil.rmtree(base, ignore_errors=True)
    fields = {"metadata.name": pod, "metadata.namespace": NAMESPACE, "status.podIP": POD_IP}
    env = {"PATH": os.environ["PATH"], "KUBERNETES_SERVICE_HOST": "127.0.30.1"}
    for e in c["env"]:
        env[e["name"]] = e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes.get(m["name"]) for m in c["volumeMounts"]}
    # the password secret: exactly the projected keys
    secret = mounts[MOUNTS["SECRETS_DIR"]]["secret"]
    secrets = os.path.join(base, "secrets")
    os.makedirs(secrets)
    for item in secret["items"]:
        with open(os.path.join(secrets, item["path"]), "w") as f:
            f.write("pw-" + item["key"] + "\n")
    env["SECRETS_DIR"] = secrets
    if "SSL_CERT_DIR" in env:
        env["SSL_CERT_DIR"] = certs
    if "EXTENSIONS_FILE" in env:
        cm_name = mounts[os.path.dirname(env["EXTENSIONS_FILE"])]["configMap"]["name"]
        text = r.get("ConfigMap", cm_name)["data"][os.path.basename(env["EXTENSIONS_FILE"])]
        env["EXTENSIONS_FILE"] = os.path.join(base, "extensions")
        with open(env["EXTENSIONS_FILE"], "w") as f:
            f.write(text)
    # backups: the projected secret directories, the S3 CA, the posix repository volume
    relocated = {}
    for path, vol in mounts.items():
        if vol and "projected" in vol:
            d = os.path.join(base, vol["name"])
            os.makedirs(d)
            for src in vol["projected"]["sources"]:
                for item in src["secret"]["items"]:
                    with open(os.path.join(d, item["path"]), "w") as f:
                        f.write("pw-%s-of-%s-0123456789\n" % (item["key"], src["secret"]["name"]))
            relocated[path] = d
        elif vol and vol["name"] == "backup-s3-ca":
            d = os.path.join(base, vol["name"])
            os.makedirs(d)
            shutil.copy(os.path.join(certs, "ca.crt"), os.path.join(d, "ca.crt"))
            relocated[path] = d
        elif vol and vol["name"] == "backup-repo":
            relocated[path] = os.path.join(base, "backup-repo")
            os.makedirs(relocated[path])
    for name, value in list(env.items()):
        for path, d in relocated.items():
            if value == path or value.startswith(path + "/"):
                env[name] = d + value[len(path):]
    env["PGDATA"] = os.path.join(base, "pgdata", "pgroot", "data")
    env["RUN_DIR"] = os.path.join(base, "run")
    return env


def check(env):
    res = subprocess.run([CITUS_INIT, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, "citus-init check refused the chart's pod env:\n" + res.stderr
    return yaml.safe_load(res.stdout)


VARIANTS = {
    "defaults": ({}, ()),
    "tls verify-full, client certificates, extensions": (
        {"ssl": {"enabled": True, "mode": "verify-full", "clientCert": True},
         "additionalExtensions": {"enabled": True, "extensions": ["postgis", "pg_partman:partman"]}}, ()),
    "non-root": ({"securityContext": {"runAsNonRoot": True}}, ()),
    "production example": (None, [e for e in EXAMPLES if e.endswith("production-values.yaml")]),
    "backups to s3 with a CA, restoring": (
        {"backup": {"enabled": True, "s3": {"endpoint": "s3.example.com:9000", "bucket": "citus-bk",
                                            "uriStyle": "path", "accessKey": "AK", "secretKey": "SK",
                                            "caSecret": {"name": "s3-ca", "key": "ca.crt"}},
                    "schedule": {"diff": "off"}, "archiveTimeout": 0},
         "restore": {"fromCluster": "old", "target": "2026-12-02T03:15:00Z", "repoPath": "/old"}}, ()),
    "backups to posix without encryption, non-root": (
        {"securityContext": {"runAsNonRoot": True},
         "backup": {"enabled": True, "repo": {"type": "posix"}, "encryption": {"enabled": False}},
         "restore": {"fromCluster": "old", "target": "latest"}}, ()),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_citus_init_accepts_every_pod(variant, workdir):
    values, files = VARIANTS[variant]
    r = render(values, files=files)
    stss = r.all("StatefulSet")
    cluster = stss[0]["metadata"]["labels"]["cluster-name"]
    certs = make_certs(workdir, cluster, len(stss) - 1)
    for sts in stss:
        group = sts["spec"]["template"]["metadata"]["labels"]["citus-group"]
        env = pod_env(sts, r, workdir, certs)
        conf = check(env)
        pod = env["POD_NAME"]
        assert conf["name"] == pod and conf["scope"] == cluster
        assert conf["citus"]["group"] == int(group)
        # members are reached by their DNS names under the group's headless service
        hl = r.get("Service", sts["spec"]["serviceName"])
        assert hl["spec"]["clusterIP"] == "None"
        assert conf["postgresql"]["connect_address"].startswith(
            "%s.%s.%s.svc." % (pod, sts["spec"]["serviceName"], NAMESPACE))
        # Patroni finds its pods by these labels: the pod template must carry them
        k8s = conf["kubernetes"]
        tmpl_labels = sts["spec"]["template"]["metadata"]["labels"]
        assert set(k8s["labels"].items()) <= set(tmpl_labels.items()), k8s["labels"]
        assert k8s["use_endpoints"] is True
        # the leader Endpoints carry Patroni's port name: the group's Service must match it
        svc_ports = r.get("Service", "%s-%s" % (cluster, group))["spec"]["ports"]
        assert [p.get("name") for p in svc_ports] == [p.get("name") for p in k8s["ports"]]
        assert [p["port"] for p in svc_ports] == [p["port"] for p in k8s["ports"]]
        assert "pw-" not in yaml.safe_dump(conf), "check masks the passwords"
        if "BACKUP_REPO" in env:  # the repository the chart describes is the one Patroni uses
            pg = conf["postgresql"]
            stanza = "--stanza=%s-%s" % (cluster, group)
            assert stanza in pg["parameters"]["archive_command"]
            assert stanza in pg["recovery_conf"]["restore_command"]
            assert pg["create_replica_methods"][0] == "pgbackrest"
            if "RESTORE_FROM_CLUSTER" in env:
                assert conf["bootstrap"]["method"] == "citus_init_restore"
