"""pgBackRest's files as the start path writes them (docs/backups.md, Rendered files), read by
the real pgBackRest: modes and owner, content, no secret in any log line or child
environment, and a posix repository in a temp dir driven through the very commands
rendered into patroni.yml (archive_command, restore_command, the replica method) against a
real PostgreSQL."""
import os
import re
import shlex
import shutil
import stat
import subprocess

import pytest
import yaml

from conftest import BIN, POSTGRES

PG_UID, PG_GID = POSTGRES.pw_uid, POSTGRES.pw_gid
AS_POSTGRES = ["setpriv", f"--reuid={PG_UID}", f"--regid={PG_GID}", "--clear-groups"]
PG_BIN = "/usr/lib/postgresql/15/bin"
CIPHER = "Backup-C1pher-Passphrase #1"
SRC_CIPHER = "Source-C1pher-Passphrase #2"
S3_KEY = "AKIAB4CKUPK3Y"
S3_SECRET = "b4ckup/S3cret=Key+1"
SECRETS = (CIPHER, SRC_CIPHER, S3_KEY, S3_SECRET)

needs_pgbackrest = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                      reason="pgbackrest is not installed (Debian package pgbackrest)")


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def secret_files(directory, values):
    directory.mkdir()
    for name, value in values.items():
        (directory / name).write_text(value)
        (directory / name).chmod(0o644)
    directory.chmod(0o755)


@pytest.fixture
def backup_pod(pod):
    """The pod with a posix repository (encrypted) in the workdir, and a restore's source."""
    d = pod["dir"]
    secret_files(d / "backup", {"cipher-pass": CIPHER + "\n", "s3-key": S3_KEY + "\n",
                                "s3-key-secret": S3_SECRET})
    secret_files(d / "source", {"cipher-pass": SRC_CIPHER})
    for repo in ("repo", "old-repo"):
        (d / repo).mkdir()
        os.chown(d / repo, PG_UID, PG_GID)
        (d / repo).chmod(0o700)
    env = dict(pod["env"], BACKUP_REPO="posix", BACKUP_REPO_PATH=str(d / "repo"),
               BACKUP_SECRET_DIR=str(d / "backup"))
    return dict(pod, env=env, conf_dir=pod["run_dir"] / "pgbackrest")


def pgbackrest(conf, stanza, *args):
    return subprocess.run([*AS_POSTGRES, "pgbackrest", f"--config={conf}", f"--stanza={stanza}",
                           *args], capture_output=True, text=True, timeout=120)


def no_secret_in(text):
    return not any(s in text for s in SECRETS)


def test_no_files_without_a_repository(pid1, pod):
    p = pid1(["run", "--", "true"], env=pod["env"])
    assert p.wait() == 0, p.stderr
    assert not (pod["run_dir"] / "pgbackrest").exists()
    doc = yaml.safe_load((pod["run_dir"] / "patroni.yml").read_text())
    assert "archive_mode" not in doc["postgresql"]["parameters"]
    assert "create_replica_methods" not in doc["postgresql"]
    assert "method" not in doc["bootstrap"]


