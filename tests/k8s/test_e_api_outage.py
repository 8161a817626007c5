"""A Kubernetes API outage under load (patroni.failsafeMode, on by default): the API server
is stopped for 60 s while a writer commits through the coordinator into a distributed table.
No primary demotes (each group's primary answers role primary on its REST API the whole
time, no other member claims it), not one commit fails, no container restarts, and after
the API server is back the cluster is normal again: one leader per group in its leader
Endpoints, the same pods labelled role=primary, every replica streaming."""
import threading
import time

import pytest

from conftest import CHART, PRIMARY_ROLES, Kube, wait_for

NS = "citus-outage"
CLUSTER = "citusdemo"
GROUPS = [0, 1, 2]
MEMBERS = {0: 2, 1: 2, 2: 2}
OUTAGE_S = 60


@pytest.fixture(scope="module")
def release(kube):
    t0 = time.monotonic()
    kube.helm("install", "citus", str(CHART), "-n", NS, "--create-namespace", "--timeout", "10m",
              "--set", "coordinator.replicas=2")
    print(f"\nTIMING helm install (defaults, 2 coordinator members): {time.monotonic() - t0:.1f}s")
    yield
    kube.remove_release(NS)


class Writer(threading.Thread):
    """Autocommit INSERTs into a distributed table through the coordinator's primary, one
    connection, as fast as one client goes (a pause of 20 ms between commits)."""

    def __init__(self, addr, password):
        super().__init__(daemon=True)
        self.addr, self.password = addr, password
        self.stop = threading.Event()
        self.commits, self.errors, self.longest_s = 0, [], 0.0

    def run(self):
        import psycopg2
        conn = psycopg2.connect(host=self.addr, port=5432, user="postgres", password=self.password,
                                dbname="citus", sslmode="require", connect_timeout=5)
        conn.autocommit = True
        cur = conn.cursor()
        i = 0
        while not self.stop.is_set():
            i += 1
            t = time.monotonic()
            try:
                cur.execute("INSERT INTO outage_writes VALUES (%s, now())", (i,))
                self.commits += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.errors.append(f"commit {i}: {e}")
                try:
                    conn.close()
                    conn = psycopg2.connect(host=self.addr, port=5432, user="postgres",
                                            password=self.password, dbname="citus",
                                            sslmode="require", connect_timeout=5)
                    conn.autocommit = True
                    cur = conn.cursor()
                except Exception as e2:  # noqa: BLE001
                    self.errors.append(f"reconnect: {e2}")
                    time.sleep(0.5)
            self.longest_s = max(self.longest_s, time.monotonic() - t)
            time.sleep(0.02)
        conn.close()


