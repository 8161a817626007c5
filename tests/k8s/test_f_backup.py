"""Backups with the chart (README "Backups and restore"): a release archives and backs up to a
real S3 server (scripts/lib/localcluster/s3.py: versitygw on a loopback address with TLS, its
CA given to the chart as a ConfigMap, its keys as a Secret); a scheduled full backup of every
group completes; a cluster-wide restore point taken after some writes becomes available; a
second release restores from the first one's backups to that restore point: the rows written
before it are there, the ones written after are not, the workers are registered under the new
names, and the new cluster archives into its own stanzas."""
import time

import pytest
import yaml

from conftest import CHART, ROOT, wait_for

NS = "citus-backup"
SOURCE, TARGET = "bksrc", "bkdst"
GROUPS = [0, 1]
S3_IP = "127.0.33.1"
SMALL = {"coordinator": {"replicas": 1}, "workers": [{"citusGroup": 1, "replicas": 1}]}


@pytest.fixture(scope="module")
def s3(kube):
    import sys
    sys.path.insert(0, str(ROOT / "scripts" / "lib"))
    from localcluster.s3 import S3Server
    server = S3Server(kube.state / "s3", S3_IP)
    server.start(user="tests-k8s")
    (kube.state / "kubelet" / "extra-hosts").write_text("\n".join(server.hosts_lines()) + "\n")
    try:
        yield server
    finally:
        server.release("tests-k8s")


def backup_values(s3, cluster, **extra):
    """Each cluster its own path in the bucket (its stanzas, its catalogue, its passphrase).
    fsGroup: the group of the user citus-init drops to, as in the image (postgres, 999):
    Patroni runs `citus-init restore-bootstrap` as that user, which reads the secret files
    (0440, group fsGroup) itself. Here that user is the host's postgres."""
    import pwd
    v = dict(SMALL, clusterName=cluster, securityContext={"fsGroup": pwd.getpwnam("postgres").pw_gid}, backup={
        "enabled": True, "repo": {"path": "/" + cluster},
        "s3": {"endpoint": s3.endpoint, "bucket": s3.bucket, "existingSecret": "s3-keys",
               "caConfigMap": {"name": "s3-ca", "key": "ca.crt"}},
        "schedule": {"full": "* * * * *", "diff": "off"},
        # a full backup every minute: with the default retention (2) the backup before the
        # restore point would expire two minutes later, and with it the point (pruned from
        # the catalogue); keep enough for the test's whole run
        "retention": {"full": 60},
        "archiveTimeout": 10, "restorePointInterval": 10})
    v.update(extra)
    return v


def sql_or_none(kube, pod, query, password):
    """The rows, or None while the query cannot run yet (the agent creates citus_init's
    tables with the stanza, a restarting member refuses connections)."""
    import psycopg2
    try:
        return kube.sql(pod, query, password, sslmode="require")
    except psycopg2.Error:
        return None


def install(kube, release, values):
    path = kube.state / ("values-%s.yaml" % release)
    path.write_text(yaml.safe_dump(values))
    kube.helm("install", release, str(CHART), "-n", NS, "-f", str(path), "--timeout", "15m")


@pytest.fixture(scope="module")
def source(kube, s3):
    kube.api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": NS}})
    kube.api.post(f"/api/v1/namespaces/{NS}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-keys"},
        "stringData": {"s3-key": s3.access_key(), "s3-key-secret": s3.secret_key()}})
    kube.api.post(f"/api/v1/namespaces/{NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s3-ca"},
        "data": {"ca.crt": s3.ca_file.read_text()}})
    install(kube, "src", backup_values(s3, SOURCE))
    yield
    kube.helm("uninstall", "dst", "-n", NS, check=False)
    kube.remove_release(NS, release="src")


