"""Backups, restore points, the catalogue and restores (docs/backups.md) against real
components: PostgreSQL 15 (Debian's), pgBackRest 2.45 (Debian's), Citus when installed, a real
S3 server (versitygw with TLS on loopback, scripts/lib/localcluster/s3.py) when built, and
citus-init's commands as a pod runs them (`kubectl exec`: root, the pod's environment, the
socket at /var/run/postgresql in a mount namespace of their own).

The first tests start PostgreSQL directly (no Patroni), with a pgBackRest configuration laid
out like the rendered RUN_DIR/pgbackrest/pgbackrest.conf and restore.conf: they exercise the
commands. The last ones run pods (citus-init as PID 1, Patroni, the agent) and exercise the
agent's duties: stanza-create, the first full backup, the history, restore points."""
import json
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_leader
from harness import cluster
from harness.cluster import paths

PG_BIN = paths.pg_bin_dir()
CITUS = paths.citus_available()
PASSPHRASE = "pass-" + os.urandom(12).hex()  # repository encryption; must never be printed
POSTGRES = pwd.getpwnam("postgres")
NEEDS_CITUS = pytest.mark.skipif(not CITUS, reason="Citus is not installed "
                                 f"({paths.citus_control_file()} missing): restore points need it")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True,
                          text=True, timeout=kw.pop("timeout", 120), **kw)


def chown_postgres(*paths_):
    for p in paths_:
        os.chown(p, POSTGRES.pw_uid, POSTGRES.pw_gid)


class Repo:
    """A pgBackRest repository: posix (a directory) or s3 (the test S3 server)."""

    def __init__(self, kind, path, s3=None):
        self.kind, self.path, self.s3 = kind, path, s3

    def conf_lines(self, secret_dir):
        lines = [f"repo1-type={self.kind}", f"repo1-path={self.path}",
                 "repo1-cipher-type=aes-256-cbc", f"repo1-cipher-pass={PASSPHRASE}"]
        if self.kind == "s3":
            lines += [f"repo1-s3-endpoint={self.s3.endpoint.split(':')[0]}",
                      f"repo1-storage-port={self.s3.port}",
                      # PostgreSQL (archive-push) runs outside the namespaces whose hosts
                      # file resolves the endpoint: pgBackRest goes to the address, and then
                      # checks the certificate against it, so not here (citus-init's own
                      # requests, the catalogue, verify the name against the CA)
                      f"repo1-storage-host={self.s3.ip}", "repo1-storage-verify-tls=n",
                      f"repo1-s3-bucket={self.s3.bucket}", "repo1-s3-region=us-east-1",
                      "repo1-s3-uri-style=host", f"repo1-storage-ca-file={self.s3.ca_file}",
                      f"repo1-s3-key={self.s3.access_key()}",
                      f"repo1-s3-key-secret={self.s3.secret_key()}"]
        return lines

    def env(self, secret_dir):
        env = {"BACKUP_REPO": self.kind, "BACKUP_REPO_PATH": str(self.path),
               "BACKUP_SECRET_DIR": str(secret_dir), "BACKUP_ENCRYPTION": "true"}
        if self.kind == "s3":
            env.update({"BACKUP_S3_ENDPOINT": self.s3.endpoint,
                        "BACKUP_S3_BUCKET": self.s3.bucket,
                        "BACKUP_S3_CA_FILE": str(self.s3.ca_file)})
        return env


