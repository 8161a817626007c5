"""A Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

    cp = ControlPlane(state_dir, apiserver_bin, controller_manager_bin)
    cp.start()          # certificates, etcd, API server (waits for /readyz), controllers
    api = cp.api()      # admin client (client certificate)
    cp.stop()           # every process by PID, newest first

Addresses: the API server listens on API_IP:API_PORT and advertises API_IP, so the
`kubernetes` Service's Endpoints, KUBERNETES_SERVICE_HOST and every certificate name a
loopback address. ClusterIPs come from SERVICE_CIDR and are only numbers in objects:
nothing here routes to them, and the kubelet stand-in never puts them into a pod.
"""
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

API_IP = "127.0.30.1"
API_PORT = 6443
ETCD_IP = "127.0.30.2"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_FIRST_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class KubeError(Exception):
    def __init__(self, status, body, what):
        self.status = status
        self.body = body
        try:
            self.reason = json.loads(body).get("message", body)
        except ValueError:
            self.reason = body
        super().__init__(f"{what}: HTTP {status}: {self.reason}")


def _openssl(*args, cwd):
    res = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {res.stdout}")


def make_certs(d: Path) -> None:
    """CA, API server serving cert, service-account key pair, client certs (admin,
    kube-controller-manager). Kept when present (one set per state directory)."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / "done").exists():
        return
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=pck-k8s-ca", cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    sans = ",".join([f"IP:{API_IP}", f"IP:{SERVICE_FIRST_IP}", "DNS:localhost", "DNS:kubernetes",
                     "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                     f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}"])
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        "admin": ("/O=system:masters/CN=pck-admin", "extendedKeyUsage=clientAuth"),
        "controller-manager": ("/CN=system:kube-controller-manager",
                               "extendedKeyUsage=clientAuth"),
    }
    for name, (subj, ext) in certs.items():
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=d)
    for f in d.glob("*.key"):
        os.chmod(f, 0o600)
    (d / "done").write_text("")


def kubeconfig(path: Path, certs: Path, user: str) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "pck", "cluster": {
            "server": f"https://{API_IP}:{API_PORT}",
            "certificate-authority": str(certs / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(certs / f"{user}.crt"),
            "client-key": str(certs / f"{user}.key")}}],
        "contexts": [{"name": "pck", "context": {"cluster": "pck", "user": user}}],
        "current-context": "pck"}, indent=1))
    os.chmod(path, 0o600)


class Api:
    """Minimal JSON client for the API server (enough for the harness and the tests)."""

    def __init__(self, ca, cert=None, key=None, token=None, server=None):
        self.server = server or f"https://{API_IP}:{API_PORT}"
        self.ctx = ssl.create_default_context(cafile=str(ca))
        if cert:
            self.ctx.load_cert_chain(str(cert), str(key))
        self.token = token

    def request(self, method, path, body=None, params=None, content_type=None, raw=False,
                timeout=30):
        url = self.server + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            raise KubeError(e.code, e.read().decode(errors="replace"), f"{method} {path}")
        if raw:
            return text
        return json.loads(text) if text else None

    def get(self, path, **params):
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def patch(self, path, body, kind="merge"):
        return self.request("PATCH", path, body,
                            content_type=f"application/{kind}-patch+json")

    def delete(self, path, body=None):
        try:
            return self.request("DELETE", path, body)
        except KubeError as e:
            if e.status == 404:
                return None
            raise


def _ready(api):
    try:
        return api.request("GET", "/readyz", raw=True, timeout=5).strip() == "ok"
    except (OSError, KubeError):
        return False


class _Proc:
    def __init__(self, name, cmd, log):
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          env={"PATH": BASE_PATH})

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=20):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def tail(self, n=30):
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


class ControlPlane:
    def __init__(self, state_dir, apiserver_bin, controller_manager_bin):
        self.dir = Path(state_dir)
        self.certs = self.dir / "pki"
        self.apiserver_bin = apiserver_bin
        self.cm_bin = controller_manager_bin
        self.procs = []
        self.admin_kubeconfig = self.dir / "admin.kubeconfig"

    def api(self):
        return Api(self.certs / "ca.crt", self.certs / "admin.crt", self.certs / "admin.key")

    def _start(self, name, cmd):
        p = _Proc(name, cmd, self.dir / f"{name}.log")
        self.procs.append(p)
        return p

    def _wait(self, proc, check, what, timeout):
        deadline = time.monotonic() + timeout
        while not check():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{proc.tail()}")
            time.sleep(0.5)

    def _apiserver_cmd(self, etcd_url):
        c = self.certs
        return [
            str(self.apiserver_bin),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={API_IP}", f"--advertise-address={API_IP}",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={c / 'apiserver.crt'}", f"--tls-private-key-file={c / 'apiserver.key'}",
            f"--client-ca-file={c / 'ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={c / 'sa.pub'}",
            f"--service-account-signing-key-file={c / 'sa.key'}",
            "--api-audiences=https://kubernetes.default.svc." + CLUSTER_DOMAIN,
            # The `kubernetes` Service's Endpoints would hold API_IP, and Endpoints refuse
            # loopback addresses: leave them out (the chart's default, bypassApiService=false,
            # never reads them; Patroni uses KUBERNETES_SERVICE_HOST).
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ]

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        make_certs(self.certs)
        kubeconfig(self.admin_kubeconfig, self.certs, "admin")
        kubeconfig(self.dir / "controller-manager.kubeconfig", self.certs, "controller-manager")
        etcd_url = f"http://{ETCD_IP}:2379"
        etcd = self._start("etcd", [
            "etcd", "--name", "pck-k8s", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://{ETCD_IP}:2380",
            "--initial-advertise-peer-urls", f"http://{ETCD_IP}:2380",
            "--initial-cluster", f"pck-k8s=http://{ETCD_IP}:2380",
            "--log-level", "warn", "--logger", "zap"])

        def etcd_ok():
            try:
                with urllib.request.urlopen(f"{etcd_url}/health", timeout=1) as r:
                    return json.load(r).get("health") == "true"
            except (OSError, ValueError):
                return False
        self._wait(etcd, etcd_ok, "etcd", 60)
        c = self.certs
        self.apiserver_cmd = self._apiserver_cmd(etcd_url)
        apiserver = self._start("kube-apiserver", self.apiserver_cmd)
        admin = self.api()
        self._wait(apiserver, lambda: _ready(admin), "kube-apiserver /readyz", 180)
        cm = self._start("kube-controller-manager", [
            str(self.cm_bin),
            f"--kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
            f"--bind-address={API_IP}", "--secure-port=10257",
            f"--cert-dir={self.dir / 'controller-manager-certs'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={c / 'sa.key'}",
            f"--root-ca-file={c / 'ca.crt'}",
            # No node heartbeats here: the stand-in kubelet's node must never be tainted and
            # its pods evicted. Nothing else in the default set is left out.
            "--controllers=*,-nodelifecycle,-cloud-node-lifecycle,-nodeipam,-route,"
            "-service-lb-controller",
            "--profiling=false",
            "--v=1"])
        self._wait(cm, lambda: admin.get_or_none(
            "/api/v1/namespaces/default/serviceaccounts/default") is not None,
            "kube-controller-manager (the default ServiceAccount)", 120)
        return self

    def stop_apiserver(self):
        """Stop the API server (SIGTERM, by its PID) and keep it down until
        start_apiserver(): a Kubernetes API outage for everything that uses it. Returns the
        PID it had."""
        p = next(p for p in self.procs if p.name == "kube-apiserver")
        pid = p.popen.pid
        p.stop()
        self.procs.remove(p)
        return pid

    def start_apiserver(self, timeout=180):
        """Start the API server again with the same command (same etcd, certificates,
        address) and wait for /readyz."""
        p = self._start("kube-apiserver", self.apiserver_cmd)
        admin = self.api()
        self._wait(p, lambda: _ready(admin), "kube-apiserver /readyz (restart)", timeout)
        return p.popen.pid

    def check_alive(self):
        dead = [p.name for p in self.procs if not p.alive()]
        if dead:
            raise RuntimeError(f"control plane process(es) exited: {dead}")

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []
