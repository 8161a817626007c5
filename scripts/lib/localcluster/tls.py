"""Certificates for a local cluster.

The project's scripts/generate-ssl-certs.sh makes them, the same script users run for the
chart: its wildcard per headless domain covers every pod name, so verify-full holds. An
extra CA (for wrong-CA tests) and the S3 server's own CA and certificate (s3.py: one object
store serves several clusters, so it cannot use one cluster's CA) are made with openssl
directly.
"""
import os
import subprocess
from pathlib import Path

from . import paths

FILES = ("ca.crt", "server.crt", "server.key")


def _run(cmd, **kw):
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (exit {res.returncode}): {res.stdout.strip()}")
    return res.stdout


def generate(out: Path, cluster: str, namespace: str, worker_groups: int, sans: list,
             reuse_ca: bool = False) -> None:
    """ca.crt, server.crt, server.key for the cluster in out (created, 0700); the script
    covers every group's headless domain, sans are added. reuse_ca: signed by out's CA."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    script = paths.ROOT / "scripts" / "generate-ssl-certs.sh"
    if not script.exists():
        raise RuntimeError(f"{script} is missing: it makes the cluster's certificates")
    cmd = [str(script), "--cluster", cluster, "--namespace", namespace, "--out", str(out),
           "--groups", str(worker_groups), "--force"]
    for san in sans:
        cmd += ["--extra-san", san]
    if reuse_ca:
        cmd.append("--reuse-ca")
    _run(cmd)
    missing = [f for f in FILES if not (out / f).is_file()]
    if missing:
        raise RuntimeError(f"{script} did not write {', '.join(missing)} in {out}")


def generate_foreign_ca(out: Path) -> Path:
    """A CA that signed nothing of the cluster's: out/ca.crt (for wrong-CA tests)."""
    out.mkdir(parents=True, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", "/CN=foreign test CA", "-keyout", str(out / "ca.key"),
          "-out", str(out / "ca.crt")])
    os.chmod(out / "ca.key", 0o600)
    return out / "ca.crt"



def generate_server(out: Path, common_name: str, dns_names: list, days: int = 3650) -> None:
    """A CA of its own and a server certificate it signed, in out: ca.crt, ca.key,
    server.crt, server.key (keys 0600). dns_names become the subjectAltNames."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
          "-subj", f"/CN={common_name} CA", "-keyout", str(out / "ca.key"),
          "-out", str(out / "ca.crt")])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
          "-keyout", str(out / "server.key"), "-out", str(out / "server.csr")])
    ext = out / "server.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName="
                   + ",".join(f"DNS:{n}" for n in dns_names) + "\n")
    _run(["openssl", "x509", "-req", "-in", str(out / "server.csr"), "-CA", str(out / "ca.crt"),
          "-CAkey", str(out / "ca.key"), "-CAcreateserial", "-days", str(days),
          "-extfile", str(ext), "-out", str(out / "server.crt")])
    for f in ("ca.key", "server.key"):
        os.chmod(out / f, 0o600)
    for f in ("server.csr", "server.ext", "ca.srl"):
        (out / f).unlink(missing_ok=True)