class Server:
    """One PostgreSQL 15 primary archiving with pgBackRest into repo; stanza <cluster>-0."""

    def __init__(self, root, cluster_name, repo, citus):
        self.root = Path(root)
        self.cluster, self.repo, self.citus = cluster_name, repo, citus
        self.stanza = f"{cluster_name}-0"
        self.sock = self.root / "sock"
        self.run = self.root / "run"
        self.conf_dir = self.run / "pgbackrest"
        self.secrets = self.root / "secrets"
        self.backup_secrets = self.root / "backup-secrets"
        self.pgdata = self.root / "pg" / "data"
        self.restored = self.root / "pg2" / "data"
        self.hosts = self.root / "hosts"
        self.port, self.restored_port = free_port(), free_port()
        for d in (self.sock, self.run, self.conf_dir, self.conf_dir / "lock", self.secrets,
                  self.backup_secrets, self.pgdata.parent, self.restored.parent):
            d.mkdir(parents=True, exist_ok=True)
            chown_postgres(d)
        for d in (self.run, self.pgdata.parent, self.restored.parent):
            os.chmod(d, 0o700)
        for name in ("superuser-password", "replication-password", "restapi-password"):
            (self.secrets / name).write_text("pw-" + os.urandom(6).hex() + "\n")
        (self.backup_secrets / "cipher-pass").write_text(PASSPHRASE)
        if repo.kind == "s3":
            (self.backup_secrets / "s3-key").write_text(repo.s3.access_key())
            (self.backup_secrets / "s3-key-secret").write_text(repo.s3.secret_key())
        hosts = Path("/etc/hosts").read_text()
        if repo.s3:
            hosts += "\n" + "\n".join(repo.s3.hosts_lines()) + "\n"
        self.hosts.write_text(hosts)
        if repo.s3:  # the preparation's copy of BACKUP_S3_CA_FILE, which citus-init reads
            shutil.copyfile(repo.s3.ca_file, self.conf_dir / "ca.crt")
            chown_postgres(self.conf_dir / "ca.crt")
        self.write_conf("pgbackrest.conf", self.pgdata, self.port, repo)

    def write_conf(self, name, pgdata, port, repo, stanza=None, extra=()):
        lines = ["[global]", *repo.conf_lines(self.backup_secrets), *extra, "start-fast=y",
                 "log-level-console=warn", "log-level-stderr=off", "log-level-file=off",
                 f"lock-path={self.conf_dir / 'lock'}", "",
                 f"[{stanza or self.stanza}]", f"pg1-path={pgdata}", f"pg1-port={port}",
                 f"pg1-socket-path={self.sock}", "pg1-user=postgres", ""]
        path = self.conf_dir / name
        path.write_text("\n".join(lines))
        chown_postgres(path)
        os.chmod(path, 0o600)

    def start(self):
        r = as_postgres([str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                         "-A", "trust"])
        assert r.returncode == 0, r.stderr
        conf = self.conf_dir / "pgbackrest.conf"
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = ''\n"
                    f"unix_socket_directories = '{self.sock}'\narchive_mode = on\n"
                    f"archive_command = 'pgbackrest --config={conf} --stanza={self.stanza} "
                    f"archive-push \"%p\"'\n")
            if self.citus:
                f.write("shared_preload_libraries = 'citus'\n")
        self.pg_ctl(self.pgdata, "start")
        if self.citus:
            self.sql("CREATE EXTENSION citus")
        r = as_postgres(["pgbackrest", f"--config={conf}", f"--stanza={self.stanza}",
                         "stanza-create"])
        assert r.returncode == 0, r.stdout + r.stderr

    def pg_ctl(self, pgdata, action):
        args = [str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "120", action]
        if action == "start":
            args += ["-l", str(pgdata.parent / "server.log")]
        else:
            args += ["-m", "fast"]
        r = as_postgres(args)
        assert r.returncode == 0, f"pg_ctl {action}: {r.stdout} {r.stderr}"

    def start_restored(self):
        """Start what restore-bootstrap restored (on its own port, not archiving) and wait
        until it has reached its target and promoted."""
        with open(self.restored / "postgresql.conf", "a") as f:
            f.write(f"port = {self.restored_port}\narchive_mode = off\n")
        self.pg_ctl(self.restored, "start")
        cluster.wait_for(lambda: self.sql("SELECT NOT pg_is_in_recovery()",
                                          port=self.restored_port) == "t", 60,
                         what="the restored server to promote")

    def stop(self):
        for d in (self.restored, self.pgdata):
            if (d / "postmaster.pid").exists():
                as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(d), "-w", "stop", "-m",
                             "immediate"])

    def sql(self, query, port=None):
        r = as_postgres([str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.sock), "-p", str(port or self.port), "-U", "postgres",
                         "-d", "postgres", "-c", query])
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def env(self, **extra):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "POD_NAME": f"{self.cluster}-0-0",
               "POD_IP": "127.0.99.1", "CLUSTER_NAME": self.cluster, "CITUS_GROUP": "0",
               "CITUS_ENABLED": "true" if self.citus else "false", "CITUS_DATABASE": "postgres",
               "DCS_TYPE": "etcd3", "ETCD_HOSTS": "127.0.99.2:2379", "PGDATA": str(self.pgdata),
               "PG_BIN_DIR": str(PG_BIN), "PG_PORT": str(self.port), "RUN_DIR": str(self.run),
               "SECRETS_DIR": str(self.secrets), "LOG_LEVEL": "info",
               **self.repo.env(self.backup_secrets)}
        env.update(extra)
        return env

    def citus_init(self, *args, user="root", **extra):
        """citus-init ARGS like `kubectl exec` (root unless user): the pod's environment, the
        socket directory at /var/run/postgresql and the hosts file in a private mount
        namespace. Returns (rc, stdout, stderr)."""
        binary = paths.citus_init_binary()
        env = self.env(**extra)
        # the socket file's name carries the port: one directory serves both servers
        script = (f"mount --bind {self.sock} /var/run/postgresql && "
                  f"mount --bind {self.hosts} /etc/hosts && exec "
                  + ("" if user == "root" else f"runuser -u {user} -- ") + '"$@"')
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
               "env", "-i", *[f"{k}={v}" for k, v in env.items()], str(binary), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        for text in (r.stdout, r.stderr):
            assert PASSPHRASE not in text, "the repository passphrase was printed"
            if self.repo.s3:
                assert self.repo.s3.secret_key() not in text, "the S3 secret key was printed"
        return r.returncode, r.stdout, r.stderr


