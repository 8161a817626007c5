"""scripts/generate-ssl-certs.sh: chain, SANs, file modes, overwrite protection, and a real
PostgreSQL 15 accepting sslmode=verify-full (and certificate authentication) with its output.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-ssl-certs.sh"
SERVER_ADDR = "127.0.66.1"  # this suite's own loopback address
POD_NAME = "citusdemo-1-0"
POD_FQDN = f"{POD_NAME}.citusdemo-1-hl.default.svc.cluster.local"


def gen(out, *args, check=True):
    r = subprocess.run([str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, f"generate-ssl-certs failed ({r.returncode}):\n{r.stderr}"
    return r


def sans(cert):
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    return {s.strip() for s in out.splitlines()[1].split(",")}


def verify(ca, cert):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs") / "out"
    r = gen(out, "--client", "app", "--extra-san", POD_NAME, "10.11.12.13")
    return out, r.stdout


def test_chain_verifies(certs):
    out, _ = certs
    for cert in ("server.crt", "client-app.crt"):
        r = verify(out / "ca.crt", out / cert)
        assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr


def test_sans_cover_every_chart_name(certs):
    out, _ = certs
    names = sans(out / "server.crt")
    for g in (0, 1, 2):
        svc, hl = f"citusdemo-{g}", f"citusdemo-{g}-hl"
        for n in (svc, f"{svc}.default", f"{svc}.default.svc", f"{svc}.default.svc.cluster.local",
                  f"*.{hl}.default.svc.cluster.local", f"*.{hl}.default.svc", f"*.{hl}.default"):
            assert f"DNS:{n}" in names, f"server.crt lacks DNS:{n}"
    for n in ("DNS:citusdemo-workers.default.svc.cluster.local",
              "DNS:*.citusdemo.default.svc.cluster.local", "DNS:localhost",
              "IP Address:127.0.0.1", f"DNS:{POD_NAME}", "IP Address:10.11.12.13"):
        assert n in names, f"server.crt lacks {n}"
    assert "DNS:citusdemo-3" not in names, "--groups defaults to 2 (groups 0..2)"
    # no invalid wildcard: exactly one '*' and only as the whole left-most label
    for n in names:
        if "*" in n:
            assert n.startswith("DNS:*.") and n.count("*") == 1, n


def test_output_lists_sans_and_prints_the_secret_command(certs):
    out, stdout = certs
    assert "DNS:*.citusdemo-0-hl.default.svc.cluster.local" in stdout
    assert f"kubectl create secret generic citusdemo-ssl-certs --namespace default" in stdout
    for f in ("ca.crt", "server.crt", "server.key"):
        assert f"--from-file={f}={out}/{f}" in stdout
    assert "ca.key" not in stdout.split("kubectl create secret")[1], "ca.key must not go into the secret"


def test_key_files_are_0600_and_no_temporary_left(certs):
    out, _ = certs
    keys = sorted(p.name for p in out.glob("*.key"))
    assert keys == ["ca.key", "client-app.key", "server.key"]
    for k in keys:
        assert (out / k).stat().st_mode & 0o777 == 0o600, k
    assert sorted(p.name for p in out.iterdir()) == sorted(
        keys + ["ca.crt", "client-app.crt", "server.crt"]), list(out.iterdir())


def test_refuses_to_overwrite_without_force(certs):
    out, _ = certs
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = gen(out, check=False)
    assert r.returncode != 0
    assert "refusing to overwrite existing files" in r.stderr and "--force" in r.stderr, r.stderr
    assert f"{out}/server.key" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "files changed"


def test_force_replaces_and_reuse_ca_keeps_the_ca(tmp_path):
    out = tmp_path / "c"
    gen(out)
    ca, server = (out / "ca.crt").read_bytes(), (out / "server.crt").read_bytes()
    gen(out, "--reuse-ca", "--force")
    assert (out / "ca.crt").read_bytes() == ca, "--reuse-ca must keep the CA"
    assert (out / "server.crt").read_bytes() != server
    assert verify(out / "ca.crt", out / "server.crt").returncode == 0
    gen(out, "--force")
    assert (out / "ca.crt").read_bytes() != ca, "--force without --reuse-ca makes a new CA"
    assert verify(out / "ca.crt", out / "server.crt").returncode == 0


def test_duplicate_names_are_listed_once(tmp_path):
    out = tmp_path / "c"
    r = gen(out, "--extra-san", "localhost", "db.example.com", "--extra-san", "db.example.com",
            "127.0.0.1")
    names = subprocess.run(["openssl", "x509", "-in", str(out / "server.crt"), "-noout", "-ext",
                            "subjectAltName"], capture_output=True, text=True,
                           check=True).stdout.splitlines()[1].split(",")
    names = [n.strip() for n in names]
    assert names.count("DNS:db.example.com") == 1 and names.count("DNS:localhost") == 1
    assert names.count("IP Address:127.0.0.1") == 1
    assert "kubectl create secret" in r.stdout


def test_reuse_ca_needs_a_ca(tmp_path):
    r = gen(tmp_path / "none", "--reuse-ca", check=False)
    assert r.returncode != 0 and "--reuse-ca:" in r.stderr and "ca.crt" in r.stderr, r.stderr
    assert not (tmp_path / "none" / "server.key").exists()


def test_names_follow_the_options(tmp_path):
    out = tmp_path / "c"
    gen(out, "--cluster", "shop", "--namespace", "prod", "--groups", "3",
        "--headless-suffix", "-pods", "--cluster-domain", "example.internal", "--days", "30")
    names = sans(out / "server.crt")
    assert "DNS:*.shop-3-pods.prod.svc.example.internal" in names
    assert "DNS:shop-0.prod.svc.example.internal" in names
    assert not any("-hl" in n or "citusdemo" in n for n in names), names
    end = subprocess.run(["openssl", "x509", "-in", str(out / "server.crt"), "-noout",
                          "-checkend", str(31 * 86400)], capture_output=True, text=True)
    assert end.returncode == 1, "--days 30 must make the certificate expire within 31 days"


@pytest.mark.parametrize("args, message", [
    (["--cluster", "Citus_Demo"], "--cluster: 'Citus_Demo' is not a DNS label"),
    (["--namespace", "a.b"], "--namespace: 'a.b' is not a DNS label"),
    (["--days", "0"], "--days: '0' is not a whole number of days >= 1"),
    (["--groups", "-1"], "--groups: '-1' is not a number of worker groups between 0 and 1000"),
    (["--groups", "two"], "--groups: 'two' is not a number of worker groups"),
    (["--extra-san", "bad name"], "--extra-san: 'bad name' is not a DNS name"),
    (["--client", "../x"], "--client: '../x' is not a user name"),
    (["--client"], "--client needs at least one value"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
])
def test_bad_arguments_are_named(tmp_path, args, message):
    out = tmp_path / "c"
    r = gen(out, *args, check=False)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert not out.exists(), "nothing may be written when the arguments are wrong"


# ---- a real PostgreSQL with the generated certificate ---------------------------------

def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(dirs[-1]).parent if dirs else None


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(certs):
    """PostgreSQL (as the postgres user) on SERVER_ADDR with ssl on and the generated files;
    `app` may log in only with its client certificate."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    out, _ = certs
    pg = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="pck-image-pg-", dir="/tmp"))
    os.chown(base, pg.pw_uid, pg.pw_gid)
    data = base / "data"
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_pg + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                            "--auth=trust", "--no-sync"], check=True, capture_output=True)
    for f in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(out / f, data / f)
        os.chown(data / f, pg.pw_uid, pg.pw_gid)
    os.chmod(data / "server.key", 0o600)
    port = free_port(SERVER_ADDR)
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"listen_addresses = '{SERVER_ADDR}'\nport = {port}\n"
                   f"unix_socket_directories = '{base}'\nssl = on\n"
                   "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                   "ssl_ca_file = 'ca.crt'\n")
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all app 127.0.0.0/8 cert\n"
        "hostssl all postgres 127.0.0.0/8 trust\n")
    log = base / "server.log"
    proc = subprocess.Popen(as_pg + [str(bindir / "postgres"), "-D", str(data)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        env = {"PATH": os.environ["PATH"], "HOME": str(base)}
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"postgres exited:\n{log.read_text()}")
            if subprocess.run([str(bindir / "pg_isready"), "-q", "-h", str(base), "-p", str(port)],
                              env=env).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"postgres did not become ready:\n{log.read_text()}")
        subprocess.run([str(bindir / "psql"), "-h", str(base), "-p", str(port), "-U", "postgres",
                        "-d", "postgres", "-Atqc", "CREATE ROLE app LOGIN"], env=env, check=True)
        yield {"bindir": bindir, "port": port, "home": base, "certs": out}
    finally:
        # runuser forwards TERM to postgres (smart shutdown); the session goes if it lingers
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def psql(pg, conninfo, sql="SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"):
    env = {"PATH": os.environ["PATH"], "HOME": str(pg["home"]), "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run([str(pg["bindir"] / "psql"), "-Atq", "-c", sql,
                           f"port={pg['port']} dbname=postgres {conninfo}"],
                          capture_output=True, text=True, env=env)


