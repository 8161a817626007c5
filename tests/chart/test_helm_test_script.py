"""The `helm test` pod's script, run for real against a local PostgreSQL.

Citus is not installed here, so the few Citus functions the script calls are stand-ins
defined in SQL (citus_get_active_worker_nodes, create_distributed_table, citus_shards);
everything else -- reading the password file, connecting with a password, writing and
reading rows, checking extensions, dropping the table on every path, the exit status -- is
the script as rendered by the chart."""
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
    subprocess.run(as_pg + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres",
                            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
                   check=True, capture_output=True)
    port = free_port()
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n"
                % (ADDR, port, base))
    log = open(os.path.join(base, "server.log"), "wb")
    proc = subprocess.Popen(as_pg + [os.path.join(bindir, "postgres"), "-D", data],
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
        yield {"port": port, "psql": local + ["-d", "citus", "-At"]}
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
    assert tables(server) == [], "the test table is dropped"
    assert PASSWORD not in res.stdout + res.stderr


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