def log_lines(text, msg):
    return [line for line in text.splitlines() if f'msg="{msg}"' in line]


def field(line, key):
    """The value of key in one logfmt line (quoted values unquoted)."""
    for part in shlex.split(line):
        if part.startswith(key + "="):
            return part.split("=", 1)[1]
    return None


@pytest.fixture
def posix_server():
    root = cluster.make_tempdir("pck-backup-")
    repo_dir = root / "repo"
    repo_dir.mkdir()
    chown_postgres(repo_dir)
    os.chmod(repo_dir, 0o750)
    srv = Server(root / "srv", "bk", Repo("posix", repo_dir), CITUS)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        cluster.cleanup_dir(root)


# ---------------------------------------------------------------- the commands


def test_backup_command_history_and_refusals(posix_server):
    srv = posix_server
    rc, out, err = srv.citus_init("backup", "--type", "diff")
    assert rc == 0, err
    label, made, duration, size, repo_size = out.strip().split("\t")
    assert made == "full", "a diff without a prior full is made as a full"
    assert label.endswith("F") and float(duration) > 0 and int(size) > int(repo_size) > 0
    started, = log_lines(err, "backup started")
    finished, = log_lines(err, "backup finished")
    assert field(started, "type") == "diff" and field(finished, "label") == label
    assert field(finished, "stanza") == srv.stanza and field(finished, "size_bytes") == size

    rc, out, err = srv.citus_init("backup", "--type=incr")
    assert rc == 0, err
    assert out.split("\t")[1] == "incr" and out.split("\t")[0].startswith(label + "_")

    rows = srv.sql("SELECT type, status, label IS NOT NULL, size_bytes > 0, error IS NULL, "
                   "finished_at > started_at FROM citus_init.backup_history ORDER BY id")
    assert rows.splitlines() == ["full|ok|t|t|t|t", "incr|ok|t|t|t|t"]
    if CITUS:
        # a plain local table: Citus does not know it
        assert srv.sql("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = "
                       "'citus_init.backup_history'::regclass") == "0"

    rc, out, err = srv.citus_init("backup", "--type", "weekly")
    assert rc == 64 and 'unknown backup type "weekly"' in err

    # pgBackRest fails (the stanza's path is wrong): a named error with pgBackRest's message
    # and a history row; no secret anywhere (citus_init checks every output)
    conf = srv.conf_dir / "pgbackrest.conf"
    good = conf.read_text()
    conf.write_text(good.replace(f"pg1-path={srv.pgdata}", "pg1-path=/nonexistent/data"))
    try:
        rc, out, err = srv.citus_init("backup")
    finally:
        conf.write_text(good)
    assert rc == 1 and out == ""
    failed, = log_lines(err, "backup failed")
    assert "ERROR: [" in failed, failed
    assert srv.sql("SELECT status, error LIKE '%ERROR: [%' FROM citus_init.backup_history "
                   "ORDER BY id DESC LIMIT 1") == "failed|t"

    rc, out, err = srv.citus_init("backup", BACKUP_REPO="none")
    assert rc == 1 and "backups are off" in err


