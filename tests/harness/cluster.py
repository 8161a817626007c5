"""etcd and simulated pods for end-to-end tests (no Kubernetes, no Docker).

Net         a private /24 in 127.0.0.0/8 for one test session; .ip(n) gives the n-th address
Etcd        one etcd member (Debian's binary) on its own address; context manager
Pod         citus-init as PID 1 of a new PID + mount namespace, started through
            scripts/lib/localcluster/pod-launcher with the pod's env and volumes:
            a private /var/run/postgresql, PGDATA and RUN_DIR under the pod's directory
wait_for    poll a predicate until true or timeout (raises with the last value seen)

Everything started here is stopped by PID (never by name), also when a test fails: use the
context managers or call stop() in a finalizer. All traffic stays on loopback.
All directories live below a 0755 temp dir so the postgres user (citus-init drops to it)
can traverse them.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from localcluster import paths, procs  # noqa: E402  (shared with the local cluster)

from . import rest  # noqa: E402

PG_PORT = 5432
API_PORT = 8008
ETCD_PORT = 2379


class PodExited(Exception):
    """A pod stopped while a test waited for it: waiting longer cannot help."""


def wait_for(predicate, timeout, interval=0.2, what="condition"):
    """Call predicate until it returns a true value; return that value or raise.
    Exceptions count as "not yet", except PodExited, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except PodExited:
            raise
        except Exception as exc:  # the thing may simply not be up yet
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def make_tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


class Net:
    """127.<a>.<b>.0/24 chosen at random, so concurrent sessions rarely meet."""

    def __init__(self, a, b):
        self.prefix = f"127.{a}.{b}"

    @classmethod
    def pick(cls):
        return cls(random.randint(20, 250), random.randint(1, 250))

    def ip(self, n):
        return f"{self.prefix}.{n}"


class _Started:
    """A process we started: remembers PID and start time so it is only ever signalled
    while it is still that very process."""

    def __init__(self, popen, log_path):
        self.popen = popen
        self.log_path = Path(log_path)
        p = procs.read_proc(popen.pid)
        self.start_ticks = p.start_ticks if p else 0

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Etcd:
    def __init__(self, net, tmp=None, n=1):
        self.ip = net.ip(n)
        self.tmp = Path(tmp) if tmp else make_tempdir("pck-etcd-")
        self.proc = None

    @property
    def hosts(self):
        return f"{self.ip}:{ETCD_PORT}"

    def start(self):
        client = f"http://{self.ip}:{ETCD_PORT}"
        peer = f"http://{self.ip}:{ETCD_PORT + 1}"
        log = self.tmp / "etcd.log"
        cmd = ["etcd", "--name", "e1", "--data-dir", str(self.tmp / "etcd-data"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"e1={peer}", "--initial-cluster-state", "new",
               "--log-level", "warn", "--logger", "zap"]
        with open(log, "wb") as out:
            self.proc = _Started(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL), log)
        wait_for(lambda: urllib.request.urlopen(f"{client}/health", timeout=1).status == 200,
                 30, what=f"etcd on {client}")
        return self

    def stop(self):
        if self.proc:
            procs.stop_process(self.proc.popen.pid, self.proc.start_ticks, 10)
            self.proc.popen.wait(timeout=10)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def new_passwords():
    """Random superuser/replication/REST API passwords (distinctive, so logs can be searched)."""
    return {"superuser": "su-" + os.urandom(9).hex(), "replication": "rep-" + os.urandom(9).hex(),
            "restapi": "api-" + os.urandom(9).hex()}


