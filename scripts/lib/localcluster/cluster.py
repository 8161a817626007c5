"""A Citus/Patroni cluster of simulated pods on loopback addresses.

One Cluster = one etcd plus one Pod per member. A Pod is what the chart's StatefulSet would
run: citus-init as PID 1 (own PID and mount namespace), the chart's environment
(docs/citus-init.md) and its volumes bind-mounted at the chart's paths:

    /home/postgres/pgdata        data volume          run/<cluster>/pods/<pod>/pgdata
    /etc/patroni/secrets         secret volume (ro)   run/<cluster>/secrets
    /etc/ssl/certs/postgresql    TLS secret (ro)      run/<cluster>/certs
    /etc/citus-init/extensions   ConfigMap (ro)       run/<cluster>/config (file `extensions`)
    /run/citus-init              emptyDir             run/<cluster>/pods/<pod>/run
    /var/run/postgresql          private tmpfs        (socket directory of this pod only)
    /dev/shm                     private tmpfs        (the chart's memory emptyDir)
    /etc/hosts                   pod DNS names        run/<cluster>/hosts
    /etc/citus-init/backup       backup secret (ro)   run/s3/keys/<cluster> (s3.py)
    /etc/citus-init/s3-ca        the S3 server's CA   run/s3/ca
    /etc/citus-init/restore-source  the source's backup secret (ro), when restoring
    /etc/postgres-exporter/queries.yaml  the exporter's queries (ro), with metrics

Backups (docs/backups.md) go to one S3 server per run directory (s3.py: versitygw on
127.0.9.1 for scripts/demo), every cluster into its own repository path /<cluster> of one
bucket; spec.backup=False runs without (BACKUP_REPO=none). spec.restore_from/restore_target
make a cluster that bootstraps every group from the source's stanzas.

Metrics (spec.metrics, metrics.py): every pod also gets the agent's metrics port and the
monitoring role (AGENT_METRICS_PORT, MONITORING_ROLE) and postgres_exporter as a second
container (pod-launcher's containers/, in the pod's mount namespace, as nobody); the cluster
gets a Prometheus on <subnet>.250:9090 scraping them, with the chart's alerting rules.

Addresses: member i of group g is <subnet>.<10*g + i + 1>, etcd listens on <subnet>.254.
Every pod has a DNS name <pod>.<cluster>-<g>-hl.<namespace>.svc.cluster.local, resolved
through the bind-mounted /etc/hosts inside the pods; clients on the host use the same name
with libpq's hostaddr, so verify-full checks exactly what it checks in Kubernetes.

Everything started is recorded in run/<cluster>/state.json (PID and start time, so a reused
PID is never signalled) and stopped by PID.
"""
import dataclasses
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import metrics, paths, procs, readiness, s3, tls

SUPERUSER_KEY = "superuser-password"
REPLICATION_KEY = "replication-password"
RESTAPI_KEY = "restapi-password"
DEFAULT_EXTENSIONS = "postgis\npostgis_topology\npg_partman:partman\n"
PRIMARY_ROLES = ("primary", "master")  # Patroni 4.x says primary, 3.x master
PG_PORT = 5432
API_PORT = 8008
ETCD_PORT = 2379
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The chart's paths inside a pod.
POD_DATA = "/home/postgres/pgdata"
POD_SECRETS = "/etc/patroni/secrets"
POD_CERTS = "/etc/ssl/certs/postgresql"
POD_EXTENSIONS = "/etc/citus-init/extensions"
POD_RUN = "/run/citus-init"
POD_SOCKETS = "/var/run/postgresql"
POD_BACKUP_SECRETS = "/etc/citus-init/backup"
POD_RESTORE_SECRETS = "/etc/citus-init/restore-source"
POD_S3_CA = "/etc/citus-init/s3-ca"
S3_IP = "127.0.9.1"  # the S3 server of scripts/demo's run directory


class ClusterError(Exception):
    """A problem the user can act on; the message says what and where."""


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file in the same directory, fsync, rename: never half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def rewrite_in_place(path: Path, text: str, mode: int = 0o644) -> None:
    """Write the file's own inode (running pods bind-mounted it: a rename would leave them the
    old one). Callers keep the old text a prefix of the new one where they can, so a reader
    never sees a line that is neither."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        data = text.encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def share_with_postgres(directory: Path) -> None:
    """What the chart's secret volumes look like (defaultMode 0440, group fsGroup): root-owned,
    readable by the postgres group, so citus-init's commands that run as postgres (Patroni's
    restore-bootstrap) read them as in Kubernetes."""
    import grp
    gid = grp.getgrnam("postgres").gr_gid
    os.chown(directory, 0, gid)
    os.chmod(directory, 0o750)
    for f in directory.iterdir():
        if f.is_file():
            os.chown(f, 0, gid)
            os.chmod(f, 0o440)


def _pgpass_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class ClusterSpec:
    name: str = "citusdemo"
    groups: dict = field(default_factory=lambda: {0: 3, 1: 2, 2: 2})  # group -> members
    subnet: str = "127.0.10"
    namespace: str = "default"
    ssl: bool = True
    ssl_mode: str = "verify-full"
    citus: Optional[bool] = None            # None: DEMO_CITUS, by default auto
    extensions: str = DEFAULT_EXTENSIONS    # content of the EXTENSIONS_FILE
    env: dict = field(default_factory=dict)  # extra variables for every pod
    command: Optional[list] = None          # default: [build/citus-init]
    run_root: Path = paths.RUN
    backup: bool = True                     # archive and back up to the S3 server (s3.py)
    s3_ip: str = S3_IP                      # the S3 server of run_root listens here
    s3_uri_style: str = "host"              # BACKUP_S3_URI_STYLE
    restore_from: Optional[str] = None      # RESTORE_FROM_CLUSTER (a cluster of run_root)
    restore_target: Optional[str] = None    # RESTORE_TARGET
    metrics: bool = False                   # exporters, agent metrics, Prometheus (metrics.py)

    def citus_enabled(self) -> bool:
        """citus None: DEMO_CITUS decides (auto, the default: when Citus is installed)."""
        try:
            return paths.citus_mode(self.citus)[0]
        except paths.CitusModeError as e:
            raise ClusterError(str(e)) from None


class Pod:
    """One simulated pod. env and volumes may be changed before start() (bad-input tests)."""

    def __init__(self, cluster: "Cluster", group: int, index: int):
        self.cluster = cluster
        self.group = group
        self.index = index
        spec = cluster.spec
        self.name = f"{spec.name}-{group}-{index}"
        self.ip = f"{spec.subnet}.{10 * group + index + 1}"
        self.dns_domain = f"{spec.name}-{group}-hl.{spec.namespace}.svc.cluster.local"
        self.dns_name = f"{self.name}.{self.dns_domain}"
        self.dir = cluster.dir / "pods" / self.name
        self.data_dir = self.dir / "pgdata"
        self.run_dir = self.dir / "run"
        self.log_path = cluster.dir / "logs" / f"{self.name}.log"
        self.command = list(spec.command or [str(paths.citus_init_binary())])
        self.env = self._chart_env()
        self.volumes = self._chart_volumes()
        self.containers = self._chart_containers()  # name -> metrics.exporter_container()
        self.popen: Optional[subprocess.Popen] = None
        self.launcher: Optional[tuple] = None  # (pid, start_ticks) of the launcher process
        self.pid1: Optional[tuple] = None      # (pid, start_ticks) of the pod's PID 1
        self.log_offset = 0                    # log size when the current run started

    # -- what the chart gives the pod --------------------------------------------------------
    def _chart_env(self) -> dict:
        """The environment helm/citus-cluster's StatefulSet gives the container (with the
        chart's defaults), etcd3 instead of the Kubernetes API, and the pod's own address."""
        spec = self.cluster.spec
        env = {
            "PATH": f"{paths.VENV}/bin:{BASE_PATH}",
            "LANG": "C.UTF-8",
            "POD_NAME": self.name,
            "POD_NAMESPACE": spec.namespace,
            "POD_IP": self.ip,
            "CITUS_GROUP": str(self.group),
            "POD_DNS_DOMAIN": self.dns_domain,
            "DCS_TYPE": "etcd3",
            "ETCD_HOSTS": self.cluster.etcd_host,
            "DCS_TTL": "20",
            "DCS_LOOP_WAIT": "10",
            "DCS_RETRY_TIMEOUT": "5",
            "SYNCHRONOUS_MODE": "auto",
            "FAILSAFE_MODE": "true",
            "PGDATA": f"{POD_DATA}/pgroot/data",
            "RUN_DIR": POD_RUN,
            "PATRONICTL_CONFIG_FILE": f"{POD_RUN}/patroni.yml",
            "REPLICATION_USERNAME": "replicator",
            "REPLICATION_PASSWORD_KEY": REPLICATION_KEY,
            "RESTAPI_AUTH": "true",
            "RESTAPI_USERNAME": "patroni",
            "RESTAPI_PASSWORD_KEY": RESTAPI_KEY,
            "TERMINATION_GRACE_PERIOD": "30",
            "SHUTDOWN_DEADLINE": "25",
            "CLUSTER_NAME": spec.name,
            "CITUS_ENABLED": "true" if spec.citus_enabled() else "false",
            "CITUS_DATABASE": "citus",
            "SECRETS_DIR": POD_SECRETS,
            "SUPERUSER_USERNAME": "postgres",
            "SUPERUSER_PASSWORD_KEY": SUPERUSER_KEY,
            "SSL_ENABLED": "true" if spec.ssl else "false",
            "SSL_MODE": spec.ssl_mode,
            "SSL_CLIENT_CERT": "false",
            "EXTENSIONS_MAX_ATTEMPTS": "60",
            "EXTENSIONS_RETRY_DELAY": "5",
            "LISTEN_ADDRESS": self.ip,  # not in the chart: pods share this machine's network
        }
        if spec.ssl:
            env.update(SSL_CERT_DIR=POD_CERTS, PGSSLMODE=spec.ssl_mode,
                       PGSSLROOTCERT=f"{POD_CERTS}/ca.crt")
        else:
            env["PGSSLMODE"] = "prefer"
        if self.owns_extensions():
            env["EXTENSIONS_FILE"] = f"{POD_EXTENSIONS}/extensions"
        env.update(self._backup_env())
        if spec.metrics:
            env.update(metrics.pod_env())
        env.update(spec.env)
        return env

    def _chart_containers(self) -> dict:
        """The pod's other containers: the exporter when metrics are on."""
        if not self.cluster.spec.metrics:
            return {}
        log = self.cluster.dir / "logs" / f"{self.name}-{metrics.EXPORTER_CONTAINER}.log"
        return {metrics.EXPORTER_CONTAINER: metrics.exporter_container(
            self.ip, self.cluster.database, log)}

    def _backup_env(self) -> dict:
        """docs/backups.md: the cluster's own repository /<cluster> in the run directory's
        bucket; with restore_from, the source's repository and secrets."""
        spec, server = self.cluster.spec, self.cluster.s3
        if server is None:
            return {"BACKUP_REPO": "none"}
        env = {"BACKUP_REPO": "s3", "BACKUP_REPO_PATH": f"/{spec.name}",
               "BACKUP_S3_ENDPOINT": server.endpoint, "BACKUP_S3_BUCKET": server.bucket,
               "BACKUP_S3_REGION": s3.REGION, "BACKUP_S3_URI_STYLE": spec.s3_uri_style,
               "BACKUP_S3_CA_FILE": f"{POD_S3_CA}/ca.crt",
               "BACKUP_SECRET_DIR": POD_BACKUP_SECRETS}
        if spec.restore_from:
            env.update(RESTORE_FROM_CLUSTER=spec.restore_from,
                       RESTORE_TARGET=spec.restore_target or "latest",
                       RESTORE_REPO_PATH=f"/{spec.restore_from}",
                       RESTORE_SECRET_DIR=POD_RESTORE_SECRETS)
        return env

    def owns_extensions(self) -> bool:
        """The chart mounts the extension list on the coordinator; without Citus every
        group's leader creates the extensions, so every pod gets it."""
        return self.group == 0 or not self.cluster.spec.citus_enabled()

    def _chart_volumes(self) -> dict:
        """pod path -> (kind, host source, options)."""
        c = self.cluster
        return {
            POD_DATA: ("bind", str(self.data_dir), ""),
            POD_SECRETS: ("bind", str(c.secrets_dir), "ro"),
            POD_CERTS: ("bind", str(c.certs_dir), "ro"),
            POD_RUN: ("bind", str(self.run_dir), ""),
            POD_SOCKETS: ("tmpfs", "-", "mode=2775,uid=postgres,gid=postgres,size=16m"),
            "/dev/shm": ("tmpfs", "-", "mode=1777,size=256m"),
            "/etc/hosts": ("bind", str(c.hosts_file), "ro"),
        } | ({POD_EXTENSIONS: ("bind", str(c.config_dir), "ro")} if self.owns_extensions()
             else {}) | c.backup_volumes() | (
            {metrics.POD_EXPORTER_QUERIES: ("bind", str(metrics.QUERIES), "ro")}
            if c.spec.metrics else {})

    # -- lifecycle ---------------------------------------------------------------------------
    def running(self) -> bool:
        return self.launcher is not None and procs.same_process(*self.launcher)

    def start(self) -> None:
        """Start the pod (a no-op when it runs). Like a new pod: RUN_DIR starts empty."""
        if self.launch():
            self.await_pid1()

    def launch(self) -> bool:
        """Start the pod's launcher without waiting for its PID 1 (await_pid1 does); False when
        the pod already runs."""
        if self.running():
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir()
        for key, value in self.env.items():
            if "\n" in key or "\n" in value or "=" in key:
                raise ClusterError(f"{self.name}: environment entry {key!r} cannot be passed")
        atomic_write(self.dir / "env", "".join(f"{k}={v}\n" for k, v in self.env.items()))
        atomic_write(self.dir / "mounts", "".join(
            f"{kind} {src} {dst} {opts}\n" for dst, (kind, src, opts) in self.volumes.items()))
        containers_dir = self.dir / "containers"
        shutil.rmtree(containers_dir, ignore_errors=True)
        if self.containers:
            containers_dir.mkdir()
            for name, container in self.containers.items():
                try:
                    text = metrics.container_file(container)
                except metrics.MetricsError as e:
                    raise ClusterError(f"{self.name}: container {name}: {e}") from None
                atomic_write(containers_dir / name, text, 0o600)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--",
                 str(paths.LAUNCHER), str(self.dir), *self.command],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={"PATH": BASE_PATH})
        started = procs.read_proc(self.popen.pid)
        self.launcher = (self.popen.pid, started.start_ticks if started else 0)
        self.pid1 = None
        self.cluster.save_state()
        return True

    def await_pid1(self) -> None:
        self.find_pid1(timeout=10)
        self.cluster.save_state()

    def find_pid1(self, timeout: float = 0) -> Optional[int]:
        """Host PID of the pod's PID 1: the launcher's descendant that is PID 1 of its own
        PID namespace (its child, or its grandchild when the pod has other containers)."""
        if self.pid1 and procs.same_process(*self.pid1):
            return self.pid1[0]
        deadline = time.monotonic() + timeout
        while True:
            if not (self.launcher and procs.same_process(*self.launcher)):
                return None  # the pod has already ended (or never started)
            for p in procs.descendants(self.launcher[0]):
                ns_pids = procs.namespace_pids(p.pid)
                if len(ns_pids) > 1 and ns_pids[-1] == 1:
                    self.pid1 = (p.pid, p.start_ticks)
                    return p.pid
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def signal(self, sig: int) -> bool:
        """Send sig to the pod's PID 1. False when it is not running."""
        pid = self.find_pid1()
        return pid is not None and procs.signal_if_same(*self.pid1, sig)

    def kill(self) -> None:
        """SIGKILL to PID 1: the kernel then kills everything in the pod's PID namespace."""
        self.signal(signal.SIGKILL)
        self.wait(timeout=30)

    def wait(self, timeout: float) -> Optional[int]:
        """Wait for the pod to end; its exit status shell-style (128+N when killed by
        signal N), or None when it is still running or was not started by this process."""
        if self.popen is not None:
            try:
                rc = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return 128 - rc if rc < 0 else rc
        if self.launcher:
            procs.wait_gone(*self.launcher, timeout)
        return None

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """Like the kubelet: SIGTERM to PID 1, SIGKILL when the grace period is over."""
        if timeout is None:
            timeout = float(self.env.get("TERMINATION_GRACE_PERIOD", 30)) + 5
        if not self.running():
            return self.wait(0) if self.popen else None
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if self.running():
            self.signal(signal.SIGKILL)
            rc = self.wait(10)
        return rc

    def processes(self) -> list:
        """Every process in the pod (PID 1 and its descendants)."""
        pid = self.find_pid1()
        if pid is None:
            return []
        me = procs.read_proc(pid)
        return ([me] if me else []) + procs.descendants(pid)

    def exec(self, args: list, timeout: float = 60) -> subprocess.CompletedProcess:
        """Like `kubectl exec POD -- ARGS`: root, inside the pod's mount and PID namespaces,
        with the container's environment (not citus-init's runtime one)."""
        pid = self.find_pid1()
        if pid is None:
            raise ClusterError(f"{self.name} is not running")
        env_args = [f"{k}={v}" for k, v in self.env.items()]
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "--", "env", "-i",
                               *env_args, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def pid_namespace(self) -> Optional[str]:
        pid = self.find_pid1()
        try:
            return os.readlink(f"/proc/{pid}/ns/pid") if pid else None
        except OSError:
            return None

    def log_text(self, whole: bool = False) -> str:
        """The pod's log (what `kubectl logs` shows): since the current run's start, or all."""
        try:
            with open(self.log_path, "rb") as f:
                if not whole:
                    f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- talking to the pod ------------------------------------------------------------------
    def api(self, path: str = "/patroni", timeout: float = 2.0) -> tuple:
        """(HTTP status, parsed JSON or None) from the pod's Patroni REST API."""
        return self.cluster.api_get(self, path, timeout)

    def patroni_state(self) -> dict:
        try:
            _, body = self.api("/patroni")
            return body if isinstance(body, dict) else {}
        except OSError:
            return {}

    def is_primary(self) -> bool:
        st = self.patroni_state()
        return st.get("role") in PRIMARY_ROLES and st.get("state") == "running"

    def connect(self, dbname: Optional[str] = None, **kw):
        return self.cluster.connect(self, dbname=dbname, **kw)