@NEEDS_CITUS
def test_restore_points_catalogue_and_restore_by_name_and_time(posix_server):
    srv = posix_server
    rc, out, err = srv.citus_init("backup")
    assert rc == 0, err
    srv.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    rc, first, err = srv.citus_init("restore-point")
    assert rc == 0, err
    first = first.strip()
    created, = log_lines(err, "restore point created")
    available, = log_lines(err, "restore point available")
    pause_ms = float(field(created, "pause_ms"))
    print(f"restore point {first}: pause_ms={pause_ms} archived_after_s="
          f"{field(available, 'archived_after_s')}")
    assert first.startswith("citus-") and first.endswith("Z") and len(first) == 22
    srv.sql("INSERT INTO t VALUES (2)")
    time.sleep(1.1)  # the next restore point is a second later than the first
    rc, out, err = srv.citus_init("restore-point", "before-3")
    assert rc == 0 and out == "before-3\n", err
    rc, out, err = srv.citus_init("restore-point", "before-3")
    assert rc == 1 and "the name is taken" in err
    rc, out, err = srv.citus_init("restore-point", "bad/name")
    assert rc == 1 and "not a restore point name" in err
    srv.sql("INSERT INTO t VALUES (3)")

    entry = srv.repo.path / "citus-restore-points" / srv.cluster / f"{first}.json"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    doc = json.loads(entry.read_text())
    assert doc["name"] == first and doc["groups"].keys() == {"0"} and doc["time"].endswith("Z")
    assert srv.sql("SELECT string_agg(name || ':' || (archived_at IS NOT NULL) || ':' || "
                   "(pause_ms >= 0), ',' ORDER BY created_at) FROM citus_init.restore_points") \
        == f"{first}:true:true,before-3:true:true"

    rc, out, err = srv.citus_init("restore-points")
    assert rc == 0, err
    listed = [line.split("\t") for line in out.splitlines()]
    assert [n for n, _ in listed] == [first, "before-3"]
    assert listed[0][1] == doc["time"]

    # restore into a new PGDATA (Patroni runs the bootstrap as postgres)
    srv.write_conf("restore.conf", srv.restored, srv.restored_port, srv.repo)
    target = dict(PGDATA=str(srv.restored), RESTORE_FROM_CLUSTER=srv.cluster,
                  PG_PORT=str(srv.restored_port))
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres", RESTORE_TARGET="nope",
                                  **target)
    assert rc == 1 and "not in the catalogue" in err and "name=nope" in err
    assert not srv.restored.exists() or not any(srv.restored.iterdir()), "PGDATA was touched"
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres",
                                  RESTORE_TARGET="1999-01-01T00:00:00Z", **target)
    assert rc == 1 and "no available restore point at or before that time" in err

    # a time between the two restore points resolves to the first
    t = doc["time"]
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres", RESTORE_TARGET=t,
                                  **target)
    assert rc == 0, err
    resolved, = log_lines(err, "restore target resolved")
    assert field(resolved, "target") == first and field(resolved, "type") == "name"
    auto = (srv.restored / "postgresql.auto.conf").read_text()
    # pgBackRest writes the recovery settings: the source's stanza through restore.conf
    assert (f"restore_command = 'pgbackrest --config={srv.conf_dir / 'restore.conf'} "
            f"--stanza={srv.stanza} archive-get %f \"%p\"'") in auto
    assert f"recovery_target_name = '{first}'" in auto
    assert "recovery_target_action = 'promote'" in auto
    srv.start_restored()
    assert srv.sql("SELECT string_agg(x::text, ',' ORDER BY x) FROM t",
                   port=srv.restored_port) == "1"
    srv.pg_ctl(srv.restored, "stop")

    # and by name: the second point
    shutil.rmtree(srv.restored)
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres",
                                  RESTORE_TARGET="before-3", **target)
    assert rc == 0, err
    srv.start_restored()
    assert srv.sql("SELECT string_agg(x::text, ',' ORDER BY x) FROM t",
                   port=srv.restored_port) == "1,2"
    srv.pg_ctl(srv.restored, "stop")