class Pod:
    """One simulated database pod: citus-init as PID 1, its own address and volumes.

    env: extra/overriding pod environment (strings). The defaults describe a Patroni member
    with etcd3 DCS, PostgreSQL on the pod's address, secrets in files, debug logs.
    """

    def __init__(self, name, ip, etcd, tmp, env=None, citus_init=None, passwords=None):
        self.name = name
        self.ip = ip
        self.dir = Path(tmp) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.secrets = self.dir / "secrets"
        self.secrets.mkdir(exist_ok=True)
        self.sockets = self.dir / "pgrun"      # mounted at /var/run/postgresql
        self.sockets.mkdir(exist_ok=True)
        os.chmod(self.sockets, 0o755)
        # Members of one cluster share credentials: pass the same dict (see new_passwords).
        self.passwords = passwords or new_passwords()
        (self.secrets / "superuser-password").write_text(self.passwords["superuser"] + "\n")
        (self.secrets / "replication-password").write_text(self.passwords["replication"] + "\n")
        (self.secrets / "restapi-password").write_text(self.passwords["restapi"] + "\n")
        self.binary = Path(citus_init or paths.citus_init_binary())
        self.env = {
            "PATH": f"{paths.VENV}/bin:/usr/local/bin:/usr/bin:/bin",
            "POD_NAME": name,
            "POD_IP": ip,
            "LISTEN_ADDRESS": ip,
            "CLUSTER_NAME": "pck",
            "CITUS_GROUP": "0",
            "CITUS_ENABLED": "false",
            "DCS_TYPE": "etcd3",
            "ETCD_HOSTS": etcd.hosts if etcd else "",
            "DCS_TTL": "20",
            "DCS_LOOP_WAIT": "2",
            "DCS_RETRY_TIMEOUT": "5",
            "PGDATA": str(self.dir / "pgdata" / "data"),
            "PG_BIN_DIR": str(paths.pg_bin_dir()),
            "RUN_DIR": str(self.dir / "run"),
            "SECRETS_DIR": str(self.secrets),
            "PATRONI_COMMAND": str(paths.VENV / "bin" / "patroni"),
            "LOG_LEVEL": "debug",
            "SHUTDOWN_DEADLINE": "15",
            "TERMINATION_GRACE_PERIOD": "20",
        }
        self.env.update(env or {})
        self.proc = None

    @property
    def log_path(self):
        return self.dir / "pod.log"

    def log(self):
        return self.proc.log() if self.proc else (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else "")

    def _write_spec(self, args):
        env_lines = [f"{k}={v}" for k, v in self.env.items() if v is not None]
        for line in env_lines:
            if "\n" in line:
                raise ValueError(f"pod env value with a newline is not supported: {line!r}")
        (self.dir / "env").write_text("\n".join(env_lines) + "\n")
        (self.dir / "mounts").write_text(f"bind {self.sockets} /var/run/postgresql\n")

    def command(self, args=()):
        return ["unshare", "--mount", "--propagation", "private", str(paths.LAUNCHER),
                str(self.dir), str(self.binary), *args]

    def start(self, args=()):
        self._write_spec(args)
        out = open(self.log_path, "ab")
        try:
            self.proc = _Started(subprocess.Popen(self.command(args), stdout=out,
                                                  stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL), self.log_path)
        finally:
            out.close()
        return self

    def run(self, args=(), timeout=120):
        """Run to completion (e.g. `check` or `extensions --wait`); returns (rc, output)."""
        self._write_spec(args)
        res = subprocess.run(self.command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=timeout, text=True)
        return res.returncode, res.stdout

    def check_running(self):
        """Raise (with the log's tail) when the pod has exited; wait_for does not swallow it."""
        if self.proc and not self.proc.alive():
            raise PodExited(f"pod {self.name} exited with status {self.proc.popen.returncode}:\n"
                            f"{self.log()[-3000:]}")

    def pid1(self):
        """Host PID of the pod's PID 1 (the launcher's only child), or None."""
        if not self.proc or not self.proc.alive():
            return None
        kids = procs.children(self.proc.popen.pid)
        return kids[0] if kids else None

    def exec(self, args, env=None, timeout=60):
        """Like `kubectl exec POD -- ARGS`: root, in the pod's mount and PID namespaces, with
        the pod's environment (plus env); returns the CompletedProcess (text)."""
        p1 = self.pid1()
        if not p1:
            raise PodExited(f"pod {self.name} is not running")
        pod_env = dict(self.env, **(env or {}))
        env_args = [f"{k}={v}" for k, v in pod_env.items() if v is not None]
        return subprocess.run(["nsenter", "-t", str(p1.pid), "-m", "-p", "--", "env", "-i",
                               *env_args, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def stop(self, timeout=30):
        """SIGTERM to PID 1, wait; SIGKILL to PID 1 (the kernel then kills the namespace)."""
        if not self.proc:
            return None
        p1 = self.pid1()
        if p1:
            procs.signal_if_same(p1.pid, p1.start_ticks, signal.SIGTERM)
        try:
            rc = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p1 = self.pid1()
            if p1:
                procs.signal_if_same(p1.pid, p1.start_ticks, signal.SIGKILL)
            procs.stop_process(self.proc.popen.pid, self.proc.start_ticks, 5, signal.SIGKILL)
            rc = self.proc.popen.wait(timeout=10)
        self.proc = None
        return rc

    # --- observing the pod ---

    def patroni(self, path="/patroni", timeout=2):
        with urllib.request.urlopen(f"http://{self.ip}:{API_PORT}{path}", timeout=timeout) as r:
            return json.loads(r.read().decode())

    def api(self, method, path, body=None, auth=True, timeout=30):
        """A request to the pod's Patroni REST API; auth: basic auth with the pod's REST API
        credentials (the chart's default user, patroni). Returns (status, body text); HTTP
        errors are returned, not raised."""
        authorization = None
        if auth:
            user = self.env.get("RESTAPI_USERNAME") or "patroni"
            authorization = rest.basic_auth(user, self.passwords["restapi"])
        return rest.request(self.ip, API_PORT, method, path, body, authorization, timeout)

    def is_leader(self):
        try:
            st = self.patroni()
        except Exception:
            return False
        return st.get("role") in ("primary", "master") and st.get("state") == "running"

    def sql(self, query, dbname=None, timeout=5):
        """Run one query as the superuser over TCP (password auth); return all rows."""
        import psycopg2
        conn = psycopg2.connect(host=self.ip, port=PG_PORT, user="postgres",
                                password=self.passwords["superuser"],
                                dbname=dbname or self.database,
                                connect_timeout=timeout)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    @property
    def database(self):
        """The database citus-init creates extensions in (CITUS_DATABASE, default citus)."""
        return self.env.get("CITUS_DATABASE") or "citus"

    def extensions(self, dbname=None):
        return {name: ver for name, ver in
                self.sql("SELECT extname, extversion FROM pg_extension", dbname)}


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)