def test_backup_then_restore_into_a_second_release(kube, s3, source):
    leaders = kube.wait_leaders(NS, SOURCE, GROUPS, 600)
    pw = kube.secret_data(NS, SOURCE)["superuser-password"]
    coord = leaders[0][0]
    kube.sql(coord, "CREATE TABLE items (id bigint PRIMARY KEY, phase text)", pw, sslmode="require")
    kube.sql(coord, "SELECT create_distributed_table('items', 'id')", pw, sslmode="require")
    kube.sql(coord, "INSERT INTO items SELECT g, 'before' FROM generate_series(1, 200) g", pw,
             sslmode="require")
    written = kube.sql(coord, "SELECT now()", pw, sslmode="require")[0][0]

    # a scheduled full backup completes on every group (the schedule runs every minute)
    def backed_up():
        done = {}
        for g, (pod, _) in kube.wait_leaders(NS, SOURCE, GROUPS, 60).items():
            rows = sql_or_none(kube, pod, "SELECT count(*) FROM citus_init.backup_history "
                               "WHERE status = 'ok' AND type = 'full'", pw)
            done[g] = rows[0][0] if rows else 0
        return all(done.values()) and done
    t0 = time.monotonic()
    wait_for("a scheduled full backup on every group", backed_up, 420, 5)
    print(f"\nTIMING first scheduled full backup of every group: {time.monotonic() - t0:.1f}s")
    # a restore point is restorable once every group has a backup that ended before it: one
    # taken while a worker's first backup still ran is listed (its WAL is archived), but the
    # worker has nothing to restore from, and pruning then drops it
    backed_up_by = kube.sql(coord, "SELECT now()", pw, sslmode="require")[0][0]
    assert s3.list_keys(f"{SOURCE}/backup/{SOURCE}-0/"), "the coordinator's backup is in the bucket"

    # a restore point after the rows, available (its WAL archived on every group)
    def restore_point():
        rows = sql_or_none(kube, coord, "SELECT name FROM citus_init.restore_points WHERE "
                           "archived_at IS NOT NULL AND created_at > '%s' ORDER BY created_at "
                           "DESC LIMIT 1" % max(written, backed_up_by).isoformat(), pw)
        return rows and rows[0][0]
    name = wait_for("an available restore point after the writes", restore_point, 180, 3)
    kube.sql(coord, "INSERT INTO items SELECT g, 'after' FROM generate_series(201, 300) g", pw,
             sslmode="require")

    # a second release restores from the first one's backups (the source still runs: the
    # restored cluster must never write into its stanzas)
    install(kube, "dst", backup_values(s3, TARGET, restore={
        "fromCluster": SOURCE, "target": name, "repoPath": "/" + SOURCE,
        "existingSecret": f"{SOURCE}-backup"}))
    t0 = time.monotonic()
    restored = kube.wait_leaders(NS, TARGET, GROUPS, 900)
    print(f"\nTIMING restore to {name}: {time.monotonic() - t0:.1f}s")
    pw2 = kube.secret_data(NS, TARGET)["superuser-password"]
    coord2 = restored[0][0]
    # the restored workers rejoin once Patroni has pointed their rows at the new groups'
    # leaders and the coordinator's agent has activated them (docs/backups.md)
    def rejoined():
        rows = sql_or_none(kube, coord2, "SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 "
                           "AND noderole = 'primary' AND isactive AND nodename NOT LIKE "
                           "'%.invalid'", pw2)
        return rows and rows[0][0] == len(GROUPS) - 1
    t0 = time.monotonic()
    wait_for("the restored workers to rejoin the restored coordinator", rejoined, 300, 2)
    print(f"\nTIMING restored workers rejoined: {time.monotonic() - t0:.1f}s")
    rows = kube.sql(coord2, "SELECT phase, count(*) FROM items GROUP BY phase", pw2, sslmode="require")
    assert dict(rows) == {"before": 200}, rows
    nodes = kube.sql(coord2, "SELECT nodename FROM pg_dist_node WHERE groupid = 1 AND noderole = 'primary'",
                     pw2, sslmode="require")
    assert nodes and all(n[0].startswith(f"{TARGET}-1-") for n in nodes), nodes
    kube.sql(coord2, "INSERT INTO items VALUES (1000, 'restored')", pw2, sslmode="require")
    # the restored cluster archives into its own stanzas
    wait_for("WAL of the restored cluster in its own stanza",
             lambda: s3.list_keys(f"{TARGET}/archive/{TARGET}-0/"), 180, 5)
