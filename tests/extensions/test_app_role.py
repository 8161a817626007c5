"""The application role (APP_USERNAME): the leader that owns the extensions creates it with
the password from its secret file, so applications log in as it instead of the superuser; its
password is never logged; a second leader (after a restart) keeps it in step."""
import os

import psycopg2
import pytest

from conftest import wait_leader
from harness import cluster

SECONDS = 30


def app_connect(pod, password, dbname="postgres"):
    return psycopg2.connect(host=pod.ip, port=5432, user="app", password=password,
                            dbname=dbname, connect_timeout=5)


_clusters = iter(range(1, 1000))


@pytest.fixture
def leader(pods):
    """A new single-member cluster each time (its own data directory and passwords)."""
    n = next(_clusters)
    pod = pods.new(f"approle{n}-0-0", env={"CLUSTER_NAME": f"approle{n}",
                                            "CITUS_DATABASE": "postgres",
                                       "APP_USERNAME": "app", "EXTENSIONS": "",
                                       "LEADER_POLL_INTERVAL_MS": "500"}, start=False)
    pod.app_password = "app-" + os.urandom(9).hex()
    (pod.secrets / "app-password").write_text(pod.app_password + "\n")
    pod.start()
    wait_leader(pod)
    return pod


def test_app_role_created_logs_in_and_owns_its_tables(leader):
    cluster.wait_for(lambda: 'msg="application role ready" role=app' in leader.log(), SECONDS,
                     what="the application role")
    with app_connect(leader, leader.app_password) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE app_table (id int)")
        cur.execute("SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, True)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        app_connect(leader, "wrong-password").close()
    assert leader.app_password not in leader.log()


def test_password_kept_in_step_by_the_next_agent(leader):
    cluster.wait_for(lambda: 'msg="application role ready"' in leader.log(), SECONDS,
                     what="the application role")
    leader.sql("ALTER ROLE app PASSWORD 'changed-behind-our-back'")
    leader.stop()
    leader.start()
    wait_leader(leader)
    cluster.wait_for(lambda: app_connect(leader, leader.app_password), SECONDS,
                     what="the secret's password working again")


CITUS, CITUS_WHY = cluster.paths.citus_mode()


@pytest.mark.skipif(not CITUS, reason=CITUS_WHY)
def test_citus_app_role_runs_distributed_queries(pods):
    """With Citus the role reaches the workers and the coordinator can open the app's own
    connections to them (pg_dist_authinfo): the app creates and queries a distributed table."""
    pw = cluster.new_passwords()
    app_password = "app-" + os.urandom(9).hex()
    base = {"CLUSTER_NAME": "appcitus", "CITUS_ENABLED": "true", "CITUS_DATABASE": "citus",
            "APP_USERNAME": "app", "LEADER_POLL_INTERVAL_MS": "500"}
    members = []
    for group in (0, 1):
        pod = pods.new(f"appcitus-{group}-0", env=dict(base, CITUS_GROUP=str(group)),
                       passwords=pw, start=False)
        (pod.secrets / "app-password").write_text(app_password + "\n")
        pod.start()
        members.append(pod)
    coord, worker = members
    wait_leader(coord)
    wait_leader(worker)
    cluster.wait_for(lambda: 'msg="application role ready" role=app' in coord.log(), 90,
                     what="the application role on the coordinator")
    cluster.wait_for(lambda: coord.sql("SELECT count(*) FROM pg_dist_node WHERE groupid = 1 "
                                       "AND isactive", "citus")[0][0] == 1, 90,
                     what="the worker registered")

    def distributed():
        with app_connect(coord, app_password, "citus") as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS app_dist (id bigint PRIMARY KEY, v text)")
            cur.execute("SELECT create_distributed_table('app_dist', 'id') WHERE NOT EXISTS "
                        "(SELECT 1 FROM pg_dist_partition WHERE logicalrelid = "
                        "'app_dist'::regclass)")
            cur.execute("INSERT INTO app_dist SELECT g, 'x' FROM generate_series(1, 100) g "
                        "ON CONFLICT DO NOTHING")
            cur.execute("SELECT count(*) FROM app_dist")
            return cur.fetchone()[0] == 100
    cluster.wait_for(distributed, 60, what="the app's distributed table")
    shards_on_worker = worker.sql("SELECT count(*) FROM pg_class WHERE relname LIKE "
                                  "'app_dist_%'", "citus")[0][0]
    assert shards_on_worker > 0
    assert app_password not in coord.log() and app_password not in worker.log()
