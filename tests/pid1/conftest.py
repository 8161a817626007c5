"""citus-init as a real PID 1: `unshare --pid --fork --mount-proc` around the binary.

Every process started here is tracked and killed by PID at teardown (unshare runs with
--kill-child, so killing it takes the whole namespace with it). Nothing here touches the
network. Directories live below a 0755 temp dir so the postgres user can traverse them.
"""
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("CITUS_INIT_BIN", str(ROOT / "build" / "citus-init"))
POSTGRES = pwd.getpwnam("postgres")


def no_core_dumps():
    # Children killed by SIGQUIT must not leave core files behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def wait_for(predicate, timeout=20.0, what="condition"):
    """Poll until predicate() is true; a generous bound that only guards against hangs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Pid1:
    """One citus-init run as PID 1 of a new PID namespace."""

    def __init__(self, args, env=None, user=None, wrapper=(), timeout=60):
        """wrapper: a command put between unshare and citus-init, e.g. setpriv."""
        self.timeout = timeout
        kwargs = {}
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *wrapper, BIN, *args],
            env=env if env is not None else base_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=no_core_dumps, start_new_session=True, **kwargs)
        self.stdout = self.stderr = None

    def init_pid(self):
        """Host PID of citus-init (the namespace's PID 1): unshare's only child."""
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"

        def child():
            try:
                text = Path(path).read_text().split()
            except OSError:
                return None
            return int(text[0]) if text else None
        return wait_for(child, what="citus-init to start")

    def signal(self, sig):
        os.kill(self.init_pid(), sig)

    def wait(self):
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.stdout, self.stderr = self.proc.communicate()
            raise
        return self.proc.returncode

    def kill(self):
        """SIGKILL the namespace's PID 1 (the kernel then ends everything in the namespace:
        --kill-child cannot reach citus-init once it dropped privileges), then unshare."""
        if self.proc.poll() is not None:
            return
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            text = []
        for pid in (int(t) for t in text):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def base_env(**extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def pid1():
    """Start citus-init as PID 1: pid1(args, env=..., user=...) -> Pid1. Killed at teardown."""
    started = []

    def start(args, **kwargs):
        p = Pid1(args, **kwargs)
        started.append(p)
        return p
    yield start
    for p in started:
        p.kill()
        if p.proc.poll() is None:
            p.proc.wait(timeout=10)


@pytest.fixture
def workdir():
    """A 0755 directory under /tmp (pytest's tmp_path is not traversable by postgres)."""
    d = Path(tempfile.mkdtemp(prefix="pid1-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


SUPERUSER_PASSWORD = 'S3cr"et:pw'
REPLICATION_PASSWORD = "r3pl-Secret"
RESTAPI_PASSWORD = "ap1-Secret"


@pytest.fixture
def pod(workdir):
    """A minimal valid pod environment (etcd3 DCS, nothing listens) and its directories."""
    secrets = workdir / "secrets"
    secrets.mkdir()
    (secrets / "superuser-password").write_text(SUPERUSER_PASSWORD + "\n")
    (secrets / "replication-password").write_text(REPLICATION_PASSWORD)
    (secrets / "restapi-password").write_text(RESTAPI_PASSWORD + "\n")
    for f in secrets.iterdir():
        f.chmod(0o644)
    secrets.chmod(0o755)
    env = base_env(
        POD_NAME="pid1test-0-0", POD_IP="127.0.77.1", CLUSTER_NAME="pid1test", CITUS_GROUP="0",
        ETCD_HOSTS="127.0.77.2:2379", PGDATA=workdir / "pgroot" / "data",
        RUN_DIR=workdir / "run", SECRETS_DIR=secrets, PG_BIN_DIR="/usr/lib/postgresql/15/bin",
        LISTEN_ADDRESS="127.0.77.1")
    return {"env": env, "dir": workdir, "pgdata": workdir / "pgroot" / "data",
            "run_dir": workdir / "run"}