@NEEDS_CITUS
def test_restore_points_pruned_when_retention_expires_their_backups(posix_server):
    """docs/backups.md, Catalogue: after a backup on the coordinator, the restore points no
    group can be restored to any more (retention expired every backup before them) leave the
    catalogue and citus_init.restore_points; the newer ones stay."""
    srv = posix_server
    srv.write_conf("pgbackrest.conf", srv.pgdata, srv.port, srv.repo,
                   extra=["repo1-retention-full=1"])
    catalogue = srv.repo.path / "citus-restore-points" / srv.cluster
    rc, out, err = srv.citus_init("backup")
    assert rc == 0, err
    assert not log_lines(err, "restore points pruned: retention expired the backups they need")
    old = []
    for name in ("old-1", "old-2"):
        rc, out, err = srv.citus_init("restore-point", name)
        assert rc == 0, err
        old.append(name)
    assert {p.stem for p in catalogue.iterdir()} == set(old)

    # a diff backup expires no full one: nothing is pruned
    rc, out, err = srv.citus_init("backup", "--type", "diff")
    assert rc == 0, err
    assert not log_lines(err, "restore points pruned: retention expired the backups they need")
    assert {p.stem for p in catalogue.iterdir()} == set(old)

    # the second full backup expires the first (retention 1): both points need it
    rc, out, err = srv.citus_init("backup")
    assert rc == 0, err
    pruned, = log_lines(err, "restore points pruned: retention expired the backups they need")
    assert (field(pruned, "count"), field(pruned, "oldest"), field(pruned, "newest")) == \
        ("2", "old-1", "old-2"), pruned
    assert not catalogue.exists() or not any(catalogue.iterdir())
    assert srv.sql("SELECT count(*) FROM citus_init.restore_points WHERE name LIKE 'old-%'") == "0"

    rc, out, err = srv.citus_init("restore-point", "new-1")
    assert rc == 0, err
    rc, out, err = srv.citus_init("backup", "--type", "diff")
    assert rc == 0, err
    rc, out, err = srv.citus_init("restore-points")
    assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["new-1"], out + err

    # and the kept point still restores
    srv.write_conf("restore.conf", srv.restored, srv.restored_port, srv.repo)
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres", RESTORE_TARGET="new-1",
                                  PGDATA=str(srv.restored), RESTORE_FROM_CLUSTER=srv.cluster,
                                  PG_PORT=str(srv.restored_port))
    assert rc == 0, err


def test_restore_without_citus_by_time_and_latest_and_restore_point_refused(posix_server):
    srv = posix_server
    off = {"CITUS_ENABLED": "false"}
    rc, out, err = srv.citus_init("backup", **off)
    assert rc == 0, err
    srv.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    time.sleep(1.5)
    target_time = srv.sql("SELECT to_char(now() AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
    time.sleep(1.5)
    srv.sql("INSERT INTO t VALUES (2)")
    segment = srv.sql("SELECT pg_walfile_name(pg_switch_wal())")
    cluster.wait_for(lambda: srv.sql(f"SELECT last_archived_wal >= '{segment}' FROM "
                                     "pg_stat_archiver") == "t", 60, what="the WAL to be archived")
    rc, out, err = srv.citus_init("restore-point", **off)
    assert rc == 1 and "restore points are made on the Citus coordinator" in err

    srv.write_conf("restore.conf", srv.restored, srv.restored_port, srv.repo)
    target = dict(off, PGDATA=str(srv.restored), RESTORE_FROM_CLUSTER=srv.cluster,
                  PG_PORT=str(srv.restored_port))
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres",
                                  RESTORE_TARGET=target_time, **target)
    assert rc == 0, err
    resolved, = log_lines(err, "restore target resolved")
    assert field(resolved, "type") == "time"
    auto = (srv.restored / "postgresql.auto.conf").read_text()
    assert "recovery_target_time = '" in auto
    srv.start_restored()
    assert srv.sql("SELECT string_agg(x::text, ',') FROM t", port=srv.restored_port) == "1"
    srv.pg_ctl(srv.restored, "stop")

    shutil.rmtree(srv.restored)
    rc, out, err = srv.citus_init("restore-bootstrap", user="postgres", RESTORE_TARGET="latest",
                                  **target)
    assert rc == 0, err
    assert field(log_lines(err, "restore target resolved")[0], "type") == "default"
    assert "recovery_target" not in (srv.restored / "postgresql.auto.conf").read_text()