@needs_pgbackrest
def test_files_rendered_and_accepted_by_pgbackrest(pid1, backup_pod):
    env = dict(backup_pod["env"], RESTORE_FROM_CLUSTER="old", RESTORE_TARGET="latest",
               RESTORE_REPO_PATH=str(backup_pod["dir"] / "old-repo"),
               RESTORE_SECRET_DIR=str(backup_pod["dir"] / "source"))
    p = pid1(["run", "--", "true"], env=env)
    assert p.wait() == 0, p.stderr
    assert no_secret_in(p.stdout + p.stderr)
    conf_dir = backup_pod["conf_dir"]
    assert owner_mode(conf_dir) == (PG_UID, PG_GID, 0o700)
    assert owner_mode(conf_dir / "lock") == (PG_UID, PG_GID, 0o700)
    assert sorted(os.listdir(conf_dir)) == ["lock", "pgbackrest.conf", "restore.conf"]
    for name in ("pgbackrest.conf", "restore.conf"):
        assert owner_mode(conf_dir / name) == (PG_UID, PG_GID, 0o600)

    conf = (conf_dir / "pgbackrest.conf").read_text()
    lines = conf.splitlines()
    assert lines[1] == "[global]"
    assert "repo1-type=posix" in lines
    assert f"repo1-path={backup_pod['dir'] / 'repo'}" in lines
    assert f"repo1-cipher-pass={CIPHER}" in lines  # one line end stripped
    assert f"lock-path={conf_dir / 'lock'}" in lines
    assert "[pid1test-0]" in lines
    assert f"pg1-path={backup_pod['pgdata']}" in lines
    assert not any(line.startswith("repo1-s3") for line in lines)
    restore = (conf_dir / "restore.conf").read_text().splitlines()
    assert f"repo1-path={backup_pod['dir'] / 'old-repo'}" in restore
    assert f"repo1-cipher-pass={SRC_CIPHER}" in restore
    assert "[old-0]" in restore

    # the real pgBackRest reads both: every option known (it only warns about unknown
    # ones, so stderr must be empty), the repository reachable, the stanza not yet there
    for name, stanza in (("pgbackrest.conf", "pid1test-0"), ("restore.conf", "old-0")):
        r = pgbackrest(conf_dir / name, stanza, "info")
        assert (r.returncode, r.stderr) == (0, ""), r
        assert f"stanza: {stanza}" in r.stdout and "missing stanza path" in r.stdout
        r = pgbackrest(conf_dir / name, stanza, "help", "backup", "repo-cipher-pass")
        assert r.returncode == 0 and r.stderr == "" and "current: <redacted>" in r.stdout, r

    doc = yaml.safe_load((backup_pod["run_dir"] / "patroni.yml").read_text())
    assert doc["bootstrap"]["method"] == "citus_init_restore"
    method = doc["bootstrap"]["citus_init_restore"]
    command = shlex.split(method["command"])
    assert os.path.isabs(command[0]) and os.path.samefile(command[0], BIN)
    assert command[1:] == ["restore-bootstrap"]
    assert method["keep_existing_recovery_conf"] is True and method["no_params"] is True


@needs_pgbackrest
def test_s3_options_are_pgbackrest_options(pid1, backup_pod):
    """Every S3 option as pgBackRest reads it (help shows the current value; nothing is
    contacted), the CA copied for the postgres user."""
    ca = backup_pod["dir"] / "ca.pem"
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
    ca.chmod(0o600)  # root only: pgBackRest reads the copy
    env = dict(backup_pod["env"], BACKUP_REPO="s3", BACKUP_REPO_PATH="/citus",
               BACKUP_S3_ENDPOINT="minio.example.com:9000", BACKUP_S3_BUCKET="citus-backups",
               BACKUP_S3_REGION="eu-central-1", BACKUP_S3_URI_STYLE="path",
               BACKUP_S3_CA_FILE=str(ca), BACKUP_S3_VERIFY_TLS="false",
               BACKUP_COMPRESS_TYPE="lz4", BACKUP_PROCESS_MAX="3", BACKUP_RETENTION_FULL="4")
    p = pid1(["run", "--", "true"], env=env)
    assert p.wait() == 0, p.stderr
    assert no_secret_in(p.stdout + p.stderr)
    assert 'level=warn' in p.stderr and "BACKUP_S3_VERIFY_TLS: false" in p.stderr
    conf_dir = backup_pod["conf_dir"]
    copy = conf_dir / "ca.crt"
    assert owner_mode(copy) == (PG_UID, PG_GID, 0o600)
    assert copy.read_bytes() == ca.read_bytes()
    conf = conf_dir / "pgbackrest.conf"
    expected = {
        "repo-type": "s3", "repo-path": "/citus", "repo-s3-endpoint": "minio.example.com",
        "repo-storage-port": "9000", "repo-s3-bucket": "citus-backups",
        "repo-s3-region": "eu-central-1", "repo-s3-uri-style": "path",
        "repo-storage-ca-file": str(copy), "repo-storage-verify-tls": "false",
        "repo-s3-key": "<redacted>", "repo-s3-key-secret": "<redacted>",
        "repo-cipher-type": "aes-256-cbc", "repo-cipher-pass": "<redacted>",
        "repo-retention-full": "4", "process-max": "3", "compress-type": "lz4",
        "start-fast": "true", "delta": "true", "archive-async": "false", "log-level-console": "off",
        "log-level-stderr": "warn", "log-level-file": "off", "lock-path": str(conf_dir / "lock"),
        "pg-path": str(backup_pod["pgdata"]), "pg-port": "5432",
        "pg-socket-path": "/var/run/postgresql", "pg-user": "postgres",
    }
    for option, value in expected.items():
        command = "archive-push" if option == "archive-async" else "backup"
        r = pgbackrest(conf, "pid1test-0", "help", command, option)
        assert r.returncode == 0 and r.stderr == "", (option, r)
        current = [line for line in r.stdout.splitlines() if line.startswith("current: ")]
        assert current == [f"current: {value}"], (option, r.stdout)
    assert no_secret_in(conf.read_text().replace(CIPHER, "").replace(S3_KEY, "")
                        .replace(S3_SECRET, "")) and CIPHER in conf.read_text()