def _restarts(kube):
    return {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"])
            for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group")}


def test_api_outage_keeps_primaries_and_writes(kube, release):
    leaders = kube.wait_leaders(NS, CLUSTER, GROUPS, 420)
    for g, count in MEMBERS.items():
        kube.wait_replicas_running(NS, CLUSTER, g, count - 1, 300)
    primaries = {g: pod["metadata"]["name"] for g, (pod, _) in leaders.items()}
    for name in primaries.values():
        wait_for(f"{name} labelled role=primary", lambda: kube.pod(NS, name)["metadata"]["labels"].get(
            "role") == "primary", 60, 1)
    members = {p["metadata"]["name"]: p for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group")}
    # failsafe mode's precondition: each leader has written the members it must reach (the
    # `failsafe` annotation of its leader Endpoints) and it names the whole group
    import json

    def failsafe_topology(g):
        ann = kube.endpoints(NS, f"{CLUSTER}-{g}")["metadata"].get("annotations") or {}
        names = set(json.loads(ann.get("failsafe") or "{}"))
        return names == {p["metadata"]["name"] for p in kube.group_pods(NS, CLUSTER, g)} and names
    for g in GROUPS:
        print(f"group {g} failsafe members:", wait_for(f"group {g}'s failsafe topology", lambda: failsafe_topology(g), 120, 2))
    config = kube.patroni(leaders[0][0], "/config")
    assert config.get("failsafe_mode") is True, config
    before = _restarts(kube)
    pw = kube.secret_data(NS, CLUSTER)["superuser-password"]
    coord = leaders[0][0]
    kube.sql(coord, "CREATE TABLE outage_writes (id bigint PRIMARY KEY, at timestamptz NOT NULL)", pw)
    kube.sql(coord, "SELECT create_distributed_table('outage_writes', 'id')", pw)

    writer = Writer(Kube.addr(coord), pw)
    writer.start()
    wait_for("the writer's first commits", lambda: writer.commits >= 20, 30, 0.5)
    before_outage = writer.commits
    pid = kube.cp.stop_apiserver()
    print(f"\nkube-apiserver (pid {pid}) stopped")
    t0 = time.monotonic()
    seen = {g: set() for g in GROUPS}
    problems = []
    try:
        while time.monotonic() - t0 < OUTAGE_S:
            for name, pod in members.items():
                g = int(pod["metadata"]["labels"]["citus-group"])
                try:
                    role = kube.patroni(pod, timeout=3).get("role")
                except OSError as e:
                    problems.append(f"{time.monotonic() - t0:.0f}s: {name}'s REST API: {e}")
                    continue
                seen[g].add((name, role))
                if name == primaries[g] and role not in PRIMARY_ROLES:
                    problems.append(f"{time.monotonic() - t0:.0f}s: {name} (group {g}'s primary) is {role}")
                if name != primaries[g] and role in PRIMARY_ROLES:
                    problems.append(f"{time.monotonic() - t0:.0f}s: {name} claims primary next to {primaries[g]}")
            time.sleep(2)
        during = writer.commits - before_outage
    finally:
        kube.cp.start_apiserver()
        print(f"kube-apiserver back after {time.monotonic() - t0:.1f}s")
    time.sleep(10)  # commits after the API server is back
    writer.stop.set()
    writer.join(30)
    print(f"writer: {writer.commits} commits ({during} during the outage), "
          f"longest {writer.longest_s:.2f}s, errors {len(writer.errors)}")
    assert problems == [], "\n".join(problems[:20])
    assert writer.errors == [], "\n".join(writer.errors[:20])
    assert during > OUTAGE_S * 5, f"only {during} commits in {OUTAGE_S}s of outage"
    assert writer.longest_s < 5, f"a commit took {writer.longest_s:.1f}s"
    rows = kube.sql(coord, "SELECT count(*) FROM outage_writes", pw)[0][0]
    assert rows == writer.commits

    # back to normal: one leader per group (the same pods), labelled, replicas streaming
    after = kube.wait_leaders(NS, CLUSTER, GROUPS, 180)
    assert {g: pod["metadata"]["name"] for g, (pod, _) in after.items()} == primaries
    for g, count in MEMBERS.items():
        kube.wait_replicas_running(NS, CLUSTER, g, count - 1, 180)
        pods = kube.group_pods(NS, CLUSTER, g)
        roles = {p["metadata"]["name"]: p["metadata"]["labels"].get("role") for p in pods}
        assert [n for n, r in roles.items() if r == "primary"] == [primaries[g]], roles
    # the renewed leader locks: Patroni writes to the API again
    first = {g: kube.endpoints(NS, f"{CLUSTER}-{g}")["metadata"]["annotations"]["renewTime"] for g in GROUPS}
    wait_for("every leader lock renewed after the outage", lambda: all(
        kube.endpoints(NS, f"{CLUSTER}-{g}")["metadata"]["annotations"]["renewTime"] != first[g]
        for g in GROUPS), 60, 2)
    assert _restarts(kube) == before, "a container restarted or a pod was replaced"
    kube.sql(coord, "DROP TABLE outage_writes", pw)