# ---------------------------------------------------------------- S3


def s3_server_or_skip(root):
    try:
        from localcluster import s3
        binary = s3.versitygw_binary()
    except ImportError:
        pytest.skip("scripts/lib/localcluster/s3.py is missing: no S3 server to test against")
    except Exception as exc:
        pytest.skip(f"no S3 server to test against: {exc}")
    server = s3.S3Server(root, cluster.Net.pick().ip(200))
    assert binary
    return server


@NEEDS_CITUS
def test_s3_catalogue_restore_point_listing_and_restore():
    root = cluster.make_tempdir("pck-backup-s3-")
    s3srv = s3_server_or_skip(root / "s3")
    srv = None
    try:
        s3srv.start(user="test")
        srv = Server(root / "srv", "bks3", Repo("s3", "/bks3", s3srv), True)
        srv.start()
        rc, out, err = srv.citus_init("backup")
        assert rc == 0, err
        srv.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        rc, name, err = srv.citus_init("restore-point")
        assert rc == 0, err
        name = name.strip()
        srv.sql("INSERT INTO t VALUES (2)")
        extra = []
        for i in range(3):
            rc, out, err = srv.citus_init("restore-point", f"s3-point-{i}")
            assert rc == 0, err
            extra.append(out.strip())
        keys = s3srv.list_keys("bks3/citus-restore-points/")
        assert f"bks3/citus-restore-points/bks3/{name}.json" in keys
        rc, out, err = srv.citus_init("restore-points")
        assert rc == 0, err
        assert [line.split("\t")[0] for line in out.splitlines()] == [name, *extra]

        # wrong keys: a named error with the endpoint, bucket, status and S3 code, no secret
        bad = srv.backup_secrets / "s3-key-secret"
        good = bad.read_text()
        bad.write_text("wrong-secret-key-value")
        try:
            rc, out, err = srv.citus_init("restore-points")
        finally:
            bad.write_text(good)
        assert rc == 1 and "HTTP 403" in err and s3srv.bucket in err, err
        assert "wrong-secret-key-value" not in err

        srv.write_conf("restore.conf", srv.restored, srv.restored_port, srv.repo)
        rc, out, err = srv.citus_init("restore-bootstrap", user="postgres", RESTORE_TARGET=name,
                                      PGDATA=str(srv.restored), RESTORE_FROM_CLUSTER="bks3",
                                      PG_PORT=str(srv.restored_port))
        assert rc == 0, err
        srv.start_restored()
        assert srv.sql("SELECT string_agg(x::text, ',') FROM t", port=srv.restored_port) == "1"

        # retention 1 and a new full backup: every point of the first one is pruned from the
        # bucket (S3 DELETE, signed like the other requests)
        srv.write_conf("pgbackrest.conf", srv.pgdata, srv.port, srv.repo,
                       extra=["repo1-retention-full=1"])
        rc, out, err = srv.citus_init("backup")
        assert rc == 0, err
        pruned, = log_lines(err, "restore points pruned: retention expired the backups they need")
        assert field(pruned, "count") == "4", pruned
        assert not [k for k in s3srv.list_keys("bks3/citus-restore-points/")
                    if k.endswith(".json")]
    finally:
        if srv:
            srv.stop()
        s3srv.release("test")
        cluster.cleanup_dir(root)


# ---------------------------------------------------------------- the agent, in pods

AGENT_WAIT = 120  # the first full backup of a new cluster, on a shared 2-core machine