def test_repository_secrets_reach_no_child_environment(pid1, backup_pod):
    """Read from files only; a variable of a handover name is never passed on."""
    env = dict(backup_pod["env"], BACKUP_S3_KEY="env-s3-key", BACKUP_CIPHER_PASS="env-cipher",
               RESTORE_CIPHER_PASS="env-restore-cipher")
    p = pid1(["run", "--", "env"], env=env)
    assert p.wait() == 0, p.stderr
    child = dict(line.split("=", 1) for line in p.stdout.splitlines())
    for name in ("BACKUP_S3_KEY", "BACKUP_S3_KEY_SECRET", "BACKUP_CIPHER_PASS", "RESTORE_S3_KEY",
                 "RESTORE_S3_KEY_SECRET", "RESTORE_CIPHER_PASS"):
        assert name not in child
    assert not any(s in v for v in child.values() for s in SECRETS + ("env-cipher",))
    assert child["BACKUP_REPO"] == "posix"  # the settings themselves pass
    assert no_secret_in(p.stderr)
    # the file, not the variable, is what is used
    assert f"repo1-cipher-pass={CIPHER}\n" in (backup_pod["conf_dir"] / "pgbackrest.conf").read_text()


def test_agent_gets_the_repository_secrets_on_stdin(pid1, backup_pod):
    """The agent's configuration needs the handover (config_load_agent reads the secrets
    only from its stdin): with the S3 keys and the cipher pass it loads without a complaint."""
    env = dict(backup_pod["env"], BACKUP_REPO="s3", BACKUP_S3_ENDPOINT="127.0.77.9:9",
               BACKUP_S3_BUCKET="citus-backups", BACKUP_FULL_SCHEDULE="off",
               BACKUP_DIFF_SCHEDULE="off", LEADER_POLL_INTERVAL_MS="100")
    p = pid1(["run", "--", "sleep", "2"], env=env)
    assert p.wait() == 0, p.stderr
    if "cannot load a module of citus-init" in p.stderr:
        pytest.skip("the agent module does not load in this build: " + p.stderr[-300:])
    assert "not handed over on the agent's stdin" not in p.stderr, p.stderr
    assert "agent: configuration invalid" not in p.stderr, p.stderr
    assert 'component=citus-init-agent msg="agent started"' in p.stderr, p.stderr
    assert no_secret_in(p.stderr)


PG_SCRIPT = r"""
set -eu
mount --bind "$SOCKDIR" /var/run/postgresql
as_pg() { setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; }
as_pg "$PG_BIN/initdb" -D "$PGDATA" -A peer --no-sync >/dev/null
as_pg sh -c 'cat "$1" >> "$2/postgresql.conf"' - "$SNIPPET" "$PGDATA"
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -t 60 start >/dev/null
trap 'as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true' EXIT
as_pg pgbackrest --config="$CONF" --stanza="$STANZA" stanza-create
# check: forces a WAL switch and waits until archive_command archived it
as_pg pgbackrest --config="$CONF" --stanza="$STANZA" check
as_pg pgbackrest --config="$CONF" --stanza="$STANZA" --type=full backup
as_pg "$PG_BIN/psql" -h /var/run/postgresql -p "$PG_PORT" -d postgres -Atc \
  "select pg_switch_wal() is not null" >/dev/null
as_pg pgbackrest --config="$CONF" --stanza="$STANZA" check
SEGMENT=$(as_pg "$PG_BIN/psql" -h /var/run/postgresql -p "$PG_PORT" -d postgres -Atc \
  "select last_archived_wal from pg_stat_archiver")
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 stop >/dev/null
trap - EXIT
# restore_command as PostgreSQL would run it (sh -c, %f and %p replaced, %% made %)
RESTORE=$(printf '%s' "$RESTORE_CMD" | sed -e "s|%f|$SEGMENT|g" -e "s|%p|$WORK/fetched|g" -e 's|%%|%|g')
(cd "$PGDATA" && as_pg sh -c "$RESTORE")
test -s "$WORK/fetched"
# the replica method exactly as Patroni runs it (shlex.split, no parameters), over PGDATA
as_pg "$PYTHON" -c 'import shlex, subprocess, sys; sys.exit(subprocess.call(shlex.split(sys.argv[1])))' "$REPLICA_CMD"
test -f "$PGDATA/standby.signal"
echo "autoconf=$(grep '^restore_command' "$PGDATA/postgresql.auto.conf")"
echo "segment=$SEGMENT"
as_pg pgbackrest --config="$CONF" --stanza="$STANZA" --output=json info
"""


