"""docs/SSL_SETUP.md quotes citus-init's certificate errors: make each mistake the page
describes, run `citus-init check`, and require that the line it prints is the one the page
quotes (so neither can drift)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-ssl-certs.sh"
DOC = ROOT / "docs" / "SSL_SETUP.md"
EX_CONFIG = 78


def doc_text():
    return re.sub(r"\s+", " ", DOC.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Certificate sets made by the script: the chart's defaults, another run (other CA),
    another cluster name, and a short-lived one."""
    base = tmp_path_factory.mktemp("ssl-doc")
    made = {}
    for name, args in {"good": [], "other": [], "foreign": ["--cluster", "shop"],
                       "short": ["--days", "10"]}.items():
        subprocess.run([str(SCRIPT), "--out", str(base / name), *args], check=True,
                       capture_output=True)
        made[name] = base / name
    return base, made


def cert_dir(base, name, **files):
    """A directory with ca.crt/server.crt/server.key taken from the given sources."""
    d = base / name
    d.mkdir()
    for f, src in files.items():
        dst = d / f.replace("_", ".")
        if isinstance(src, Path):
            shutil.copy(src, dst)
        else:
            dst.write_text(src)
    return d


def check(citus_init, ssl_dir, mode="verify-ca"):
    env = {
        "PATH": "/usr/bin:/bin", "POD_NAME": "citusdemo-1-0", "POD_IP": "127.0.66.2",
        "CLUSTER_NAME": "citusdemo", "CITUS_GROUP": "1", "ETCD_HOSTS": "127.0.66.3:2379",
        "POD_DNS_DOMAIN": "citusdemo-1-hl.default.svc.cluster.local",
        "SECRETS_DIR": "/nonexistent", "SUPERUSER_PASSWORD": "not-logged-1",
        "REPLICATION_PASSWORD": "not-logged-2", "RESTAPI_PASSWORD": "not-logged-3",
        "SSL_ENABLED": "true", "SSL_MODE": mode,
        "SSL_CERT_DIR": str(ssl_dir), "PGDATA": str(ssl_dir / "pgdata"),
    }
    r = subprocess.run([str(citus_init), "check"], env=env, capture_output=True, text=True)
    assert "not-logged" not in r.stderr + r.stdout
    assert not (ssl_dir / "pgdata").exists(), "check must change nothing"
    return r


def assert_quoted(r, *fragments, rc=EX_CONFIG):
    assert r.returncode == rc, r.stderr
    doc = doc_text()
    for f in fragments:
        assert f in r.stderr, f"citus-init no longer prints {f!r}:\n{r.stderr}"
        assert f in doc, f"docs/SSL_SETUP.md does not quote {f!r}"
    if rc == EX_CONFIG:
        assert 'msg="configuration invalid" problems=' in r.stderr


def test_good_certificates_pass(citus_init, runs):
    base, made = runs
    r = check(citus_init, made["good"], mode="verify-full")
    assert r.returncode == 0, r.stderr
    assert "level=error" not in r.stderr and "level=warn" not in r.stderr, r.stderr


def test_missing_files(citus_init, runs):
    base, _ = runs
    r = check(citus_init, cert_dir(base, "empty"))
    assert_quoted(r, "does not exist; expected the CA certificate (PEM) because SSL_ENABLED is true")


def test_unparsable_files(citus_init, runs):
    base, made = runs
    d = cert_dir(base, "garbage", ca_crt=made["good"] / "ca.crt", server_crt="not a certificate\n",
                 server_key="not a key\n")
    assert_quoted(check(citus_init, d),
                  "cannot be parsed as PEM certificate; expected the server certificate in PEM format",
                  "cannot be parsed as a PEM private key (or it is encrypted); expected the "
                  "unencrypted server key in PEM format")


def test_key_from_another_run(citus_init, runs):
    base, made = runs
    d = cert_dir(base, "wrongkey", ca_crt=made["good"] / "ca.crt",
                 server_crt=made["good"] / "server.crt", server_key=made["other"] / "server.key")
    assert_quoted(check(citus_init, d), "does not match the certificate in",
                  "; expected the private key of that certificate")


def test_ca_from_another_run(citus_init, runs):
    base, made = runs
    d = cert_dir(base, "wrongca", ca_crt=made["good"] / "ca.crt",
                 server_crt=made["other"] / "server.crt", server_key=made["other"] / "server.key")
    assert_quoted(check(citus_init, d), "not signed by the CA in",
                  "(unable to get local issuer certificate); expected a certificate issued by "
                  "that CA")


def test_name_not_covered_with_verify_full(citus_init, runs):
    base, made = runs
    r = check(citus_init, made["foreign"], mode="verify-full")
    assert_quoted(r, "subjectAltName lacks DNS:citusdemo-1-0.citusdemo-1-hl.default.svc.cluster.local "
                     "(the certificate has DNS:",
                  "); expected a SAN covering the name this pod is reached at, because SSL_MODE "
                  "is verify-full")
    # verify-ca does not look at names
    assert check(citus_init, made["foreign"], mode="verify-ca").returncode == 0


def test_expiry_warning_does_not_stop_the_pod(citus_init, runs):
    _, made = runs
    r = check(citus_init, made["short"])
    assert_quoted(r, "level=warn", "server.crt: expires on", "days; expected a renewed "
                  "certificate before then", rc=0)


def resign(run, out, not_before, not_after):
    """server.crt of `run` re-issued by the same CA with other dates (the script only makes
    certificates valid from now on)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    ca_key = serialization.load_pem_private_key((run / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((run / "ca.crt").read_bytes())
    old = x509.load_pem_x509_certificate((run / "server.crt").read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(ca.subject)
               .public_key(old.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + not_before).not_valid_after(now + not_after))
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.mkdir()
    shutil.copy(run / "ca.crt", out / "ca.crt")
    shutil.copy(run / "server.key", out / "server.key")
    (out / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def test_expired_and_future_certificates(citus_init, runs):
    import datetime as dt

    base, made = runs
    day = dt.timedelta(days=1)
    expired = resign(made["good"], base / "expired", -10 * day, -day)
    assert_quoted(check(citus_init, expired), "server.crt: expired on",
                  "; expected a certificate valid now (")
    future = resign(made["good"], base / "future", day, 10 * day)
    assert_quoted(check(citus_init, future), "server.crt: not valid before",
                  "; expected a certificate valid now (")
