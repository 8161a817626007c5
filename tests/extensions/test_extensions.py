"""citus-init creates the configured extensions when its member becomes leader.

Real etcd, PostgreSQL 15 with PostGIS and pg_partman, Patroni from the venv, citus-init as PID 1
of each simulated pod. Citus is not installed here, so pods run with CITUS_ENABLED=false: every
cluster's leader owns the extensions, and the database is `postgres` (without Citus nobody
creates a `citus` database).
"""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (LEADER_TIMEOUT, PodSet, assert_no_secrets, start_citus_pair,
                      wait_leader)
from harness import cluster

SECONDS = 20            # "within seconds" for work that follows leadership or a file change


# ---------------------------------------------------------------- helpers

class ConfigMapDir:
    """A directory laid out like a kubelet ConfigMap volume: `extensions` -> `..data/extensions`,
    `..data` -> a timestamped directory; updates swap `..data` atomically (rename)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o755)
        self.version = 0

    @property
    def file(self):
        return self.path / "extensions"

    def write(self, text):
        self.version += 1
        stamp = self.path / f"..2026_11_25_{self.version:06d}"
        stamp.mkdir()
        os.chmod(stamp, 0o755)
        (stamp / "extensions").write_text(text)
        tmp_link = self.path / "..data_tmp"
        if tmp_link.is_symlink():
            tmp_link.unlink()
        tmp_link.symlink_to(stamp.name)
        os.rename(tmp_link, self.path / "..data")
        if not self.file.is_symlink():
            self.file.symlink_to("..data/extensions")


def log_events(text, msg):
    """logfmt lines whose msg is exactly `msg`, as dicts."""
    events = []
    for line in text.splitlines():
        if f'msg="{msg}"' not in line and f"msg={msg} " not in line:
            continue
        fields = {}
        for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
            v = m.group(2)
            fields[m.group(1)] = json.loads(v) if v.startswith('"') else v
        events.append(fields)
    return events


def extension_events(pod, msg, name):
    return [e for e in log_events(pod.log(), msg) if e.get("extension") == name]


def wait_extensions(pod, names, timeout=SECONDS, dbname=None):
    return cluster.wait_for(lambda: set(names) <= set(pod.extensions(dbname)), timeout,
                            what=f"extensions {sorted(names)} on {pod.name}")


def env_for(cm=None, extensions="", cluster_name="ext", database="postgres", **more):
    """Pod env; database=None leaves CITUS_DATABASE at its default (citus)."""
    env = {"CLUSTER_NAME": cluster_name, "CITUS_DATABASE": database, "EXTENSIONS": extensions,
           "LEADER_POLL_INTERVAL_MS": "500", "EXTENSIONS_RETRY_DELAY": "1"}
    if cm is not None:
        env["EXTENSIONS_FILE"] = str(cm.file)
    env.update(more)
    return env


def oneshot(citus_init, pod_or_host, extensions, secrets_dir, attempts=3, delay=1, timeout=120):
    """`citus-init extensions --wait` as the chart's Job runs it (no pod, no privilege drop)."""
    host = pod_or_host if isinstance(pod_or_host, str) else pod_or_host.ip
    dbname = "postgres" if isinstance(pod_or_host, str) else pod_or_host.database
    env = {"PATH": os.environ["PATH"], "COORDINATOR_HOST": host, "CITUS_DATABASE": dbname,
           "SECRETS_DIR": str(secrets_dir), "EXTENSIONS": extensions,
           "EXTENSIONS_MAX_ATTEMPTS": str(attempts), "EXTENSIONS_RETRY_DELAY": str(delay)}
    res = subprocess.run([str(citus_init), "extensions", "--wait"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return res.returncode, res.stdout, res.stderr


# ---------------------------------------------------------------- one leader, many changes

@pytest.fixture(scope="module")
def leader(net, etcd, workdir, citus_init):
    """One member (so: the leader) with an inline list that has a typo, plus a watched file."""
    ps = PodSet(net, etcd, workdir)
    ps.next_ip = 20
    cm = ConfigMapDir(workdir / "cm-leader")
    cm.write("# managed by helm\ncitext\n")
    try:
        # Default CITUS_DATABASE (citus): without Citus, citus-init creates the database.
        pod = ps.new("ext-a", env=env_for(cm, "postgis,pg_partman:partman,postgis_topolgy",
                                          cluster_name="exta", database=None))
        pod.cm = cm
        pod.leader_seen = time.monotonic() if wait_leader(pod) else None
        yield pod
    finally:
        ps.stop_all()


def test_extensions_exist_within_seconds_of_leadership(leader):
    wait_extensions(leader, {"postgis", "pg_partman", "citext"})
    latency = time.monotonic() - leader.leader_seen
    print(f"leader observed -> extensions present: {latency:.2f}s (informational)")
    schema = leader.sql("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                        "ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'")
    assert schema == [("partman",)], "pg_partman:partman must install into schema partman"
    created = cluster.wait_for(lambda: extension_events(leader, "extension created", "postgis"),
                               SECONDS, what="the 'extension created' log line for postgis")
    ev = created[0]
    assert ev["outcome"] == "created"
    assert re.match(r"\d+\.\d+", ev["version"]), ev
    assert int(ev["duration_ms"]) >= 0
    assert extension_events(leader, "extension created", "pg_partman")[0]["schema"] == "partman"


def test_database_created_without_citus(leader):
    wait_extensions(leader, {"postgis"}, dbname="citus")
    assert log_events(leader.log(), "database created")[0]["database"] == "citus"


def test_unknown_extension_named_with_suggestions_others_created(leader):
    wait_extensions(leader, {"postgis", "pg_partman", "citext"})
    failed = cluster.wait_for(
        lambda: extension_events(leader, "extension failed", "postgis_topolgy"), SECONDS,
        what="the failure of postgis_topolgy")
    err = failed[0]["error"]
    assert 'extension "postgis_topolgy" is not available' in err, err
    assert "closest available: postgis_topology" in err, err
    assert "postgis_topolgy" not in leader.extensions()


def test_file_change_creates_new_extension_without_restart(leader):
    wait_extensions(leader, {"citext"})
    pid1_before = leader.pid1()
    leader.cm.write("# managed by helm\ncitext\nhstore\n")
    wait_extensions(leader, {"hstore"})
    assert leader.pid1() == pid1_before, "PID 1 changed: the pod restarted"
    changed = log_events(leader.log(), "extension list changed")
    assert changed and changed[-1]["added"] == "1", changed
    assert extension_events(leader, "extension created", "hstore")


def test_removed_name_is_not_dropped(leader):
    wait_extensions(leader, {"citext", "hstore"})
    before = len(log_events(leader.log(), "extension list changed"))
    leader.cm.write("hstore\n")
    cluster.wait_for(lambda: len(log_events(leader.log(), "extension list changed")) > before,
                     SECONDS, what="the list change to be noticed")
    assert "citext" in leader.extensions()


def test_bad_file_content_is_rejected_and_the_list_kept(leader):
    leader.cm.write("hstore\npostgis; DROP TABLE x\n")
    rejected = cluster.wait_for(
        lambda: log_events(leader.log(), "EXTENSIONS_FILE rejected; keeping the previous list"),
        SECONDS, what="the rejection of the bad file")
    assert any('"postgis;"' in e["problem"] for e in rejected), rejected
    assert leader.is_leader()
    leader.cm.write("hstore\n")


def test_oneshot_succeeds_and_prints_a_summary(leader, citus_init):
    rc, out, err = oneshot(citus_init, leader, "postgis,pg_trgm", leader.secrets)
    assert rc == 0, f"rc={rc}\nstdout:\n{out}\nstderr:\n{err}"
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert lines == {"postgis": "already-present", "pg_trgm": "created"}, out
    assert "pg_trgm" in leader.extensions()
    assert_no_secrets(leader, out, err)


def test_no_password_in_the_leader_log(leader):
    wait_extensions(leader, {"postgis"})
    assert_no_secrets(leader)


# ---------------------------------------------------------------- configuration-time rejection

@pytest.mark.parametrize("where", ["EXTENSIONS", "EXTENSIONS_FILE"])
def test_injection_rejected_at_configuration_time(pods, workdir, where):
    cm = ConfigMapDir(workdir / f"cm-inject-{where}")
    if where == "EXTENSIONS":
        cm.write("citext\n")
        env = env_for(cm, "postgis; DROP TABLE x", cluster_name=f"inj{len(where)}")
    else:
        cm.write("postgis; DROP TABLE x\n")
        env = env_for(cm, "citext", cluster_name=f"inj{len(where)}")
    pod = pods.new(f"inject-{where.lower().replace('_', '-')}", env=env, start=False)
    rc, out = pod.run(timeout=60)
    assert rc == 78, f"rc={rc}\n{out}"
    assert where in out or str(cm.file) in out, out
    assert "postgis;" in out, out
    assert not Path(pod.env["PGDATA"]).exists(), "PGDATA was created although the config is bad"
    assert not (Path(pod.env["RUN_DIR"]) / "patroni.yml").exists(), "patroni.yml was written"
    for secret in pod.passwords.values():
        assert secret not in out


def test_oneshot_rejects_injection(pods, citus_init, workdir):
    secrets = workdir / "job-secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "superuser-password").write_text("job-" + os.urandom(6).hex())
    rc, out, err = oneshot(citus_init, "127.0.0.1", "postgis; DROP TABLE x", secrets)
    assert rc == 78, f"rc={rc}\n{out}\n{err}"
    assert "EXTENSIONS" in err and "postgis;" in err, err


def test_oneshot_unreachable_coordinator_fails_clearly(citus_init, net, workdir):
    secrets = workdir / "job-secrets-2"
    secrets.mkdir(exist_ok=True)
    password = "job-" + os.urandom(6).hex()
    (secrets / "superuser-password").write_text(password)
    host = net.ip(250)  # nothing listens there
    rc, out, err = oneshot(citus_init, host, "postgis", secrets, attempts=2, delay=1)
    assert rc != 0
    assert f"coordinator {host}:5432 not reachable after 2 attempts in " in err, err
    assert password not in out + err


class Standby:
    """A bare PostgreSQL server held in recovery (standby.signal, no primary), promoted on
    demand: a coordinator on its way up, as the Job and a new leader meet it."""

    def __init__(self, workdir, ip, password):
        self.ip = ip
        self.dir = workdir / f"standby-{ip}"
        self.data = self.dir / "data"
        self.dir.mkdir()
        pwfile = self.dir / "pw"
        pwfile.write_text(password)
        for p in (self.dir, pwfile):
            shutil.chown(p, "postgres", "postgres")
        self._as_postgres(["initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                           "--auth-host", "scram-sha-256", "--auth-local", "trust"])
        (self.data / "standby.signal").touch()
        shutil.chown(self.data / "standby.signal", "postgres", "postgres")
        self._as_postgres(["pg_ctl", "-D", str(self.data), "-w", "-l", str(self.dir / "log"),
                           "-o", f"-c listen_addresses={ip} -c unix_socket_directories={self.dir}",
                           "start"])

    def _as_postgres(self, argv):
        tool = str(cluster.paths.pg_bin_dir() / argv[0])
        subprocess.run(["runuser", "-u", "postgres", "--", tool, *argv[1:]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def promote(self):
        self._as_postgres(["pg_ctl", "-D", str(self.data), "-w", "promote"])

    def stop(self):
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])


def test_oneshot_waits_for_a_coordinator_in_recovery_beyond_its_attempts(citus_init, net, workdir):
    """A coordinator still in recovery is an expected wait, bounded by attempts x delay in time,
    not a failed attempt: with 2 attempts 3 s apart, the Job is still waiting after its second
    try and succeeds once the server is promoted (it used to give up at the second try)."""
    secrets = workdir / "job-secrets-3"
    secrets.mkdir(exist_ok=True)
    password = "job-" + os.urandom(6).hex()
    (secrets / "superuser-password").write_text(password)
    standby = Standby(workdir, net.ip(251), password)
    try:
        env = {"PATH": os.environ["PATH"], "COORDINATOR_HOST": standby.ip, "CITUS_DATABASE": "postgres",
               "SECRETS_DIR": str(secrets), "EXTENSIONS": "citext", "SSL_ENABLED": "false",
               "LOG_LEVEL": "debug", "EXTENSIONS_MAX_ATTEMPTS": "2", "EXTENSIONS_RETRY_DELAY": "3"}
        job = subprocess.Popen([str(citus_init), "extensions", "--wait"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            waits = 0
            err_lines = []
            for line in job.stderr:
                err_lines.append(line)
                if "will retry" in line and "still in recovery" in line:
                    waits += 1
                    if waits == 2:  # past the point where 2 attempts used to give up
                        standby.promote()
                        break
            out, rest = job.communicate(timeout=60)
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        err = "".join(err_lines) + rest
        assert waits == 2, err
        assert job.returncode == 0, err
        assert "citext" in out, out
        assert password not in out + err
    finally:
        standby.stop()


# ---------------------------------------------------------------- promotions

def post_json(pod, path, body, timeout=30):
    """POST with the pod's REST API credentials (unsafe methods need them by default)."""
    return pod.api("POST", path, body, timeout=timeout)[0]


def switchover(old, new):
    def attempt():
        try:
            return post_json(old, "/switchover", {"leader": old.name, "candidate": new.name}) == 200
        except Exception:
            return False
    cluster.wait_for(attempt, 90, interval=2, what=f"switchover {old.name} -> {new.name}")
    wait_leader(new)


def test_every_promotion_rechecks_without_errors(pods):
    pw = cluster.new_passwords()
    env = env_for(None, "postgis,pg_partman:partman", cluster_name="extsw")
    a = pods.new("sw-a", env=env, passwords=pw)
    wait_leader(a)
    wait_extensions(a, {"postgis", "pg_partman"})
    b = pods.new("sw-b", env=env, passwords=pw)
    cluster.wait_for(lambda: b.patroni().get("role") == "replica" and
                     b.patroni().get("state") in ("running", "streaming"),
                     LEADER_TIMEOUT, what="sw-b to stream")

    switchover(a, b)
    cluster.wait_for(lambda: extension_events(b, "extension already present", "pg_partman"),
                     SECONDS, what="sw-b to re-check after its promotion")
    assert extension_events(b, "extension already present", "postgis")

    switchover(b, a)
    cluster.wait_for(lambda: len(extension_events(a, "extension already present", "postgis")) >= 1,
                     SECONDS, what="sw-a to re-check after its second promotion")
    assert len(log_events(a.log(), "this member is the leader; checking extensions")) == 2
    for pod in (a, b):
        assert not log_events(pod.log(), "extension failed"), pod.log()[-4000:]
        assert not log_events(pod.log(), "extensions: giving up")
        assert_no_secrets(pod)


# ---------------------------------------------------------------- Citus propagation

def test_citus_propagates_extensions_to_workers(pods):
    """Coordinator leader creates the list in the Citus database; Citus puts it on workers."""
    if not cluster.paths.citus_available():
        pytest.skip(f"citus is not installed ({cluster.paths.citus_control_file()} is missing): "
                    "propagation to workers can only be checked where Citus is packaged")
    coord, worker = start_citus_pair(pods, "extcitus", {
        "EXTENSIONS": "postgis,pg_partman:partman", "LEADER_POLL_INTERVAL_MS": "500"})
    cluster.wait_for(lambda: coord.sql("SELECT count(*) FROM pg_dist_node WHERE groupid = 1 "
                                       "AND noderole = 'primary'", "citus") == [(1,)],
                     LEADER_TIMEOUT, what="the worker to be registered")
    wait_extensions(coord, {"postgis", "pg_partman"}, dbname="citus")
    wait_extensions(worker, {"postgis", "pg_partman"}, dbname="citus")
    # the worker's citus-init never acts: group 1 does not own the list
    assert not log_events(worker.log(), "this member is the leader; checking extensions")