@needs_pgbackrest
@pytest.mark.skipif(not os.path.exists(f"{PG_BIN}/initdb"), reason="no PostgreSQL 15 server")
def test_rendered_commands_archive_back_up_and_restore(pid1, backup_pod):
    """A real PostgreSQL with the rendered archive_command, then the rendered restore_command
    and replica method: the commands and pgBackRest's files work together, a RUN_DIR with
    spaces and parentheses included."""
    d = backup_pod["dir"]
    run_dir = d / "run dir (1)"
    port = 55000 + os.getpid() % 900
    env = dict(backup_pod["env"], RUN_DIR=str(run_dir), PG_PORT=str(port))
    p = pid1(["run", "--", "true"], env=env)
    assert p.wait() == 0, p.stderr
    doc = yaml.safe_load((run_dir / "patroni.yml").read_text())
    pg = doc["postgresql"]
    archive = pg["parameters"]["archive_command"]
    assert pg["parameters"]["archive_mode"] == "on" and pg["parameters"]["archive_timeout"] == 60
    assert pg["create_replica_methods"] == ["pgbackrest", "basebackup"]
    assert pg["pgbackrest"]["keep_data"] is True and pg["pgbackrest"]["no_params"] is True
    assert pg["basebackup"] == [{"checkpoint": "fast"}]
    sockdir = d / "sock"
    sockdir.mkdir()
    os.chown(sockdir, PG_UID, PG_GID)
    work = d / "work"
    work.mkdir()
    os.chown(work, PG_UID, PG_GID)
    # the parameters as Patroni writes them into postgresql.conf (ConfigWriter.escape:
    # quotes and backslashes doubled)
    snippet = work / "archive.conf"
    snippet.write_text("listen_addresses = ''\n"
                       f"port = {port}\n"
                       "unix_socket_directories = '/var/run/postgresql'\n"
                       "wal_level = replica\n"
                       "archive_mode = on\n"
                       "archive_command = '{}'\n".format(re.sub(r"(['\\])", r"\1\1", archive)))
    snippet.chmod(0o644)
    script_env = dict(os.environ, SOCKDIR=str(sockdir), PG_BIN=PG_BIN, PGDATA=str(backup_pod["pgdata"]),
                      WORK=str(work), PG_PORT=str(port), SNIPPET=str(snippet),
                      CONF=str(run_dir / "pgbackrest" / "pgbackrest.conf"), STANZA="pid1test-0",
                      RESTORE_CMD=pg["recovery_conf"]["restore_command"],
                      REPLICA_CMD=pg["pgbackrest"]["command"], PYTHON="/usr/bin/python3")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", PG_SCRIPT], env=script_env,
                       capture_output=True, text=True, timeout=300)
    log = (work / "pg.log").read_text() if (work / "pg.log").exists() else ""
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{log}"
    assert "archive command failed" not in log, log
    # what pgBackRest left for PostgreSQL (a restore bootstrap keeps it): its own command with
    # our configuration, the path quoted for PostgreSQL's shell
    autoconf = r.stdout.split("autoconf=", 1)[1].split("\n", 1)[0]
    assert autoconf == ("restore_command = 'pgbackrest --config=\"{}\" --stanza=pid1test-0 "
                        "archive-get %f \"%p\"'").format(run_dir / "pgbackrest" / "pgbackrest.conf")
    info = r.stdout.split("segment=", 1)[1]
    assert '"type":"full"' in info and '"status":{"code":0' in info, info
    assert no_secret_in(r.stdout + r.stderr + log + p.stderr)
