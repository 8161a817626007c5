"""The `helm test` pod's script and the extensions Job, run for real against a local PostgreSQL.

Citus is not installed here, so the few Citus functions the script calls are stand-ins
defined in SQL (citus_get_active_worker_nodes, create_distributed_table, citus_shards);
everything else -- reading the password file, connecting with a password, writing and
reading rows, checking extensions, dropping the table on every path, the exit status -- is
the script as rendered by the chart. The server serves TLS with the certificate the chart
generates by default (ssl.extraIpAddresses adds the server's address), and the clients
connect with the rendered sslmode, verify-full."""
import base64
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import render

ADDR = "127.0.55.1"
PASSWORD = "Sup3r-secret-Pw"
SECRETS_DIR = "/etc/patroni/secrets"
SSL_DIR = "/etc/ssl/certs/postgresql"


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs and os.path.exists(os.path.join(dirs[-1], "postgres")) else None


def free_port():
    s = socket.socket()
    s.bind((ADDR, 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def server():
    bindir = pg_bindir()
    if bindir is None or shutil.which("psql") is None:
        pytest.skip("PostgreSQL server binaries or psql not installed")
    if os.getuid() != 0:
        pytest.skip("needs root to run PostgreSQL as the postgres user")
    pg = pwd.getpwnam("postgres")
    base = tempfile.mkdtemp(prefix="pck-chart-pg-", dir="/tmp")
    os.chown(base, pg.pw_uid, pg.pw_gid)
    data = os.path.join(base, "data")
    as_pg = ["runuser", "-u", "postgres", "--"]
    # the chart's generated TLS secret, naming this server's address
    tls = render({"ssl": {"extraIpAddresses": [ADDR]}}).get("Secret", "citusdemo-ssl-certs")["data"]
    ssl_dir = os.path.join(base, "tls")
    os.mkdir(ssl_dir)
    for name, content in tls.items():
        path = os.path.join(ssl_dir, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(content))
        os.chown(path, pg.pw_uid, pg.pw_gid)
        os.chmod(path, 0o600)
    subprocess.run(as_pg + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres",
                            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
                   check=True, capture_output=True)
    port = free_port()
    citus = os.path.exists(os.path.join(
        "/usr/share/postgresql", os.path.basename(os.path.dirname(bindir)), "extension", "citus.control"))
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n"
                % (ADDR, port, base))
        f.write("ssl = on\nssl_cert_file = '%s/server.crt'\nssl_key_file = '%s/server.key'\n" % (ssl_dir, ssl_dir))
        if citus:
            f.write("shared_preload_libraries = 'citus'\n")
    # Citus connects to its own node like to any other: with the password, as citus-init's
    # pgpass gives it in a pod.
    pgpass = os.path.join(base, "pgpass")
    with open(pgpass, "w") as f:
        f.write("%s:%d:*:postgres:%s\n" % (ADDR, port, PASSWORD))
    os.chown(pgpass, pg.pw_uid, pg.pw_gid)
    os.chmod(pgpass, 0o600)
    log = open(os.path.join(base, "server.log"), "wb")
    proc = subprocess.Popen(as_pg + ["env", "PGPASSFILE=" + pgpass, os.path.join(bindir, "postgres"), "-D", data],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    local = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", base, "-p", str(port), "-U", "postgres"]
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail("postgres exited: " + open(os.path.join(base, "server.log")).read())
            if subprocess.run(local + ["-c", "SELECT 1"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(local + ["-c", "ALTER USER postgres PASSWORD '%s'" % PASSWORD,
                                "-c", "CREATE DATABASE citus"], check=True, capture_output=True)
        subprocess.run(local + ["-d", "citus", "-c", """
            CREATE TABLE stub_workers (node_name text, node_port bigint);
            CREATE FUNCTION citus_get_active_worker_nodes() RETURNS TABLE (node_name text, node_port bigint)
              LANGUAGE sql AS 'SELECT node_name, node_port FROM stub_workers';
            CREATE FUNCTION create_distributed_table(regclass, text) RETURNS void
              LANGUAGE sql AS 'SELECT';
            CREATE VIEW citus_shards AS SELECT NULL::regclass AS table_name, NULL::text AS nodename WHERE false;
        """], check=True, capture_output=True)
        if citus:  # a database where citus exists, as on a coordinator, for the Job
            subprocess.run(local + ["-c", "CREATE DATABASE jobdb"], check=True, capture_output=True)
            subprocess.run(local + ["-d", "jobdb", "-c", "CREATE EXTENSION citus"], check=True, capture_output=True)
        yield {"port": port, "psql": local + ["-d", "citus", "-At"], "citus": citus, "ssl_dir": ssl_dir,
               "jobdb": local + ["-d", "jobdb", "-At"]}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def set_workers(server, n):
    sql = "DELETE FROM stub_workers; INSERT INTO stub_workers SELECT 'w' || g, 5432 FROM generate_series(1, %d) g" % n
    subprocess.run(server["psql"] + ["-c", sql], check=True, capture_output=True)


def tables(server):
    out = subprocess.run(server["psql"] + ["-c", "SELECT relname FROM pg_class WHERE relname LIKE 'helm_test_%'"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def run_test_pod(server, values):
    """Run the rendered test pod's script with its environment, the coordinator service and
    the mounted secret replaced by the local server and a temporary secret directory."""
    pod = render(values).get("Pod", "citusdemo-test")
    c = pod["spec"]["containers"][0]
    secrets = tempfile.mkdtemp(prefix="pck-chart-secrets-")
    try:
        key = next(e["value"] for e in c["env"] if e["name"] == "SUPERUSER_PASSWORD_KEY")
        with open(os.path.join(secrets, key), "w") as f:
            f.write(PASSWORD + "\n")
        env = {"PATH": os.environ["PATH"], "HOME": secrets}
        env.update({e["name"]: e["value"] for e in c["env"]})
        env.update({"PGHOST": ADDR, "PGPORT": str(server["port"])})
        for name in ("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
            if name in env:
                env[name] = env[name].replace(SSL_DIR, server["ssl_dir"])
        script = c["args"][0].replace(SECRETS_DIR + "/", secrets + "/")
        assert c["command"] == ["/bin/sh", "-c"]
        return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(secrets)


def test_passes_on_a_healthy_cluster(server):
    set_workers(server, 2)
    res = run_test_pod(server, {"additionalExtensions": {"enabled": True, "extensions": ["plpgsql"]}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok: 2 active worker nodes" in res.stdout
    assert "ok: 100 rows written and read back" in res.stdout
    assert "ok: extension plpgsql" in res.stdout
    assert "all checks passed" in res.stdout
    assert "(sslmode=verify-full)" in res.stdout
    assert tables(server) == [], "the test table is dropped"
    assert PASSWORD not in res.stdout + res.stderr


def test_passes_without_tls(server):
    """ssl.enabled=false (a choice, not the default): the script connects with sslmode prefer."""
    set_workers(server, 2)
    res = run_test_pod(server, {"ssl": {"enabled": False}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "(sslmode=prefer)" in res.stdout and "all checks passed" in res.stdout


def test_verify_full_is_checked(server):
    """The generated certificate passes verify-full only for what it is: a CA of another
    release (another render) is refused, and so is a host name the certificate does not name."""
    other = tempfile.mkdtemp(prefix="pck-chart-otherca-")
    try:
        tls = render({}).get("Secret", "citusdemo-ssl-certs")["data"]
        with open(os.path.join(other, "ca.crt"), "wb") as f:
            f.write(base64.b64decode(tls["ca.crt"]))
        env = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="5")

        def connect(conninfo):
            return subprocess.run(["psql", "-X", "-At", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                                   "port=%d user=postgres dbname=citus sslmode=verify-full %s" % (server["port"], conninfo)],
                                  env=env, capture_output=True, text=True, timeout=30)
        ok = connect("host=%s sslrootcert=%s/ca.crt" % (ADDR, server["ssl_dir"]))
        assert ok.returncode == 0 and ok.stdout.strip() == "t", ok.stderr
        res = connect("host=%s sslrootcert=%s/ca.crt" % (ADDR, other))
        assert res.returncode != 0 and "certificate verify failed" in res.stderr, res.stderr
        res = connect("host=db.example.org hostaddr=%s sslrootcert=%s/ca.crt" % (ADDR, server["ssl_dir"]))
        assert res.returncode != 0 and "does not match host name" in res.stderr, res.stderr
    finally:
        shutil.rmtree(other)


def test_fails_when_a_worker_group_is_missing(server):
    set_workers(server, 1)
    res = run_test_pod(server, {})
    assert res.returncode == 1
    assert "citus_get_active_worker_nodes() has 1 rows, expected 2 (one per worker group)" in res.stderr
    assert tables(server) == []


def test_fails_when_an_extension_is_missing(server):
    set_workers(server, 3)
    res = run_test_pod(server, {"workers": [{"citusGroup": g, "replicas": 1} for g in (1, 2, 3)],
                                "additionalExtensions": {"enabled": True, "extensions": ["plpgsql", "hstore"]}})
    assert res.returncode == 1
    assert "ok: extension plpgsql" in res.stdout
    assert "extension hstore is not installed in citus" in res.stderr
    assert tables(server) == [], "the table is dropped on failure too"
    assert PASSWORD not in res.stdout + res.stderr


CITUS_INIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "build", "citus-init")


def test_extensions_job_creates_the_extensions(server):
    """The hook Job's container (command, env, secret key, extension list from the ConfigMap)
    with the coordinator service and the mounts pointed at the local server."""
    if not server["citus"]:
        pytest.skip("the citus extension is not installed: the Job waits for citus on the coordinator")
    if not os.access(CITUS_INIT, os.X_OK):
        pytest.skip("build/citus-init is not built")
    r = render({"citus": {"database": "jobdb"},
                "additionalExtensions": {"enabled": True, "maxAttempts": 3, "retryDelaySeconds": 1,
                                         "extensions": ["hstore", "pg_trgm"]}})
    job = r.get("Job", "citusdemo-extensions-setup")
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["COORDINATOR_HOST"] == "citusdemo-0"
    tmp = tempfile.mkdtemp(prefix="pck-chart-job-")
    try:
        with open(os.path.join(tmp, env["SUPERUSER_PASSWORD_KEY"]), "w") as f:
            f.write(PASSWORD + "\n")
        ext_file = os.path.join(tmp, "extensions")
        with open(ext_file, "w") as f:
            f.write(r.get("ConfigMap", "citusdemo-extensions")["data"]["extensions"])
        env.update({"PATH": os.environ["PATH"], "HOME": tmp, "SECRETS_DIR": tmp, "EXTENSIONS_FILE": ext_file,
                    "COORDINATOR_HOST": ADDR, "PG_PORT": str(server["port"])})
        assert env["SSL_MODE"] == "verify-full" and env["SSL_CERT_DIR"] == SSL_DIR
        env["SSL_CERT_DIR"] = server["ssl_dir"]
        env["PGSSLROOTCERT"] = env["PGSSLROOTCERT"].replace(SSL_DIR, server["ssl_dir"])
        assert c["command"][0] == "citus-init"
        res = subprocess.run([CITUS_INIT] + c["command"][1:], env=env, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(tmp)
    assert res.returncode == 0, res.stdout + res.stderr
    assert PASSWORD not in res.stdout + res.stderr
    have = subprocess.run(server["jobdb"] + ["-c", "SELECT extname FROM pg_extension ORDER BY 1"],
                          check=True, capture_output=True, text=True).stdout.split()
    assert {"hstore", "pg_trgm"} <= set(have), have


def test_passes_against_real_citus(server):
    """With Citus installed: a single-node Citus (the coordinator holds the shards, no worker
    group) runs the unmodified script, distributed table included."""
    if not server["citus"]:
        pytest.skip("the citus extension is not installed")
    node = "'%s', %d" % (ADDR, server["port"])
    subprocess.run(server["jobdb"] + ["-c", "SELECT citus_set_coordinator_host(%s)" % node,
                                      "-c", "SELECT citus_set_node_property(%s, 'shouldhaveshards', true)" % node],
                   check=True, capture_output=True)
    res = run_test_pod(server, {"workers": [], "citus": {"database": "jobdb"}})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok: 0 active worker nodes" in res.stdout and "all checks passed" in res.stdout
    assert "ok: 100 rows written and read back, shards on 1 nodes" in res.stdout
    left = subprocess.run(server["jobdb"] + ["-c", "SELECT relname, relkind FROM pg_class WHERE relname LIKE 'helm_test_%'"],
                          check=True, capture_output=True, text=True).stdout.split()
    assert left == []
