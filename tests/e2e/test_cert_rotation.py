"""Certificate rotation without a restart: a new server certificate in the mounted TLS secret
reaches PostgreSQL and Patroni's REST API on every member (seen by a client: the serial each
serves), no process of any pod restarts, and a writer over TLS (verify-full) never fails
meanwhile. A set that does not pass the checks is refused and the members keep serving the
current certificate."""
import os
import re
import shutil
import ssl
import subprocess
import threading
import time

import pytest
from cryptography import x509

from conftest import execute, new_cluster
from localcluster import paths

SECONDS = 60


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2ecert", "127.0.27", {0: 2})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    execute(c.writable_leader(0), "CREATE TABLE IF NOT EXISTS rotation_writes (id serial "
                                  "PRIMARY KEY, at timestamptz DEFAULT now())")
    return c


def serial_of_pem(pem: str) -> int:
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def postgres_serial(pod) -> int:
    """The serial of the certificate PostgreSQL presents to a new client (STARTTLS)."""
    r = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                        f"{pod.ip}:5432", "-servername", pod.dns_name],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    begin = r.stdout.find("-----BEGIN CERTIFICATE-----")
    end = r.stdout.find("-----END CERTIFICATE-----")
    if begin < 0 or end < 0:
        raise AssertionError(f"no certificate from {pod.name}: {r.stderr[-500:]}")
    return serial_of_pem(r.stdout[begin:end + len("-----END CERTIFICATE-----")])


def restapi_serial(pod) -> int:
    return serial_of_pem(ssl.get_server_certificate((pod.ip, 8008), timeout=10))


def processes(cluster):
    """(pid, start) of every process that must not restart: each pod's PID 1, Patroni and the
    postmaster (the agent may come and go)."""
    found = set()
    for pod in cluster.group(0):
        for p in pod.processes():
            if p.comm in ("citus-init", "postgres", "patroni") or "patroni" in p.comm:
                if p.comm == "postgres" and p.ppid != pod.find_pid1():
                    continue  # backends come and go; the postmaster is PID 1's child
                found.add((p.pid, p.start_ticks))
    return found


def new_server_cert(cluster, out_dir):
    """A new server certificate and key signed by the cluster's CA (the project's
    scripts/generate-ssl-certs.sh --reuse-ca on the cluster's own working copy)."""
    work = cluster.dir / "certs-work"
    subprocess.run([str(paths.ROOT / "scripts" / "generate-ssl-certs.sh"),
                    "--cluster", cluster.spec.name, "--namespace", cluster.spec.namespace,
                    "--out", str(work), "--groups", "0", "--reuse-ca", "--force"],
                   check=True, capture_output=True, text=True)
    out_dir.mkdir(exist_ok=True)
    for f in ("server.crt", "server.key"):
        shutil.copyfile(work / f, out_dir / f)
    return serial_of_pem((out_dir / "server.crt").read_text())


def install(cluster, src_dir, names):
    """Replace files of the mounted secret the way a writer would: each one atomically."""
    for f in names:
        tmp = cluster.certs_dir / f".{f}.new"
        shutil.copyfile(src_dir / f, tmp)
        os.chmod(tmp, 0o644)
        os.rename(tmp, cluster.certs_dir / f)


class Writer(threading.Thread):
    """Commits one row at a time through a new TLS connection each time (verify-full), so
    every commit needs a handshake with whatever certificate the leader serves."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.ok, self.errors = cluster, 0, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                conn = self.cluster.connect_primary(0)
                try:
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO rotation_writes DEFAULT VALUES")
                    self.ok += 1
                finally:
                    conn.close()
            except Exception as e:  # noqa: BLE001 (every failure counts)
                self.errors.append(repr(e))
            time.sleep(0.05)


def test_new_server_certificate_without_restart(cluster, tmp_path):
    old = {p.name: postgres_serial(p) for p in cluster.group(0)}
    assert len(set(old.values())) == 1
    before = processes(cluster)
    writer = Writer(cluster)
    writer.start()
    try:
        time.sleep(1)
        new = new_server_cert(cluster, tmp_path / "new")
        assert new not in old.values()
        install(cluster, tmp_path / "new", ["server.key", "server.crt"])
        for pod in cluster.group(0):
            cluster.wait_for(f"{pod.name}'s PostgreSQL serving the new certificate",
                             lambda: postgres_serial(pod) == new, SECONDS)
            cluster.wait_for(f"{pod.name}'s REST API serving the new certificate",
                             lambda: restapi_serial(pod) == new, SECONDS)
        time.sleep(1)
    finally:
        writer.halt.set()
        writer.join(timeout=30)
    assert writer.ok > 0 and not writer.errors, writer.errors[:5]
    assert processes(cluster) == before, "a process restarted during the rotation"
    for pod in cluster.group(0):
        log = pod.log_text()
        assert 'msg="certificates replaced; Patroni reloads PostgreSQL and the REST API"' in log
        # the agent logs the serial's DER bytes in hex: a leading zero nibble is kept
        assert re.search(rf"serial=0*{new:X}\b", log), f"serial {new:X} not in the log"
    cluster.wait_streaming(60)
    print(f"rotation: {writer.ok} commits over TLS, 0 failed")


def test_a_mismatched_set_is_refused(cluster, tmp_path):
    current = postgres_serial(cluster.group(0)[0])
    mismatched = tmp_path / "mismatched"
    new_server_cert(cluster, mismatched)
    # the new certificate without its key: the pair no longer matches
    saved = (cluster.certs_dir / "server.crt").read_bytes()
    install(cluster, mismatched, ["server.crt"])
    try:
        for pod in cluster.group(0):
            cluster.wait_for(f"{pod.name} refusing the mismatched set",
                             lambda: 'msg="new certificates refused; the current ones stay"'
                             in pod.log_text(), SECONDS)
            assert postgres_serial(pod) == current
            assert restapi_serial(pod) == current
    finally:
        keep = tmp_path / "keep"
        keep.mkdir()
        (keep / "server.crt").write_bytes(saved)
        install(cluster, keep, ["server.crt"])