class Etcd:
    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster
        self.ip = f"{cluster.spec.subnet}.254"
        self.data_dir = cluster.dir / "etcd"
        self.log_path = cluster.dir / "logs" / "etcd.log"
        self.proc: Optional[tuple] = None
        self.popen: Optional[subprocess.Popen] = None

    @property
    def client_url(self) -> str:
        return f"http://{self.ip}:{ETCD_PORT}"

    def running(self) -> bool:
        return self.proc is not None and procs.same_process(*self.proc)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 30) -> None:
        if not self.running():
            if shutil.which("etcd") is None:
                raise ClusterError("etcd is not installed (apt package etcd-server)")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            peer = f"http://{self.ip}:{ETCD_PORT + 1}"
            name = self.cluster.spec.name
            with open(self.log_path, "ab") as log:
                self.popen = subprocess.Popen(
                    ["etcd", "--name", name, "--data-dir", str(self.data_dir),
                     "--listen-client-urls", self.client_url,
                     "--advertise-client-urls", self.client_url,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", f"{name}={peer}"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env={"PATH": BASE_PATH})
            started = procs.read_proc(self.popen.pid)
            self.proc = (self.popen.pid, started.start_ticks if started else 0)
            self.cluster.save_state()
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.running():
                raise ClusterError(f"etcd exited during start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise ClusterError(f"etcd not healthy after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc:
            procs.stop_process(*self.proc, timeout=10)
        if self.popen:
            self.popen.wait()


class Cluster:
    def __init__(self, spec: ClusterSpec):
        # its own copy: `workers N` changes the groups of this cluster, not of the caller's spec
        self.spec = dataclasses.replace(spec, groups=dict(spec.groups))
        self.dir = Path(spec.run_root) / spec.name
        self.secrets_dir = self.dir / "secrets"
        self.certs_dir = self.dir / "certs"
        self.config_dir = self.dir / "config"
        self.hosts_file = self.dir / "hosts"
        self.pgpass_file = self.dir / "pgpass"
        self.state_file = self.dir / "state.json"
        self.etcd = Etcd(self)
        # started only with spec.metrics; stopped whenever state.json records it running
        self.prometheus = metrics.Prometheus(self)
        # one S3 server per run directory, shared by its clusters (a restore reads the source's)
        self.s3 = (s3.S3Server(Path(spec.run_root) / "s3", spec.s3_ip) if spec.backup else None)
        self.new_cipher_pass = False  # prepare() generated this cluster's passphrase just now
        self.pods = {}
        self._make_pods()
        # the scheme tried first: citus-init serves the REST API over https by default when TLS
        # is on; api_get falls back to the other one (RESTAPI_TLS=false, the bench's anchor)
        self._api_scheme = "https" if spec.ssl and spec.command is None else "http"
        self.load_state()

    def _make_pods(self) -> None:
        """A Pod for every member of spec.groups (the ones there are kept)."""
        pods = {}
        for group, count in sorted(self.spec.groups.items()):
            for index in range(count):
                name = f"{self.spec.name}-{group}-{index}"
                pods[name] = self.pods.get(name) or Pod(self, group, index)
        self.pods = pods

    @property
    def etcd_host(self) -> str:
        return f"{self.spec.subnet}.254:{ETCD_PORT}"

    def group(self, group: int) -> list:
        return [p for p in self.pods.values() if p.group == group]

    @property
    def groups(self) -> list:
        return sorted(self.spec.groups)

    # -- state -------------------------------------------------------------------------------
    def save_state(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"etcd": self.etcd.proc,
                 "groups": {str(g): n for g, n in sorted(self.spec.groups.items())},
                 "prometheus": self.prometheus.proc,
                 "pods": {n: {"launcher": p.launcher, "pid1": p.pid1, "log_offset": p.log_offset}
                          for n, p in self.pods.items() if p.launcher}}
        atomic_write(self.state_file, json.dumps(state, indent=1) + "\n", 0o600)

    def load_state(self) -> None:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        if state.get("etcd"):
            self.etcd.proc = tuple(state["etcd"])
        if state.get("prometheus"):
            self.prometheus.proc = tuple(state["prometheus"])
        groups = {int(g): n for g, n in state.get("groups", {}).items()}
        if groups and groups != self.spec.groups:  # `workers N` changed the shape
            self.spec.groups = groups
            self._make_pods()
        for name, st in state.get("pods", {}).items():
            pod = self.pods.get(name)
            if pod is None:
                continue
            pod.launcher = tuple(st["launcher"]) if st.get("launcher") else None
            pod.pid1 = tuple(st["pid1"]) if st.get("pid1") else None
            pod.log_offset = st.get("log_offset", 0)

    # -- backups -----------------------------------------------------------------------------
    def backup_volumes(self) -> dict:
        """The backup secret (and a restore's source secret) and the S3 server's CA."""
        if self.s3 is None:
            return {}
        vols = {POD_BACKUP_SECRETS: ("bind", str(self.s3.keys_dir(self.spec.name)), "ro"),
                POD_S3_CA: ("bind", str(self.s3.ca_dir), "ro")}
        if self.spec.restore_from:
            vols[POD_RESTORE_SECRETS] = ("bind", str(self.s3.keys_dir(self.spec.restore_from)),
                                         "ro")
        return vols

    def backup_secrets(self) -> list:
        """The S3 secret key and the repository passphrase (never to be found in a log)."""
        if self.s3 is None:
            return []
        d = self.s3.keys_dir(self.spec.name)
        return [(d / f).read_text() for f in ("s3-key-secret", "cipher-pass") if (d / f).exists()]

    # -- files the pods get ------------------------------------------------------------------
    def prepare(self) -> None:
        """Secrets, certificates, extension list and hosts file (existing ones are kept)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.secrets_dir.mkdir(exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        for key in (SUPERUSER_KEY, REPLICATION_KEY, RESTAPI_KEY):
            if not (self.secrets_dir / key).exists():
                atomic_write(self.secrets_dir / key, secrets.token_urlsafe(24), 0o600)
        share_with_postgres(self.secrets_dir)
        atomic_write(self.pgpass_file,
                     f"*:*:*:postgres:{_pgpass_escape(self.superuser_password())}\n", 0o600)
        if not all((self.certs_dir / f).is_file() for f in tls.FILES):
            self.make_certs(self.certs_dir)
        self.config_dir.mkdir(exist_ok=True)
        atomic_write(self.config_dir / "extensions", self.spec.extensions)
        if self.s3 is not None:
            self.s3.prepare()
            self.new_cipher_pass = self.s3.prepare_keys(self.spec.name)
            share_with_postgres(self.s3.keys_dir(self.spec.name))
            if self.spec.restore_from and not self.s3.keys_dir(self.spec.restore_from).is_dir():
                raise ClusterError(f"no backup secrets of {self.spec.restore_from!r} in "
                                   f"{self.s3.keys_dir(self.spec.restore_from)}: nothing to "
                                   "restore from")
        self.write_hosts()

    def write_hosts(self) -> None:
        """The pods' /etc/hosts (the cluster DNS): the pods last, by group, so adding or
        removing the highest groups changes only the file's end; written in place because
        running pods have it bind-mounted."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        if self.s3 is not None:
            lines += self.s3.hosts_lines()
        lines += [f"{p.ip} {p.dns_name} {p.name}" for p in self.pods.values()]
        rewrite_in_place(self.hosts_file, "\n".join(lines) + "\n")

    def make_certs(self, out: Path, reuse_ca: bool = False) -> None:
        """The cluster's certificates in out, as the chart's TLS secret holds them: ca.crt,
        server.crt, server.key, root-owned 0644 (citus-init copies the key for postgres).
        reuse_ca: a new server certificate for today's groups signed by the cluster's CA (a
        new worker group's names), each file replaced by a rename."""
        work = self.dir / "certs-work"
        tls.generate(work, self.spec.name, self.spec.namespace, max(self.groups), [],
                     reuse_ca=reuse_ca)
        out.mkdir(parents=True, exist_ok=True)
        for f in tls.FILES:
            tmp = out / f".{f}.tmp"
            shutil.copyfile(work / f, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / f)
        atomic_write(self.dir / "certs-groups", f"{max(self.groups)}\n", 0o600)

    def certs_cover(self) -> int:
        """The highest group the certificates name (what make_certs was last asked)."""
        try:
            return int((self.dir / "certs-groups").read_text())
        except (FileNotFoundError, ValueError):
            return 2  # older clusters: the default shape's

    def secret(self, key: str) -> str:
        return (self.secrets_dir / key).read_text().rstrip("\n")

    def superuser_password(self) -> str:
        return self.secret(SUPERUSER_KEY)

    def passwords(self) -> list:
        return [self.secret(SUPERUSER_KEY), self.secret(REPLICATION_KEY), self.secret(RESTAPI_KEY)]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Prepare files, start etcd and every pod that is not running (idempotent)."""
        self.prepare()
        if self.s3 is not None:
            try:
                self.s3.start(user=self.spec.name)
            except s3.S3Error as e:
                raise ClusterError(f"the S3 server (backups): {e}") from None
        self.etcd.start()
        if self.spec.metrics:
            self.prometheus.start()  # before the pods: it sees them come up
        # all at once, like a StatefulSet with podManagementPolicy Parallel (the chart's)
        launched = [pod for pod in self.pods.values() if pod.launch()]
        for pod in launched:
            pod.await_pid1()

    def stop(self, purge: bool = False) -> None:
        """SIGTERM to every pod's PID 1 at once, wait, then etcd, then this cluster's use of
        the S3 server (the last cluster stops it); purge removes the data and the cluster's
        backups with their passphrase."""
        running = [p for p in self.pods.values() if p.running()]
        for pod in running:
            pod.signal(signal.SIGTERM)
        for pod in self.pods.values():
            pod.stop()
        self.etcd.stop()
        self.prometheus.stop()
        if self.dir.exists():
            self.save_state()
        if self.s3 is not None:
            self.s3.release(self.spec.name)
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.s3 is not None:
                self.s3.forget(self.spec.name)

    def remove_data(self) -> None:
        """Delete the cluster's directory (data, secrets, certificates, etcd) but keep its
        backups and their passphrase: what a restore under the same name starts from."""
        if any(p.running() for p in self.pods.values()) or self.etcd.running():
            raise ClusterError(f"{self.spec.name} still runs: stop it first")
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- worker groups (scripts/demo workers N) -----------------------------------------------
    def add_worker_groups(self, groups: list, members: int) -> None:
        """Start the pods of new worker groups, as the chart's new StatefulSets would: their
        names in the cluster DNS (/etc/hosts) and, when the certificates do not name them yet,
        a new server certificate from the cluster's CA."""
        for g in groups:
            self.spec.groups[g] = members
        self._make_pods()
        if max(self.groups) > self.certs_cover():
            self.make_certs(self.certs_dir, reuse_ca=True)
        self.prepare()
        launched = [p for p in self.pods.values() if p.group in groups and p.launch()]
        for pod in launched:
            pod.await_pid1()
        if self.spec.metrics:
            self.prometheus.start()  # the new pods' targets (a reload)
        self.save_state()

    def delete_worker_group(self, group: int) -> None:
        """Stop the group's pods (SIGTERM, by PID), delete their data and the group's keys in
        the DCS (what deleting the StatefulSet, its volumes and its Endpoints does); the logs
        stay."""
        pods = self.group(group)
        for pod in pods:
            pod.signal(signal.SIGTERM)
        for pod in pods:
            pod.stop()
        for pod in pods:
            shutil.rmtree(pod.dir, ignore_errors=True)
        scope = (f"{self.spec.name}/{group}" if self.spec.citus_enabled()
                 else f"{self.spec.name}-{group}")
        readiness.etcd_delete_prefix(self.etcd.client_url, f"{readiness.DCS_NAMESPACE}/{scope}/")
        del self.spec.groups[group]
        self._make_pods()
        self.write_hosts()
        if self.spec.metrics and self.prometheus.running():
            self.prometheus.start()  # without the deleted pods' targets (a reload)
        self.save_state()

    def run_tool(self, args: list, group: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        """Like `kubectl run` of a one-off pod with a member's environment and secrets (a
        scratch data volume, an empty RUN_DIR): citus-init ARGS as its PID 1, whether or not
        the cluster runs."""
        self.prepare()
        template = self.group(group)[0]
        tool_dir = self.dir / "tools" / f"{template.name}-{os.getpid()}-{time.monotonic_ns()}"
        (tool_dir / "run").mkdir(parents=True)
        (tool_dir / "pgdata").mkdir()
        try:
            volumes = dict(template.volumes)
            volumes[POD_DATA] = ("bind", str(tool_dir / "pgdata"), "")
            volumes[POD_RUN] = ("bind", str(tool_dir / "run"), "")
            atomic_write(tool_dir / "env", "".join(f"{k}={v}\n" for k, v in template.env.items()))
            atomic_write(tool_dir / "mounts", "".join(
                f"{kind} {src} {dst} {opts}\n" for dst, (kind, src, opts) in volumes.items()))
            cmd = ["unshare", "--mount", "--propagation", "private", "--", str(paths.LAUNCHER),
                   str(tool_dir), template.command[0], *args]
            with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True,
                                  env={"PATH": BASE_PATH}) as proc:
                try:
                    out, errs = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    for child in procs.children(proc.pid):  # its PID 1: the namespace goes
                        procs.signal_if_same(child.pid, child.start_ticks, signal.SIGKILL)
                    proc.kill()
                    out, errs = proc.communicate()
                    raise ClusterError(f"citus-init {' '.join(args)} did not finish in "
                                       f"{timeout:.0f}s: {errs.strip()[-500:]}") from None
            return subprocess.CompletedProcess(cmd, proc.returncode, out, errs)
        finally:
            shutil.rmtree(tool_dir, ignore_errors=True)

    def citus_init(self, args: list, group: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        """citus-init ARGS like `kubectl exec` in a running member of the group (its RUN_DIR is
        prepared), else in a one-off pod (run_tool)."""
        for pod in self.group(group):
            if pod.running() and pod.find_pid1() is not None:
                return pod.exec([pod.command[0], *args], timeout=timeout)
        return self.run_tool(args, group, timeout)

    # -- observing ---------------------------------------------------------------------------
    def api_get(self, pod: Pod, path: str, timeout: float) -> tuple:
        """GET from a pod's REST API over http, or https (verified against the cluster CA)
        when the API serves TLS. Raises OSError when nothing answers."""
        return self.api_request(pod, "GET", path, timeout)

    def api_request(self, pod: Pod, method: str, path: str, timeout: float,
                    body: Optional[dict] = None) -> tuple:
        """(HTTP status, parsed JSON or the text or None) of a request to the pod's REST API,
        with the cluster's REST API credentials (Patroni asks for them on POST and the
        other unsafe methods). Raises OSError when nothing answers."""
        import base64
        creds = base64.b64encode(f"patroni:{self.secret(RESTAPI_KEY)}".encode()).decode()
        headers = {"Authorization": f"Basic {creds}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        schemes = [self._api_scheme] + [s for s in ("http", "https") if s != self._api_scheme]
        last = None
        for scheme in schemes:
            if scheme == "https":
                ctx = ssl.create_default_context(cafile=str(self.certs_dir / "ca.crt"))
                ctx.check_hostname = False  # reached by IP here; the CA is still verified
                conn = http.client.HTTPSConnection(pod.ip, API_PORT, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(pod.ip, API_PORT, timeout=timeout)
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self._api_scheme = scheme
                try:
                    return resp.status, json.loads(data) if data else None
                except ValueError:
                    return resp.status, data.decode("utf-8", "replace")
            except (http.client.HTTPException, ssl.SSLError, ConnectionResetError) as e:
                last = OSError(f"{pod.name} REST API: {e}")
            except OSError as e:
                last = e
                if isinstance(e, (ConnectionRefusedError, TimeoutError)):
                    break  # nothing listens: the other scheme will not help
            finally:
                conn.close()
        raise last

    def conninfo(self, pod: Pod, dbname: Optional[str] = None, user: str = "postgres",
                 password: Optional[str] = None, sslmode: Optional[str] = None,
                 sslrootcert: Optional[str] = None, connect_timeout: int = 3) -> dict:
        info = {"host": pod.dns_name, "hostaddr": pod.ip, "port": PG_PORT, "user": user,
                "dbname": dbname or self.database,
                "password": self.superuser_password() if password is None else password,
                "connect_timeout": connect_timeout, "application_name": "localcluster"}
        if self.spec.ssl:
            info["sslmode"] = sslmode or self.spec.ssl_mode
            info["sslrootcert"] = sslrootcert or str(self.certs_dir / "ca.crt")
        else:
            info["sslmode"] = sslmode or "prefer"
        return info

    def primary_conninfo(self, group: int, **kw) -> dict:
        """Connection parameters that reach the group's writable primary, whichever member it
        is (libpq tries each member, target_session_attrs=read-write): what a client of the
        chart's primary Service gets, without asking Patroni."""
        members = self.group(group)
        info = self.conninfo(members[0], **kw)
        info.update(host=",".join(p.dns_name for p in members),
                    hostaddr=",".join(p.ip for p in members), target_session_attrs="read-write")
        return info

    def connect_primary(self, group: int, dbname: Optional[str] = None, autocommit: bool = True,
                        **kw):
        return self._open(self.primary_conninfo(group, dbname=dbname, **kw), autocommit)

    def connect(self, pod: Pod, dbname: Optional[str] = None, autocommit: bool = True, **kw):
        return self._open(self.conninfo(pod, dbname=dbname, **kw), autocommit)

    @staticmethod
    def _open(info: dict, autocommit: bool):
        import psycopg2  # the venv has it; only what talks SQL needs it
        conn = psycopg2.connect(**info)
        conn.autocommit = autocommit
        return conn

    @property
    def database(self) -> str:
        return self.spec.env.get("CITUS_DATABASE", "citus")

    def leader(self, group: int) -> Optional[Pod]:
        """The group's member that Patroni reports as running primary, if exactly one."""
        leaders = [p for p in self.group(group) if p.running() and p.is_primary()]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for(self, what: str, check, timeout: float, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = check()
            except Exception:  # noqa: BLE001 - anything a half-started cluster throws
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.spec.name}: timed out after {timeout:.0f}s waiting "
                                   f"for {what}")
            time.sleep(interval)

    def writable_leader(self, group: int) -> Optional[Pod]:
        """The group's leader once it accepts writes (promotion finished)."""
        pod = self.leader(group)
        if pod is None:
            return None
        with pod.connect(dbname="postgres") as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            return None if cur.fetchone()[0] else pod

    def extensions_present(self, pod: Pod) -> bool:
        with pod.connect() as conn, conn.cursor() as cur:
            return self.extensions_in(cur)

    def extensions_in(self, cur) -> bool:
        """Every wanted extension exists in the database of this cursor."""
        cur.execute("SELECT extname FROM pg_extension")
        return self.wanted_extensions() <= {r[0] for r in cur.fetchall()}

    def wanted_extensions(self) -> set:
        names = set()
        for line in self.spec.extensions.splitlines():
            for entry in line.split("#", 1)[0].replace(",", " ").split():
                names.add(entry.split(":", 1)[0])
        return names

    def extension_owners(self) -> list:
        """Groups whose leader creates the extensions: the coordinator with Citus, else all."""
        return [0] if self.spec.citus_enabled() else self.groups

    # -- ready for clients (readiness.py) ---------------------------------------------------
    def dcs_groups(self) -> dict:
        """{group: {"leader": member name or None, "members": {name: data}}}: what Patroni
        keeps in etcd, i.e. what `patronictl list` shows (one request)."""
        keys = readiness.etcd_prefix(self.etcd.client_url, readiness.DCS_NAMESPACE + "/")
        return readiness.dcs_groups(keys, self.spec.name, self.spec.citus_enabled())

    def ready_problem(self) -> Optional[str]:
        """None when the cluster is ready for clients (see readiness.py), else what is not."""
        import psycopg2
        try:
            view = self.dcs_groups()
        except (OSError, ValueError) as e:
            return f"cannot read the DCS at {self.etcd.client_url}: {e}"
        leaders = {}
        for g in self.groups:
            problem = readiness.leader_problem(g, view.get(g))
            if problem:
                return problem
            leaders[g] = self.pods.get(view[g]["leader"])
            if leaders[g] is None:
                return f"group {g}: leader {view[g]['leader']!r} is no member of {self.spec.name}"
        citus = self.spec.citus_enabled()
        try:
            for g in self.groups:
                owner = g in self.extension_owners()
                with leaders[g].connect(dbname=None if owner else "postgres",
                                        connect_timeout=2) as conn, conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if cur.fetchone()[0]:
                        return f"group {g}: leader {leaders[g].name} is still in recovery"
                    if owner and not self.extensions_in(cur):
                        return (f"group {g}: extensions {sorted(self.wanted_extensions())} not "
                                f"all created on {leaders[g].name} yet")
            if citus:
                expected = {g: readiness.registered_host(view[g]) for g in self.groups}
                with leaders[0].connect(connect_timeout=2) as conn, conn.cursor() as cur:
                    return (readiness.registration_problem(cur, expected)
                            or (readiness.distributed_ddl_problem(cur, self.groups[1:])
                                if len(self.groups) > 1 else None))
        except psycopg2.Error as e:
            return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        return None

    def wait_ready(self, timeout: float = 300, interval: float = 0.25) -> None:
        """Until ready_problem() is None; the error names what was still missing."""
        deadline = time.monotonic() + timeout
        while True:
            problem = self.ready_problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.spec.name}: not ready after {timeout:.0f}s: {problem}")
            time.sleep(interval)

    def streaming_replicas(self, pod: Pod) -> set:
        with pod.connect(dbname="postgres") as conn, conn.cursor() as cur:
            cur.execute("SELECT application_name FROM pg_stat_replication "
                        "WHERE state = 'streaming'")
            return {r[0] for r in cur.fetchall()}

    def streaming_problem(self, group: int) -> Optional[str]:
        """None when the group has a writable leader and every other member streams from it
        (pg_stat_replication) and is reported running/streaming by Patroni (not still
        starting); else what is missing."""
        leader = self.writable_leader(group)
        if leader is None:
            return "no writable leader"
        streaming = self.streaming_replicas(leader)
        others = [p for p in self.group(group) if p is not leader]
        behind = [p.name for p in others if p.name not in streaming]
        if behind:
            return f"replicas not streaming from {leader.name}: {', '.join(behind)}"
        starting = [p.name for p in others
                    if p.patroni_state().get("state") not in ("running", "streaming")]
        if starting:
            return f"replicas not running in Patroni: {', '.join(starting)}"
        return None

    def all_streaming(self) -> bool:
        """Every group: streaming_problem() is None."""
        return all(self.streaming_problem(g) is None for g in self.groups)

    def wait_streaming(self, timeout: float = 120) -> None:
        self.wait_for("every replica streaming", self.all_streaming, timeout)

    def status_rows(self) -> list:
        rows = []
        for pod in self.pods.values():
            st = pod.patroni_state() if pod.running() else {}
            rows.append({"member": pod.name, "group": pod.group,
                         "role": st.get("role", "-"),
                         "state": st.get("state", "unreachable" if pod.running() else "stopped"),
                         "timeline": st.get("timeline") or "-",
                         "address": f"{pod.dns_name} ({pod.ip})"})
        return rows