def backup_env(pods, tag, **extra):
    """A posix repository and the backup secrets for the pods of one test."""
    repo = pods.workdir / f"repo-{tag}"
    secrets_dir = pods.workdir / f"backup-secrets-{tag}"
    for d in (repo, secrets_dir):
        d.mkdir(exist_ok=True)
    chown_postgres(repo)
    os.chmod(repo, 0o750)
    (secrets_dir / "cipher-pass").write_text(PASSPHRASE + "\n")
    env = {"BACKUP_REPO": "posix", "BACKUP_REPO_PATH": str(repo),
           "BACKUP_SECRET_DIR": str(secrets_dir), "BACKUP_FULL_SCHEDULE": "off",
           "BACKUP_DIFF_SCHEDULE": "off", "BACKUP_ARCHIVE_TIMEOUT": "10"}
    env.update(extra)
    return env, repo


def wait_log(pod, msg, timeout=AGENT_WAIT, count=1, **fields):
    """The first `count` agent lines with msg (and those fields); returns them."""
    def found():
        pod.check_running()
        lines = [line for line in log_lines(pod.log(), msg)
                 if all(field(line, k) == v for k, v in fields.items())]
        return lines if len(lines) >= count else None
    return cluster.wait_for(found, timeout, interval=0.5, what=f'"{msg}" {fields} in {pod.name}')


