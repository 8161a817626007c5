"""The local clusters' backup repository: a real S3 server (versitygw, POSIX backend) on a
loopback address with TLS (docs/backups.md, "Local cluster").

One S3Server per run directory serves every cluster under it (a restore reads the source's
backups from the same object store, also after the source is gone). Its state directory:

    <root>/ca/ca.crt          the CA of the server's certificate (BACKUP_S3_CA_FILE, mounted)
    <root>/tls/               ca.key, server.crt, server.key (0600, the server's only)
    <root>/root-access-key    root credentials, generated once and kept (0600)
    <root>/root-secret-key
    <root>/data/<bucket>/     the POSIX backend: every object is a file; a cluster's
                              repository is data/<bucket>/<cluster>/ (BACKUP_REPO_PATH)
    <root>/keys/<cluster>/    s3-key, s3-key-secret, cipher-pass: BACKUP_SECRET_DIR
                              of that cluster. The passphrase is generated once and kept:
                              without it the cluster's backups cannot be read.
    <root>/versitygw.log, state.json (PID + start time, and which clusters use the server)

Host-style addressing (the contract's default): the server answers for
<bucket>.<DOMAIN>; the pods resolve both names through their /etc/hosts. Started and stopped
by PID only; a failed start stops what it started.
"""
import fcntl
import json
import os
import secrets
import shutil
import ssl
import subprocess
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from . import procs, tls

DOMAIN = "s3.localcluster.internal"
BUCKET = "citus-backups"
PORT = 9000
REGION = "us-east-1"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEY_FILES = ("s3-key", "s3-key-secret", "cipher-pass")


class S3Error(Exception):
    """The S3 server could not be prepared or started; the message says why and where."""


def versitygw_binary() -> Path:
    """scripts/lib/common.sh ensure_versitygw builds it and exports VERSITYGW."""
    env = os.environ.get("VERSITYGW")
    if env:
        return Path(env)
    cache = Path(os.environ.get("PCK_CACHE") or Path(os.environ.get(
        "XDG_CACHE_HOME") or Path.home() / ".cache") / "patroni-citus-k8s")
    found = sorted((cache / "bin").glob("versitygw-v*"))
    if not found:
        raise S3Error(f"versitygw is not built (expected {cache}/bin/versitygw-<version>): "
                      "scripts/demo up builds it (common.sh ensure_versitygw)")
    return found[-1]


