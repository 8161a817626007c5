"""Metrics in the local cluster (docs/observability.md): the exporter container of every pod
and one Prometheus per cluster.

Each pod of a cluster with spec.metrics has what the chart gives it:
- citus-init's agent metrics on POD_IP:9188 (AGENT_METRICS_PORT): `/metrics` (job
  citus-init) and `/patroni/metrics`, the local Patroni's `/metrics` passed through (job
  patroni); MONITORING_ROLE makes the agent create the monitoring role on every group's
  primary;
- postgres_exporter (Debian's package) as a second container (pod-launcher's containers/):
  in the pod's mount namespace, so it reaches the pod's own socket directory, as OS user
  nobody (the agent's pg_ident maps it to the role), on POD_IP:9187, with the chart's
  queries file mounted read-only, stopped with the pod.

Prometheus (Debian's package) listens on <subnet>.250:9090, scrapes the three endpoints of
every pod every SCRAPE_INTERVAL with the target labels of "Scrape labels" (namespace: the
spec's, as the Prometheus Operator sets the pod's; cluster_name, citus_group, pod, job),
evaluates the chart's alerts.yaml, keeps its data in run/<cluster>/prometheus and is started
and stopped with the cluster by PID.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from . import paths, procs

ASSETS = paths.ROOT / "helm" / "citus-cluster" / "files" / "monitoring"
QUERIES = ASSETS / "queries.yaml"
ALERTS = ASSETS / "alerts.yaml"
EXPORTER = "prometheus-postgres-exporter"  # Debian's name of postgres_exporter
PROMETHEUS = "prometheus"
PACKAGES = "prometheus prometheus-postgres-exporter"  # scripts/lib/monitoring.sh installs them

EXPORTER_PORT = 9187
AGENT_PORT = 9188
PROMETHEUS_PORT = 9090
MONITORING_ROLE = "citus_monitor"
MONITORING_OS_USER = "nobody"  # citus-init's default MONITORING_OS_USER
EXPORTER_CONTAINER = "postgres-exporter"
POD_EXPORTER_QUERIES = "/etc/postgres-exporter/queries.yaml"
SCRAPE_INTERVAL = "2s"
EVALUATION_INTERVAL = "1s"

# job -> (port, path): the three endpoints of every pod
JOBS = {
    "patroni": (AGENT_PORT, "/patroni/metrics"),
    "postgres-exporter": (EXPORTER_PORT, "/metrics"),
    "citus-init": (AGENT_PORT, "/metrics"),
}


class MetricsError(Exception):
    """What is missing or wrong; the message says what and how to fix it."""


def missing_programs() -> list:
    return [p for p in (EXPORTER, PROMETHEUS) if shutil.which(p) is None]


def require_programs() -> None:
    missing = missing_programs()
    if missing:
        raise MetricsError(f"{' and '.join(missing)} not installed (Debian packages {PACKAGES}; "
                           "scripts/demo up installs them unless DEMO_METRICS=false)")


def pod_env() -> dict:
    """What the chart's StatefulSet adds to citus-init's environment with metrics on."""
    return {"AGENT_METRICS_PORT": str(AGENT_PORT), "MONITORING_ROLE": MONITORING_ROLE}


def exporter_container(pod_ip: str, database: str, log_path: Path) -> dict:
    """The chart's exporter container: pod-launcher's containers/<name> settings."""
    dsn = f"host=/var/run/postgresql user={MONITORING_ROLE} dbname={database} sslmode=disable"
    return {"user": MONITORING_OS_USER, "log": str(log_path),
            "env": {"PATH": "/usr/bin:/bin", "DATA_SOURCE_NAME": dsn},
            "args": [shutil.which(EXPORTER) or f"/usr/bin/{EXPORTER}",
                     f"--web.listen-address={pod_ip}:{EXPORTER_PORT}",
                     f"--extend.query-path={POD_EXPORTER_QUERIES}"]}


def container_file(container: dict) -> str:
    """pod-launcher's format of one container (one "KEY VALUE" per line)."""
    for word in [container["user"], container["log"], *container["args"],
                 *(f"{k}={v}" for k, v in container["env"].items())]:
        if "\n" in word:
            raise MetricsError(f"container setting {word!r} cannot be passed (a newline)")
    lines = [f"user {container['user']}", f"log {container['log']}"]
    lines += [f"env {k}={v}" for k, v in container["env"].items()]
    lines += [f"arg {a}" for a in container["args"]]
    return "\n".join(lines) + "\n"


