"""One cluster in the chart's default shape (coordinator 3, two worker groups of 2), shared by
read-only tests: bootstrap, extensions, Citus registration and queries, TLS verify-full for
clients, replication and Citus' own connections, the documented in-pod commands."""
import http.client
import socket
import ssl
import urllib.request

import psycopg2
import pytest

from conftest import (CITUS, assert_one_leader_per_group_streaming, assert_pod_hygiene, execute,
                      needs_citus, new_cluster)


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2eboot", "127.0.21", {0: 3, 1: 2, 2: 2})
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    return c


def test_every_pod_runs_citus_init_as_pid1(cluster):
    for pod in cluster.pods.values():
        res = pod.exec(["cat", "/proc/1/comm"])
        assert res.stdout.strip() == "citus-init", f"{pod.name}: PID 1 is {res.stdout!r}"


def test_one_leader_per_group_and_replicas_stream(cluster):
    assert_one_leader_per_group_streaming(cluster)


def test_extensions_exist_on_the_coordinator_leader(cluster):
    leader = cluster.writable_leader(0)
    have = {r[0] for r in execute(leader, "SELECT extname FROM pg_extension")}
    assert {"postgis", "postgis_topology", "pg_partman"} <= have
    schema = execute(leader, "SELECT extnamespace::regnamespace::text FROM pg_extension "
                             "WHERE extname = 'pg_partman'")
    assert schema == [("partman",)]


@needs_citus
def test_extensions_exist_on_worker_leaders(cluster):
    for g in cluster.groups[1:]:
        leader = cluster.writable_leader(g)
        cluster.wait_for(f"extensions on the leader of group {g}",
                         lambda: cluster.extensions_present(leader), 60)


@needs_citus
def test_workers_registered_on_the_coordinator(cluster):
    leader = cluster.writable_leader(0)
    expected = sorted(cluster.writable_leader(g).dns_name for g in cluster.groups[1:])

    def registered():
        rows = execute(leader, "SELECT node_name FROM citus_get_active_worker_nodes()")
        return sorted(r[0] for r in rows) == expected
    cluster.wait_for("both worker groups registered", registered, 60)


@needs_citus
def test_coordinator_leader_hurries_patroni_for_worker_registration(cluster):
    """src/leader.c: the new coordinator leader asks its Patroni for early HA cycles (a no-op
    PATCH /config with the REST API credentials) so worker leaders are registered at once;
    Patroni must take them (never 401/503 to the end), and it is the coordinator's duty only."""
    leader = cluster.writable_leader(0)
    log = leader.log_text()
    assert "asked Patroni for an HA cycle now" in log, log[-3000:]
    assert "refused an early HA cycle" not in log, log[-3000:]
    for g in cluster.groups[1:]:
        for pod in cluster.group(g):
            assert "HA cycle" not in pod.log_text(), pod.name


@needs_citus
def test_distributed_table_round_trip(cluster):
    leader = cluster.writable_leader(0)
    with leader.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS e2e_items")
        cur.execute("CREATE TABLE e2e_items (id bigint PRIMARY KEY, label text)")
        cur.execute("SELECT create_distributed_table('e2e_items', 'id')")
        cur.execute("INSERT INTO e2e_items SELECT i, 'item ' || i FROM generate_series(1, 500) i")
        cur.execute("SELECT count(*), sum(id) FROM e2e_items")
        assert cur.fetchone() == (500, 500 * 501 // 2)
        cur.execute("SELECT label FROM e2e_items WHERE id = 321")
        assert cur.fetchone() == ("item 321",)
        cur.execute("SELECT DISTINCT nodename FROM citus_shards "
                    "WHERE table_name = 'e2e_items'::regclass")
        nodes = {r[0] for r in cur.fetchall()}
    workers = {cluster.writable_leader(g).dns_name for g in cluster.groups[1:]}
    assert workers <= nodes  # shards live on both worker groups


def test_client_tls_verify_full(cluster):
    leader = cluster.writable_leader(0)
    rows = execute(leader, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert rows[0][0] is True
    # verify-full really checks: the bare address is not a name the certificate covers ...
    info = cluster.conninfo(leader, sslmode="verify-full")
    info["host"] = leader.ip
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        psycopg2.connect(**info)


def test_client_with_another_ca_is_refused(cluster, tmp_path):
    from localcluster import tls
    leader = cluster.writable_leader(0)
    foreign = tls.generate_foreign_ca(tmp_path)
    info = cluster.conninfo(leader, sslmode="verify-full", sslrootcert=str(foreign))
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(**info)


def test_replication_uses_tls(cluster):
    for g in cluster.groups:
        leader = cluster.writable_leader(g)
        rows = execute(leader, "SELECT r.application_name, s.ssl FROM pg_stat_replication r "
                               "JOIN pg_stat_ssl s USING (pid)", dbname="postgres")
        assert len(rows) == len(cluster.group(g)) - 1, f"group {g}: {rows}"
        assert all(on for _, on in rows), f"group {g}: replication without TLS: {rows}"


def https_get(pod, path, ctx):
    """GET over https from the pod's address, the certificate checked for the pod's DNS name."""
    raw = socket.create_connection((pod.ip, 8008), timeout=10)
    conn = http.client.HTTPSConnection(pod.dns_name, 8008, timeout=10)
    conn.sock = ctx.wrap_socket(raw, server_hostname=pod.dns_name)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_rest_api_serves_https_with_the_member_certificate(cluster, tmp_path):
    """TLS on: every member's Patroni REST API answers https with its own certificate (name
    checked), refuses plain http, and a client trusting another CA cannot connect."""
    from localcluster import tls
    ctx = ssl.create_default_context(cafile=str(cluster.certs_dir / "ca.crt"))
    foreign = ssl.create_default_context(cafile=str(tls.generate_foreign_ca(tmp_path)))
    for pod in cluster.pods.values():
        status, body = https_get(pod, "/patroni", ctx)
        assert status == 200 and b'"state"' in body, pod.name
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://{pod.ip}:8008/patroni", timeout=10).read()
        with pytest.raises(OSError, match="certificate verify failed"):
            https_get(pod, "/patroni", foreign)


@needs_citus
def test_citus_internode_connections_use_tls(cluster):
    leader = cluster.writable_leader(0)
    rows = execute(leader, "SELECT nodename, success, result FROM run_command_on_workers("
                           "$$SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()$$)")
    assert len(rows) == 2 and all(ok and res == "t" for _, ok, res in rows), rows


def test_documented_commands_inside_a_pod(cluster):
    """kubectl exec -it <cluster>-0-0 -- psql -U postgres -d citus / -- patronictl list"""
    pod = cluster.pods["e2eboot-0-0"]
    db = cluster.database
    res = pod.exec(["psql", "-U", "postgres", "-d", db, "-Atc", "SELECT current_user"])
    assert res.returncode == 0 and res.stdout.strip() == "postgres", res.stderr
    res = pod.exec(["patronictl", "list"])
    assert res.returncode == 0, res.stderr
    for member in cluster.pods:
        if CITUS or member.startswith("e2eboot-0-"):
            assert member in res.stdout


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