def test_verify_full_to_localhost(postgres):
    ca = postgres["certs"] / "ca.crt"
    r = psql(postgres, f"host=localhost hostaddr={SERVER_ADDR} user=postgres "
                       f"sslmode=verify-full sslrootcert={ca}")
    assert r.returncode == 0 and r.stdout.strip() == "t", r.stderr


def test_verify_full_to_a_pod_dns_name(postgres):
    """The name a member is reached at with POD_DNS_DOMAIN set, covered by the wildcard."""
    ca = postgres["certs"] / "ca.crt"
    r = psql(postgres, f"host={POD_FQDN} hostaddr={SERVER_ADDR} user=postgres "
                       f"sslmode=verify-full sslrootcert={ca}")
    assert r.returncode == 0 and r.stdout.strip() == "t", r.stderr


def test_verify_full_refuses_a_name_not_covered(postgres):
    ca = postgres["certs"] / "ca.crt"
    r = psql(postgres, f"host=db.example.com hostaddr={SERVER_ADDR} user=postgres "
                       f"sslmode=verify-full sslrootcert={ca}")
    assert r.returncode != 0
    assert 'does not match host name "db.example.com"' in r.stderr, r.stderr


def test_client_certificate_authentication(postgres):
    d = postgres["certs"]
    base = f"host=localhost hostaddr={SERVER_ADDR} user=app sslmode=verify-full sslrootcert={d / 'ca.crt'}"
    ok = psql(postgres, f"{base} sslcert={d / 'client-app.crt'} sslkey={d / 'client-app.key'}",
              "SELECT current_user")
    assert ok.returncode == 0 and ok.stdout.strip() == "app", ok.stderr
    no_cert = psql(postgres, f"{base} sslcert=/nonexistent sslkey=/nonexistent", "SELECT 1")
    assert no_cert.returncode != 0
    assert 'connection requires a valid client certificate' in no_cert.stderr, no_cert.stderr