def scrape_config(cluster_name: str, namespace: str, pods: list, alerts: Path = ALERTS) -> str:
    """Prometheus' configuration (JSON is YAML) for pods [(name, group, ip)] of a cluster in a
    namespace: per job one static target per pod, labelled as the chart's PodMonitor and the
    Prometheus Operator label them (the dashboard selects by namespace and cluster_name)."""
    jobs = []
    for job, (port, path) in JOBS.items():
        jobs.append({
            "job_name": job, "metrics_path": path, "scrape_timeout": SCRAPE_INTERVAL,
            "static_configs": [{"targets": [f"{ip}:{port}"],
                                "labels": {"namespace": namespace,
                                           "cluster_name": cluster_name,
                                           "citus_group": str(group), "pod": name}}
                               for name, group, ip in pods]})
    config = {"global": {"scrape_interval": SCRAPE_INTERVAL,
                         "evaluation_interval": EVALUATION_INTERVAL},
              "rule_files": [str(alerts)], "scrape_configs": jobs}
    return json.dumps(config, indent=1) + "\n"


class Prometheus:
    """One Prometheus for a cluster, like Etcd: started and stopped by PID (state.json)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.ip = f"{cluster.spec.subnet}.250"
        self.port = PROMETHEUS_PORT
        self.data_dir = cluster.dir / "prometheus"
        self.config_path = cluster.dir / "prometheus.yml"
        self.log_path = cluster.dir / "logs" / "prometheus.log"
        self.proc: Optional[tuple] = None
        self.popen: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and procs.same_process(*self.proc)

    def config_text(self) -> str:
        pods = [(p.name, p.group, p.ip) for p in self.cluster.pods.values()]
        return scrape_config(self.cluster.spec.name, self.cluster.spec.namespace, pods)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 60) -> None:
        """Write the configuration and start Prometheus (when it runs: reload it if the
        configuration changed); returns once it is ready."""
        from .cluster import BASE_PATH, ClusterError, atomic_write
        try:
            require_programs()
        except MetricsError as e:
            raise ClusterError(str(e)) from None
        text = self.config_text()
        changed = not self.config_path.exists() or self.config_path.read_text() != text
        atomic_write(self.config_path, text, 0o600)
        if self.running():
            if changed:
                self._post("/-/reload")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                self.popen = subprocess.Popen(
                    [shutil.which(PROMETHEUS), f"--config.file={self.config_path}",
                     f"--storage.tsdb.path={self.data_dir}",
                     f"--web.listen-address={self.ip}:{self.port}",
                     "--storage.tsdb.retention.time=7d", "--web.enable-lifecycle"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env={"PATH": BASE_PATH})
            started = procs.read_proc(self.popen.pid)
            self.proc = (self.popen.pid, started.start_ticks if started else 0)
            self.cluster.save_state()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running():
                raise ClusterError(f"Prometheus exited during start; see {self.log_path}")
            if time.monotonic() > deadline:
                raise ClusterError(f"Prometheus not ready after {timeout:.0f}s; see "
                                   f"{self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (Prometheus writes its head block out), SIGKILL after 30 s."""
        if self.proc:
            procs.stop_process(*self.proc, timeout=30)
        if self.popen:
            self.popen.wait()

    # -- the HTTP API ------------------------------------------------------------------------
    def _post(self, path: str) -> None:
        req = urllib.request.Request(f"{self.url}{path}", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def api(self, path: str, **params):
        """GET /api/v1/<path>; its data. Raises MetricsError when Prometheus says no."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise MetricsError(f"{url}: HTTP {e.code}: {e.read()[:300]!r}") from None
        if body.get("status") != "success":
            raise MetricsError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list:
        """An instant query's result: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self.api("query", query=expr)["result"]

    def alerts(self) -> list:
        """Pending and firing alerts: [{"labels": {...}, "state": ..., "activeAt": ...}]."""
        return self.api("alerts")["alerts"]

    def targets(self) -> list:
        return self.api("targets", state="active")["activeTargets"]
