"""Backups and restore in the chart (README "Backups and restore", docs/backups.md): the
BACKUP_* and RESTORE_* variables of the pod contract, the secrets as projected files (never
in the environment), the kept passphrase, the posix volume, the NetworkPolicy rule to the S3
endpoint, the values refused, and what NOTES.txt tells the user."""
import base64
import re

import pytest
import yaml

from conftest import NAMESPACE, render, render_error, render_notes
from netpol import egress_allowed
from test_render import container, env, mounts, volumes

C = "citusdemo"
ACCESS_KEY, SECRET_KEY = "AKIAEXAMPLEKEY0001", "s3cr3t-EXAMPLE-key-do-not-log"
S3 = {"backup": {"enabled": True, "s3": {"endpoint": "s3.example.com:9000", "bucket": "citus-bk",
                                         "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}}}
POSIX = {"backup": {"enabled": True, "repo": {"type": "posix"}}}
BACKUP_SECRET_DIR, RESTORE_SECRET_DIR = "/etc/citus-init/backup", "/etc/citus-init/restore"


def merge(*dicts):
    """Deep merge of value dicts, later ones win."""
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def restore(**kw):
    return {"restore": dict({"fromCluster": "old", "target": "citus-20261202T031500Z"}, **kw)}


def backup_env(sts):
    return {k: v for k, v in env(sts).items() if k.startswith(("BACKUP_", "RESTORE_"))}


def projected(sts, name):
    """{secret name: [(key, path)]} of a projected volume, and its defaultMode."""
    vol = volumes(sts)[name]["projected"]
    return {s["secret"]["name"]: [(i["key"], i["path"]) for i in s["secret"]["items"]]
            for s in vol["sources"]}, vol["defaultMode"]


# ---------------------------------------------------------------- off by default

def test_off_by_default_nothing_rendered(default):
    for sts in default.all("StatefulSet"):
        assert backup_env(sts) == {}
        assert not {"backup-secrets", "restore-secrets", "backup-repo", "backup-s3-ca"} & set(volumes(sts))
    assert default.all("PersistentVolumeClaim") == []
    assert not [s for s in default.names("Secret") if "backup" in s]


# ---------------------------------------------------------------- env: the pod contract

def test_s3_env_is_the_pod_contract():
    r = render(S3)
    for sts in r.all("StatefulSet"):
        assert backup_env(sts) == {
            "BACKUP_REPO": "s3", "BACKUP_REPO_PATH": "/pgbackrest",
            "BACKUP_S3_ENDPOINT": "s3.example.com:9000", "BACKUP_S3_BUCKET": "citus-bk",
            "BACKUP_S3_REGION": "us-east-1", "BACKUP_S3_URI_STYLE": "host", "BACKUP_S3_VERIFY_TLS": "true",
            "BACKUP_SECRET_DIR": BACKUP_SECRET_DIR, "BACKUP_ENCRYPTION": "true",
            "BACKUP_FULL_SCHEDULE": "0 1 * * 0", "BACKUP_DIFF_SCHEDULE": "0 1 * * 1-6",
            "BACKUP_RETENTION_FULL": "2", "BACKUP_PROCESS_MAX": "2", "BACKUP_COMPRESS_TYPE": "zst",
            "BACKUP_ARCHIVE_TIMEOUT": "60", "RESTORE_POINT_INTERVAL": "60"}, sts["metadata"]["name"]


def test_every_value_reaches_its_variable():
    values = merge(S3, {"backup": {
        "repo": {"path": "/prod/citus"},
        "s3": {"region": "eu-central-1", "uriStyle": "path", "verifyTLS": False},
        "encryption": {"enabled": False}, "schedule": {"full": "30 2 * * 6", "diff": "off"},
        "retention": {"full": 4}, "processMax": 8, "compressType": "lz4", "archiveTimeout": 0,
        "restorePointInterval": 300}})
    e = backup_env(render(values).get("StatefulSet", "citusdemo-2"))
    assert e["BACKUP_REPO_PATH"] == "/prod/citus"
    assert (e["BACKUP_S3_REGION"], e["BACKUP_S3_URI_STYLE"], e["BACKUP_S3_VERIFY_TLS"]) == ("eu-central-1", "path", "false")
    assert e["BACKUP_ENCRYPTION"] == "false"
    assert (e["BACKUP_FULL_SCHEDULE"], e["BACKUP_DIFF_SCHEDULE"]) == ("30 2 * * 6", "off")
    assert (e["BACKUP_RETENTION_FULL"], e["BACKUP_PROCESS_MAX"], e["BACKUP_COMPRESS_TYPE"]) == ("4", "8", "lz4")
    assert (e["BACKUP_ARCHIVE_TIMEOUT"], e["RESTORE_POINT_INTERVAL"]) == ("0", "300")


def test_secrets_are_never_in_the_environment():
    """Credentials and passphrase are files only: no env value or valueFrom carries them, in
    any container of any object; they are in the Secrets' data, nowhere else."""
    r = render(merge(S3, restore()))
    cipher = base64.b64decode(r.get("Secret", "citusdemo-backup")["data"]["cipher-pass"]).decode()
    for d in r.docs:
        if d["kind"] == "Secret":
            continue
        text = yaml.safe_dump(d)
        for secret in (ACCESS_KEY, SECRET_KEY, cipher):
            assert secret not in text, "%s %s holds a secret" % (d["kind"], d["metadata"]["name"])
            assert base64.b64encode(secret.encode()).decode() not in text
    for sts in r.all("StatefulSet"):
        for e in container(sts)["env"]:
            assert "secretKeyRef" not in (e.get("valueFrom") or {}), e["name"]
            assert not re.search(r"KEY_SECRET$|CIPHER|S3_KEY$|PASS$", e["name"]), e["name"]


# ---------------------------------------------------------------- secret files

def test_s3_keys_and_passphrase_are_one_projected_directory():
    r = render(S3)
    for sts in r.all("StatefulSet"):
        sources, mode = projected(sts, "backup-secrets")
        assert sources == {"citusdemo-backup-s3": [("s3-key", "s3-key"), ("s3-key-secret", "s3-key-secret")],
                           "citusdemo-backup": [("cipher-pass", "cipher-pass")]}
        assert mode == 0o440, "root and the fsGroup only"
        m = mounts(sts)[BACKUP_SECRET_DIR]
        assert m["name"] == "backup-secrets" and m["readOnly"] is True
    s3 = r.get("Secret", "citusdemo-backup-s3")
    assert {k: base64.b64decode(v).decode() for k, v in s3["data"].items()} == {
        "s3-key": ACCESS_KEY, "s3-key-secret": SECRET_KEY}


def test_existing_secrets_are_used_and_nothing_is_made():
    values = merge(S3, {"backup": {"s3": {"existingSecret": "store-keys", "accessKey": "", "secretKey": ""},
                                   "encryption": {"existingSecret": "my-passphrase"}}})
    r = render(values)
    sources, _ = projected(r.get("StatefulSet", "citusdemo-0"), "backup-secrets")
    assert set(sources) == {"store-keys", "my-passphrase"}
    assert not [s for s in r.names("Secret") if "backup" in s]


@pytest.mark.parametrize("values,expected", [
    (merge(S3, {"backup": {"encryption": {"enabled": False}}}), {"citusdemo-backup-s3"}),
    (POSIX, {"citusdemo-backup"}),
    (merge(POSIX, {"backup": {"encryption": {"enabled": False}}}), None),
], ids=["s3 without encryption", "posix", "posix without encryption"])
def test_only_the_files_the_repository_needs(values, expected):
    r = render(values)
    sts = r.get("StatefulSet", "citusdemo-1")
    if expected is None:
        assert "backup-secrets" not in volumes(sts) and BACKUP_SECRET_DIR not in mounts(sts)
        assert "BACKUP_SECRET_DIR" not in env(sts), "no file to read: no directory named"
    else:
        assert set(projected(sts, "backup-secrets")[0]) == expected
    assert ("citusdemo-backup" in r.names("Secret")) == (expected is not None and "citusdemo-backup" in expected)


def test_passphrase_is_generated_kept_and_not_labelled_for_cleanup():
    r = render(S3)
    s = r.get("Secret", "citusdemo-backup")
    assert s["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    labels = s["metadata"]["labels"]
    assert "cluster-name" not in labels, "kubectl delete ... -l cluster-name=<c> must not take it"
    assert labels["citus-backup-of"] == C and labels["app.kubernetes.io/instance"] == "rel"
    pw = base64.b64decode(s["data"]["cipher-pass"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{64}", pw)
    assert base64.b64decode(render(S3).get("Secret", "citusdemo-backup")["data"]["cipher-pass"]).decode() != pw, \
        "random per render without a cluster (the live API test shows it kept on upgrade)"


def test_ca_from_a_secret_or_a_configmap():
    for source, values in (("secret", {"caSecret": {"name": "s3-ca", "key": "root.pem"}}),
                           ("configMap", {"caConfigMap": {"name": "s3-ca-cm", "key": "ca.crt"}})):
        sts = render(merge(S3, {"backup": {"s3": values}})).get("StatefulSet", "citusdemo-0")
        assert env(sts)["BACKUP_S3_CA_FILE"] == "/etc/citus-init/backup-ca/ca.crt"
        vol = volumes(sts)["backup-s3-ca"][source]
        assert vol["items"] == [{"key": list(values.values())[0]["key"], "path": "ca.crt"}]
        assert mounts(sts)["/etc/citus-init/backup-ca"]["readOnly"] is True
    assert "BACKUP_S3_CA_FILE" not in env(render(S3).get("StatefulSet", "citusdemo-0"))


# ---------------------------------------------------------------- posix

def test_posix_repository_is_one_kept_shared_claim_mounted_at_the_path():
    r = render(merge(POSIX, {"backup": {"repo": {"path": "/backups"}, "posix": {"size": "50Gi", "storageClass": "nfs"}}}))
    (pvc,) = r.all("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "citusdemo-backup-repo"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "cluster-name" not in pvc["metadata"]["labels"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "nfs"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    for sts in r.all("StatefulSet"):
        assert volumes(sts)["backup-repo"] == {"name": "backup-repo",
                                               "persistentVolumeClaim": {"claimName": "citusdemo-backup-repo"}}
        assert mounts(sts)["/backups"]["name"] == "backup-repo"
        e = backup_env(sts)
        assert e["BACKUP_REPO"] == "posix" and e["BACKUP_REPO_PATH"] == "/backups"
        assert not [k for k in e if k.startswith("BACKUP_S3")]
    r = render(merge(POSIX, {"backup": {"posix": {"existingClaim": "shared-rwx"}}}))
    assert r.all("PersistentVolumeClaim") == []
    assert volumes(r.get("StatefulSet", "citusdemo-0"))["backup-repo"]["persistentVolumeClaim"]["claimName"] == "shared-rwx"


# ---------------------------------------------------------------- restore

def test_restore_env_and_the_sources_files():
    r = render(merge(S3, restore(repoPath="/old-prefix")))
    for sts in r.all("StatefulSet"):
        e = backup_env(sts)
        assert (e["RESTORE_FROM_CLUSTER"], e["RESTORE_TARGET"]) == ("old", "citus-20261202T031500Z")
        assert e["RESTORE_REPO_PATH"] == "/old-prefix" and e["RESTORE_SECRET_DIR"] == RESTORE_SECRET_DIR
        sources, mode = projected(sts, "restore-secrets")
        # the source's passphrase from the secret its release kept, the store's keys as ours
        assert sources == {"citusdemo-backup-s3": [("s3-key", "s3-key"), ("s3-key-secret", "s3-key-secret")],
                           "old-backup": [("cipher-pass", "cipher-pass")]}
        assert mode == 0o440 and mounts(sts)[RESTORE_SECRET_DIR]["readOnly"] is True
    sts = render(merge(S3, restore(existingSecret="kept", s3ExistingSecret="old-keys"))).get("StatefulSet", "citusdemo-0")
    assert set(projected(sts, "restore-secrets")[0]) == {"kept", "old-keys"}
    assert "RESTORE_REPO_PATH" not in env(sts), "empty: citus-init's default, BACKUP_REPO_PATH"


@pytest.mark.parametrize("target", ["latest", "2026-12-02T03:15:00Z", "before-the-drop"])
def test_restore_targets_pass_through(target):
    sts = render(merge(S3, restore(target=target))).get("StatefulSet", "citusdemo-1")
    assert env(sts)["RESTORE_TARGET"] == target


def test_restore_from_posix_below_the_volume():
    sts = render(merge(POSIX, restore(repoPath="/pgbackrest/old"))).get("StatefulSet", "citusdemo-0")
    assert env(sts)["RESTORE_REPO_PATH"] == "/pgbackrest/old"
    assert projected(sts, "restore-secrets")[0] == {"old-backup": [("cipher-pass", "cipher-pass")]}
    sts = render(merge(POSIX, {"backup": {"encryption": {"enabled": False}}}, restore())).get("StatefulSet", "citusdemo-0")
    assert "restore-secrets" not in volumes(sts) and "RESTORE_SECRET_DIR" not in env(sts)


# ---------------------------------------------------------------- refused values

TEMPLATE_CASES = [
    ("s3 without endpoint", merge(S3, {"backup": {"s3": {"endpoint": ""}}}), "backup.s3.endpoint is empty"),
    ("s3 without bucket", merge(S3, {"backup": {"s3": {"bucket": ""}}}), "backup.s3.bucket is empty"),
    ("s3 without credentials", merge(S3, {"backup": {"s3": {"secretKey": ""}}}),
     "backup.s3.accessKey and backup.s3.secretKey are needed while backup.s3.existingSecret is empty"),
    ("two CAs", merge(S3, {"backup": {"s3": {"caSecret": {"name": "a"}, "caConfigMap": {"name": "b"}}}}),
     "backup.s3.caSecret.name and backup.s3.caConfigMap.name are both set"),
    ("restore without backups", restore(), "restore.fromCluster (old) needs backup.enabled"),
    ("restore without target", merge(S3, restore(target="")), "restore.target is empty while restore.fromCluster is set"),
    ("target without source", merge(S3, {"restore": {"target": "latest"}}), "need restore.fromCluster"),
    ("posix restore path off the volume", merge(POSIX, restore(repoPath="/elsewhere")),
     "restore.repoPath (/elsewhere) is not on the repository volume"),
    ("posix restore path sharing a prefix", merge(POSIX, restore(repoPath="/pgbackrest-old")),
     "restore.repoPath (/pgbackrest-old) is not on the repository volume"),
]


@pytest.mark.parametrize("what,values,expected", TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_template_checks_reject(what, values, expected):
    err = render_error(values)
    assert expected in err, err


SCHEMA_CASES = [
    ("repo type", {"backup": {"repo": {"type": "gcs"}}}, "/backup/repo/type"),
    ("relative path", {"backup": {"repo": {"path": "pgbackrest"}}}, "/backup/repo/path"),
    ("endpoint with scheme", {"backup": {"s3": {"endpoint": "https://s3.example.com"}}}, "/backup/s3/endpoint"),
    ("bucket name", {"backup": {"s3": {"bucket": "My_Bucket"}}}, "/backup/s3/bucket"),
    ("uri style", {"backup": {"s3": {"uriStyle": "virtual"}}}, "/backup/s3/uriStyle"),
    ("cron", {"backup": {"schedule": {"full": "weekly"}}}, "/backup/schedule/full"),
    ("retention 0", {"backup": {"retention": {"full": 0}}}, "/backup/retention/full"),
    ("processMax", {"backup": {"processMax": 65}}, "/backup/processMax"),
    ("compression", {"backup": {"compressType": "bz2"}}, "/backup/compressType"),
    ("archive timeout below 10", {"backup": {"archiveTimeout": 5}}, "/backup/archiveTimeout"),
    ("restore point interval", {"backup": {"restorePointInterval": 100000}}, "/backup/restorePointInterval"),
    ("restore target", {"restore": {"target": "2026-12-02 03:15"}}, "/restore/target"),
    ("restore source name", {"restore": {"fromCluster": "Old_Cluster"}}, "/restore/fromCluster"),
    ("posix access mode", {"backup": {"posix": {"accessModes": ["ReadOnlyMany"]}}}, "/backup/posix/accessModes/0"),
    ("egress peer typo", {"backup": {"s3": {"egress": [{"ipblock": {"cidr": "10.0.0.0/8"}}]}}}, "/backup/s3/egress/0"),
    ("unknown key", {"backup": {"s3": {"secretName": "x"}}}, "additional properties 'secretName' not allowed"),
    ("enabled as string", {"backup": {"enabled": "yes"}}, "/backup/enabled"),
]


@pytest.mark.parametrize("what,values,expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_rejects(what, values, expected):
    err = render_error(values)
    assert "values don't meet the specifications of the schema" in err and expected in err, err


# ---------------------------------------------------------------- NetworkPolicy

def allowed_out(r, ip, port):
    policies = r.all("NetworkPolicy")
    results = {egress_allowed(policies, s["spec"]["template"]["metadata"]["labels"], NAMESPACE,
                              {"ip": ip, "labels": None}, port) for s in r.all("StatefulSet")}
    assert len(results) == 1
    return results.pop()


def test_egress_to_the_s3_port_only():
    assert not allowed_out(render(), "198.51.100.7", 9000), "nothing without backups"
    r = render(S3)
    assert allowed_out(r, "198.51.100.7", 9000), "the endpoint's port, any address by default"
    assert not allowed_out(r, "198.51.100.7", 9001) and not allowed_out(r, "198.51.100.7", 80)
    # without a port in the endpoint: https' 443 (also a Kubernetes API port: narrow that one)
    api = {"networkPolicy": {"kubernetesApi": {"cidrs": ["10.0.0.1/32"], "ports": [6443]}}}
    r = render(merge(S3, api, {"backup": {"s3": {"endpoint": "s3.eu-central-1.amazonaws.com"}}}))
    assert allowed_out(r, "52.219.0.9", 443) and not allowed_out(r, "52.219.0.9", 9000)
    assert not allowed_out(render(api), "52.219.0.9", 443)


def test_egress_to_named_peers():
    r = render(merge(S3, {"backup": {"s3": {"egress": [{"ipBlock": {"cidr": "192.0.2.10/32"}}]}}}))
    assert allowed_out(r, "192.0.2.10", 9000)
    assert not allowed_out(r, "192.0.2.11", 9000)


def test_no_egress_rule_for_posix():
    r = render(merge(POSIX, {"networkPolicy": {"kubernetesApi": {"cidrs": ["10.0.0.1/32"], "ports": [6443]}}}))
    assert not allowed_out(r, "198.51.100.7", 443)
    assert len(r.get("NetworkPolicy", C)["spec"]["egress"]) == len(render().get("NetworkPolicy", C)["spec"]["egress"])


# ---------------------------------------------------------------- NOTES.txt

def test_notes_say_keep_the_passphrase_and_how_to_list_and_restore(notes_chart):
    notes, _ = render_notes(notes_chart, S3)
    assert 'KEEP THE BACKUP PASSPHRASE: secret "citusdemo-backup", key cipher-pass' in notes
    assert "LOSING THE PASSPHRASE LOSES THE BACKUPS" in notes
    assert "kubectl get secret -n %s citusdemo-backup -o jsonpath='{.data.cipher-pass}' | base64 -d" % NAMESPACE in notes
    assert "kubectl exec -n %s citusdemo-0-0 -- citus-init restore-points\n" % NAMESPACE in notes
    assert "--set restore.fromCluster=citusdemo --set restore.target=" in notes
    assert "s3://citus-bk/pgbackrest at s3.example.com:9000" in notes
    notes, _ = render_notes(notes_chart, merge(S3, {"backup": {"encryption": {"existingSecret": "mine"}}}))
    assert 'secret "mine"' in notes and "--set restore.existingSecret=mine" in notes
    assert "Generated at install" not in notes


def test_notes_without_backups_or_encryption(notes_chart):
    notes, _ = render_notes(notes_chart)
    assert "Backups" not in notes and "restore-points" not in notes
    notes, _ = render_notes(notes_chart, merge(S3, {"backup": {"encryption": {"enabled": False},
                                                              "s3": {"verifyTLS": False}}}))
    assert "NOT encrypted" in notes and "PASSPHRASE" not in notes
    assert "backup.s3.verifyTLS=false" in notes


def test_notes_of_a_restore(notes_chart):
    notes, _ = render_notes(notes_chart, merge(S3, {"clusterName": "neu"}, restore(target="latest")))
    assert 'This cluster is restored from cluster "old" to "latest"' in notes
    assert "NOT consistent" in notes
    assert "citus-init restore-points --cluster neu" in notes
    notes, _ = render_notes(notes_chart, merge(S3, restore()))
    assert "NOT consistent" not in notes


# ---------------------------------------------------------------- GitOps guard

def test_upgrade_without_cluster_access_is_refused_while_the_passphrase_is_generated():
    """Everything else the user's: only the passphrase depends on lookup, and a new one on
    every render would make the repository unreadable."""
    values = merge(S3, {"secret": {"create": False}, "ssl": {"secretName": "my-tls"}})
    err = render_error(values, extra=["--is-upgrade"])
    assert "helm upgrade found no secret" in err and "backup.encryption.existingSecret" in err
    render(merge(values, {"backup": {"encryption": {"existingSecret": "my-pass"}}}), extra=["--is-upgrade"])