def _write_secret(path: Path, value: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class S3Server:
    def __init__(self, root: Path, ip: str, port: int = PORT, bucket: str = BUCKET):
        self.root = Path(root)
        self.ip, self.port, self.bucket = ip, port, bucket
        self.ca_dir = self.root / "ca"
        self.tls_dir = self.root / "tls"
        self.data_dir = self.root / "data"
        self.keys_root = self.root / "keys"
        self.log_path = self.root / "versitygw.log"
        self.state_file = self.root / "state.json"
        self.popen: Optional[subprocess.Popen] = None

    # -- what clients need ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """BACKUP_S3_ENDPOINT: host:port, no scheme."""
        return f"{DOMAIN}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / "ca.crt"

    def hosts_lines(self) -> list:
        """/etc/hosts lines that make the endpoint and the bucket's virtual host resolve."""
        return [f"{self.ip} {DOMAIN} {self.bucket}.{DOMAIN}"]

    def keys_dir(self, cluster: str) -> Path:
        return self.keys_root / cluster

    def repo_dir(self, cluster: str) -> Path:
        """Where the POSIX backend keeps the objects of the cluster's repository."""
        return self.data_dir / self.bucket / cluster

    def access_key(self) -> str:
        return (self.root / "root-access-key").read_text()

    def secret_key(self) -> str:
        return (self.root / "root-secret-key").read_text()

    # -- files ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """State directory, credentials and certificates (existing ones are kept)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # the pods (postgres) reach ca/ through their bind mount
        if not (self.root / "root-access-key").exists():
            _write_secret(self.root / "root-access-key", "PCK" + secrets.token_hex(8).upper())
        if not (self.root / "root-secret-key").exists():
            _write_secret(self.root / "root-secret-key", secrets.token_urlsafe(30))
        if not all((self.tls_dir / f).is_file() for f in ("server.crt", "server.key")) or \
                not self.ca_file.is_file():
            tls.generate_server(self.tls_dir, DOMAIN, [DOMAIN, f"*.{DOMAIN}"])
            self.ca_dir.mkdir(exist_ok=True)
            shutil.copyfile(self.tls_dir / "ca.crt", self.ca_file)
        os.chmod(self.ca_dir, 0o755)
        os.chmod(self.ca_file, 0o644)
        self.data_dir.mkdir(exist_ok=True)
        os.chmod(self.data_dir, 0o700)

    def prepare_keys(self, cluster: str) -> bool:
        """The cluster's BACKUP_SECRET_DIR (keys_dir): the S3 credentials and its repository
        passphrase, generated once. True when the passphrase was made now."""
        d = self.keys_dir(cluster)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keys_root, 0o700)
        os.chmod(d, 0o700)
        for name, value in (("s3-key", self.access_key()), ("s3-key-secret", self.secret_key())):
            path = d / name
            if not path.exists() or path.read_text() != value:
                _write_secret(path, value)
        if (d / "cipher-pass").exists():
            return False
        _write_secret(d / "cipher-pass", secrets.token_urlsafe(36))
        return True

    def forget(self, cluster: str) -> None:
        """Delete the cluster's backups and their passphrase (scripts/demo down --purge)."""
        shutil.rmtree(self.repo_dir(cluster), ignore_errors=True)
        shutil.rmtree(self.keys_dir(cluster), ignore_errors=True)

    # -- state ----------------------------------------------------------------------------
    @contextmanager
    def _locked_state(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.state_file.read_text())
            except (FileNotFoundError, ValueError):
                state = {}
            yield state
            tmp = self.state_file.with_name(f".state.json.tmp{os.getpid()}")
            tmp.write_text(json.dumps(state, indent=1) + "\n")
            os.replace(tmp, self.state_file)

    def _proc(self, state: dict) -> Optional[tuple]:
        p = state.get("proc")
        return tuple(p) if p and procs.same_process(*p) else None

    def running(self) -> bool:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return False
        return self._proc(state) is not None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, user: Optional[str] = None, timeout: float = 30) -> None:
        """Start the server unless it runs, create the bucket, record user (a cluster name)
        as one of its users. On any failure everything this call started is stopped."""
        self.prepare()
        with self._locked_state() as state:
            if user:
                state["users"] = sorted(set(state.get("users", [])) | {user})
            if self._proc(state) is None:
                state["proc"] = self._launch()
                try:
                    self._await_healthy(timeout)
                    self.create_bucket()
                except Exception:
                    procs.stop_process(*state["proc"], timeout=10)
                    state["proc"] = None
                    if self.popen is not None:
                        self.popen.wait(timeout=10)
                        self.popen = None
                    if user:
                        state["users"] = [u for u in state["users"] if u != user]
                    raise
            else:
                self._await_healthy(timeout)

    def _launch(self) -> tuple:
        binary = versitygw_binary()
        if not os.access(binary, os.X_OK):
            raise S3Error(f"{binary} is not executable")
        env = {"PATH": BASE_PATH, "ROOT_ACCESS_KEY_ID": self.access_key(),
               "ROOT_SECRET_ACCESS_KEY": self.secret_key()}  # env, not argv: ps shows argv
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [str(binary), "--port", f"{self.ip}:{self.port}",
                 "--cert", str(self.tls_dir / "server.crt"), "--key", str(self.tls_dir / "server.key"),
                 "--virtual-domain", DOMAIN, "--region", REGION, "--health", "/health",
                 "--quiet", "posix", str(self.data_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env)
        started = procs.read_proc(self.popen.pid)
        return (self.popen.pid, started.start_ticks if started else 0)

    def healthy(self) -> bool:
        """GET /health answers 200 over TLS verified against our CA for the server's name."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with socket.create_connection((self.ip, self.port), timeout=2) as raw, \
                    ctx.wrap_socket(raw, server_hostname=DOMAIN) as conn:
                conn.sendall(f"GET /health HTTP/1.1\r\nHost: {DOMAIN}\r\n"
                             "Connection: close\r\n\r\n".encode())
                return conn.recv(64).split(b" ")[1:2] == [b"200"]
        except (OSError, ssl.SSLError, IndexError):
            return False

    def _await_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.popen is not None and self.popen.poll() is not None:
                raise S3Error(f"versitygw exited during start (status {self.popen.returncode}):"
                              f" {self.log_tail()}")
            if time.monotonic() > deadline:
                raise S3Error(f"versitygw not healthy on https://{self.ip}:{self.port} after "
                              f"{timeout:.0f}s; see {self.log_path}: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def curl(self, method: str, url_path: str, bucket_host: bool = True,
             access_key: Optional[str] = None, secret_key: Optional[str] = None,
             timeout: float = 10) -> tuple:
        """One request signed with AWS SigV4 by curl (Debian's curl has --aws-sigv4); the
        credentials go through curl's stdin config, never its command line.
        Returns (HTTP status, body)."""
        host = f"{self.bucket}.{DOMAIN}" if bucket_host else DOMAIN
        config = (f'user = "{access_key or self.access_key()}:{secret_key or self.secret_key()}"\n')
        cmd = ["curl", "-sS", "-K", "-", "--max-time", str(timeout), "--cacert", str(self.ca_file),
               "--resolve", f"{host}:{self.port}:{self.ip}", "--aws-sigv4",
               f"aws:amz:{REGION}:s3", "-H", f"x-amz-content-sha256: {EMPTY_SHA256}",
               "-X", method, "-o", "-", "-w", "\n%{http_code}",
               f"https://{host}:{self.port}{url_path}"]
        res = subprocess.run(cmd, input=config, capture_output=True, text=True,
                             timeout=timeout + 5)
        if res.returncode != 0:
            raise S3Error(f"curl {method} https://{host}:{self.port}{url_path} failed "
                          f"(exit {res.returncode}): {res.stderr.strip()}")
        body, _, code = res.stdout.rpartition("\n")
        return int(code), body

    def create_bucket(self) -> None:
        """PUT bucket (idempotent: the bucket may exist from an earlier start)."""
        status, body = self.curl("PUT", "/")
        if status == 409 and ("BucketAlreadyOwnedByYou" in body or "BucketAlreadyExists" in body):
            return
        if status != 200:
            raise S3Error(f"creating bucket {self.bucket} failed: HTTP {status} {body[:300]}")
        status, body = self.curl("GET", "/?max-keys=1")
        if status != 200:
            raise S3Error(f"listing bucket {self.bucket} failed: HTTP {status} {body[:300]}")

    def list_keys(self, prefix: str) -> list:
        """Object keys under prefix (up to 1000; enough for tests)."""
        import re
        from urllib.parse import quote
        status, body = self.curl("GET", f"/?list-type=2&max-keys=1000&prefix={quote(prefix, safe='')}")
        if status != 200:
            raise S3Error(f"listing {prefix} failed: HTTP {status} {body[:300]}")
        return re.findall(r"<Key>([^<]*)</Key>", body)

    def kill(self) -> None:
        """Stop the server process now, users or not (the outage tests); start() again
        brings it back with the same data."""
        with self._locked_state() as state:
            proc = self._proc(state)
            if proc:
                procs.stop_process(*proc, timeout=10)
            state["proc"] = None
        if self.popen is not None:
            self.popen.wait(timeout=10)
            self.popen = None

    def release(self, user: str) -> None:
        """user no longer needs the server; the last user's release stops it."""
        with self._locked_state() as state:
            state["users"] = [u for u in state.get("users", []) if u != user]
            proc = self._proc(state)
            if proc and not state["users"]:
                procs.stop_process(*proc, timeout=10)
                state["proc"] = None
        if self.popen is not None and not self.running():
            self.popen.wait(timeout=10)
            self.popen = None

    def users(self) -> list:
        try:
            return json.loads(self.state_file.read_text()).get("users", [])
        except (FileNotFoundError, ValueError):
            return []