def test_agent_stanza_first_full_schedule_history_and_restore_bootstrap(pods):
    env, repo = backup_env(pods, "a", BACKUP_DIFF_SCHEDULE="* * * * *")
    base = dict(env, CLUSTER_NAME="bka", CITUS_DATABASE="postgres")
    pod = pods.new("bka-0-0", env=base)
    wait_leader(pod)
    wait_log(pod, "stanza ready", stanza="bka-0")
    full, = wait_log(pod, "backup finished", stanza="bka-0", type="full")
    assert "the stanza has no backup yet: a full backup now" in pod.log()
    # the schedule (every minute here) makes a diff on the next minute
    wait_log(pod, "backup finished", timeout=AGENT_WAIT + 60, stanza="bka-0", type="diff")
    rows = pod.sql("SELECT type, status FROM citus_init.backup_history ORDER BY id")
    assert rows[:2] == [("full", "ok"), ("diff", "ok")]

    r = pod.exec([str(pod.binary), "backup", "--type", "incr"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1] == "incr"
    r = pod.exec([str(pod.binary), "restore-point"])
    assert r.returncode == 1 and "restore points are made on the Citus coordinator" in r.stderr
    assert PASSPHRASE not in pod.log()

    pod.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    pod.sql("SELECT pg_switch_wal()")
    cluster.wait_for(lambda: pod.sql("SELECT last_archived_wal IS NOT NULL AND last_failed_wal "
                                     "IS DISTINCT FROM last_archived_wal FROM pg_stat_archiver")
                     == [(True,)], 60, what="archiving")
    segment = pod.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    cluster.wait_for(lambda: pod.sql(f"SELECT last_archived_wal >= '{segment}' FROM "
                                     "pg_stat_archiver") == [(True,)], 60,
                     what="the table's WAL archived")

    # a new cluster restored from bka by Patroni's custom bootstrap (restore-bootstrap)
    restored = pods.new("bkb-0-0", env=dict(env, CLUSTER_NAME="bkb", CITUS_DATABASE="postgres",
                                            RESTORE_FROM_CLUSTER="bka", RESTORE_TARGET="latest"),
                        passwords=pod.passwords)
    wait_leader(restored, timeout=AGENT_WAIT)
    # until Patroni's post-bootstrap, pg_hba.conf is the source's (restored with PGDATA)
    cluster.wait_for(lambda: restored.sql("SELECT x FROM kept") == [(42,)], 60,
                     what="the restored table")
    assert 'msg="restore target resolved"' in restored.log()
    # it archives and backs up into its own stanza, never into the source's
    wait_log(restored, "backup finished", stanza="bkb-0", type="full")
    assert (repo / "backup" / "bkb-0").is_dir()
    assert PASSPHRASE not in restored.log()


@NEEDS_CITUS
def test_agent_restore_points_on_the_coordinator(pods):
    from conftest import start_citus_pair
    env, repo = backup_env(pods, "c", RESTORE_POINT_INTERVAL="10")
    coord, worker = start_citus_pair(pods, "bkc", env)
    wait_log(worker, "backup finished", stanza="bkc-1", type="full")
    wait_log(coord, "backup finished", stanza="bkc-0", type="full")
    # the first after the first full backup, then every 10 s
    lines = wait_log(coord, "restore point available", count=2)
    created = log_lines(coord.log(), "restore point created")
    pauses = [float(field(line, "pause_ms")) for line in created]
    print(f"restore points: pause_ms {pauses}, archived_after_s "
          f"{[field(line, 'archived_after_s') for line in lines]}")
    name = field(lines[0], "name")
    doc = json.loads((repo / "citus-restore-points" / "bkc" / f"{name}.json").read_text())
    assert doc["groups"].keys() == {"0", "1"}
    assert coord.sql("SELECT count(*) FROM citus_init.restore_points WHERE archived_at IS NOT "
                     "NULL")[0][0] >= 2
    # the status tables are local: Citus neither distributes nor propagates them
    assert coord.sql("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE "
                     "'citus_init.%'") == [(0,)]
    assert worker.sql("SELECT to_regclass('citus_init.restore_points') IS NULL") == [(True,)]
    r = coord.exec([str(coord.binary), "restore-points"])
    assert r.returncode == 0, r.stderr
    assert name in [line.split("\t")[0] for line in r.stdout.splitlines()]
    r = worker.exec([str(worker.binary), "restore-point"])
    assert r.returncode == 1 and "restore points are made on the Citus coordinator" in r.stderr


def test_agent_stops_its_backup_when_it_stops_leading(pods):
    """A scheduled backup in progress on a leader that is switched over: TERM to the worker
    and pgBackRest, no backup finished there, and the new leader takes the duties (its setup
    finds the stanza and its backups: no new first full)."""
    from test_extensions import switchover
    env, repo = backup_env(pods, "s", BACKUP_FULL_SCHEDULE="* * * * *",
                           BACKUP_COMPRESS_TYPE="gz", BACKUP_PROCESS_MAX="1",
                           LEADER_POLL_INTERVAL_MS="200")
    pw = cluster.new_passwords()
    base = dict(env, CLUSTER_NAME="bks", CITUS_DATABASE="postgres")
    a = pods.new("bks-a", env=base, passwords=pw)
    wait_leader(a)
    wait_log(a, "backup finished", stanza="bks-0", type="full")
    # enough data for a gzip backup of several seconds on one process
    a.sql("CREATE TABLE big AS SELECT i, md5(i::text) || md5((i + 1)::text) AS pad "
          "FROM generate_series(1, 3000000) i", timeout=120)
    b = pods.new("bks-b", env=base, passwords=pw)
    cluster.wait_for(lambda: b.patroni().get("role") == "replica" and
                     b.patroni().get("state") in ("running", "streaming"), AGENT_WAIT,
                     what="bks-b to stream")
    # a scheduled full backup (every minute) in progress: started, not yet ended

    def running():
        text = a.log()
        ended = len(log_lines(text, "backup finished")) + len(log_lines(text, "backup failed"))
        return len(log_lines(text, "backup started")) > ended
    cluster.wait_for(running, 90, interval=0.2, what="a scheduled backup in progress on bks-a")
    # into the copy: a switchover while pgBackRest starts its backup (pg_backup_start) makes
    # it fail on its own as PostgreSQL stops; copying it does not notice
    time.sleep(3)
    assert running(), "the backup ended within 3 s: too little data to interrupt it"
    ended_before = len(log_lines(a.log(), "backup finished"))
    switchover(a, b)
    stopping, = wait_log(a, "stopping the backup", timeout=30)
    assert field(stopping, "reason") == "no longer the leader"
    assert len(log_lines(a.log(), "backup finished")) == ended_before, \
        "the interrupted backup must not finish on the old leader"

    def no_pgbackrest_backup():
        r = a.exec(["sh", "-c", "ps -eo args | grep -c '[p]gbackrest.* backup' || true"])
        return r.stdout.strip() == "0"
    cluster.wait_for(no_pgbackrest_backup, 20, what="pgBackRest stopped on the old leader")
    wait_log(b, "stanza ready", stanza="bks-0")
    time.sleep(2)
    assert "the stanza has no backup yet" not in b.log()
    assert PASSPHRASE not in a.log() + b.log()
