"""A stopped cluster started again with its data (scripts/demo down, then up): the moment it is
ready (Cluster.wait_ready, the condition scripts/demo up reports), clients' distributed DDL
and writes succeed, with no retry, also when groups elected other leaders than before. With
readiness as "every group has a writable leader and the extensions", the first
create_distributed_table after such a restart failed: pg_dist_node still named the previous
primaries, or had just been updated and Citus refused DDL for a few seconds ("... is a
metadata node, but is out of sync")."""
import time

import pytest

from conftest import assert_pod_hygiene, execute, needs_citus, new_cluster

ROUNDS = 3
LATE_S = 6
pytestmark = needs_citus  # the whole module: without Citus there is no pg_dist_node to go stale


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2erestart", "127.0.26", {0: 2, 1: 2, 2: 2})
    c.start()
    c.wait_ready(240)
    return c


def restart(cluster, late=()) -> None:
    """scripts/demo down (SIGTERM to every pod, data kept), then up; the pods named in late
    start LATE_S after the others (a pod scheduled late), so their group elects another
    leader and the coordinator's pg_dist_node has to change."""
    cluster.stop()
    cluster.prepare()
    cluster.etcd.start()
    for pod in cluster.pods.values():
        if pod.name not in late:
            pod.launch()
    if late:
        time.sleep(LATE_S)
    cluster.start()  # the rest


def leaders(cluster) -> dict:
    return {g: e["leader"] for g, e in cluster.dcs_groups().items()}


def test_down_then_up_takes_distributed_ddl_at_once(cluster):
    changes = 0
    for n in range(1, ROUNDS + 1):
        before = leaders(cluster)
        # round 1 as scripts/demo does it; then every group's leader comes back late
        restart(cluster, late=set(before.values()) if n > 1 else ())
        cluster.wait_ready(240)
        table = f"e2e_restart_{n}"
        with cluster.writable_leader(0).connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, note text)")
            cur.execute("SELECT create_distributed_table(%s, 'id')", (table,))
            cur.execute(f"INSERT INTO {table} SELECT i, 'round {n}' FROM generate_series(1, 200) i")
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone() == (200,), f"round {n}"
        after = leaders(cluster)
        changes += sum(1 for g in cluster.groups if after[g] != before[g])
        want = {g: cluster.pods[after[g]].dns_name for g in cluster.groups}
        assert registered_primaries(cluster) == want, f"round {n}"
    assert changes > 0, "no group changed its leader across the restarts: nothing was tested"
    for n in range(1, ROUNDS + 1):  # every round's rows survived the later restarts
        assert execute(cluster.writable_leader(0), f"SELECT count(*) FROM e2e_restart_{n}") \
            == [(200,)]


def registered_primaries(cluster) -> dict:
    rows = execute(cluster.writable_leader(0), "SELECT groupid, nodename FROM pg_dist_node "
                                               "WHERE noderole = 'primary' AND isactive")
    return dict(rows)


def test_zz_no_zombies_and_no_password_in_logs(cluster):
    assert_pod_hygiene(cluster)
