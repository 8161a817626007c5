"""Shared pieces of the end-to-end suite: clusters from scripts/lib/localcluster (the same
code as scripts/demo), cleanup by PID, and the checks every module ends with."""
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from localcluster import PRIMARY_ROLES, Cluster, ClusterSpec, paths, procs  # noqa: E402
from localcluster.writer import Writer  # noqa: E402

E2E_RUN = paths.RUN / "e2e"
# The suite's S3 server (backups, localcluster/s3.py): its own address, beside scripts/demo's.
E2E_S3_IP = "127.0.9.2"
# The mode of clusters whose spec leaves citus at None: DEMO_CITUS (auto by default: Citus
# when it is installed). Citus-only tests skip with the reason otherwise.
CITUS, CITUS_WHY = paths.citus_mode()
needs_citus = pytest.mark.skipif(not CITUS, reason=CITUS_WHY)


@pytest.fixture(scope="session", autouse=True)
def citus_init_binary():
    binary = paths.citus_init_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: build it first (scripts/lib/common.sh ensure_build)")
    return binary


def backup_tools_problem():
    """Why clusters with backups cannot run here, or None (pgBackRest, versitygw, curl)."""
    from localcluster import s3
    if shutil.which("pgbackrest") is None:
        return "pgbackrest is not installed (ensure_base installs Debian's package)"
    if shutil.which("curl") is None:
        return "curl is not installed"
    try:
        s3.versitygw_binary()
    except s3.S3Error as e:
        return str(e)
    return None


needs_backup_tools = pytest.mark.skipif(backup_tools_problem() is not None,
                                        reason=str(backup_tools_problem()))


# Clusters of tests that are not about backups run without them (BACKUP_REPO=none), which
# keeps the suite fast; E2E_BACKUP=1 runs them with archiving and backups as scripts/demo does.
BACKUP_DEFAULT = os.environ.get("E2E_BACKUP") == "1"


def new_cluster(request, name: str, subnet: str, groups: dict, backup: bool = None,
                **spec_args) -> Cluster:
    """A fresh cluster under run/e2e/<name>, stopped (by PID) when the requesting scope ends;
    its directory is kept when a test failed (or KEEP_E2E=1), for the logs. backup=True:
    archiving and backups to the suite's S3 server (the purge of an earlier run's cluster
    removes its backups too); None: BACKUP_DEFAULT."""
    if backup is None:
        backup = BACKUP_DEFAULT
    spec = ClusterSpec(name=name, subnet=subnet, groups=groups, run_root=E2E_RUN,
                       backup=backup, s3_ip=E2E_S3_IP, **spec_args)
    Cluster(spec).stop(purge=True)  # an earlier interrupted run: its recorded PIDs, its files
    cluster = Cluster(spec)
    failed_before = request.session.testsfailed

    def finish():
        cluster.stop()
        if request.session.testsfailed == failed_before and os.environ.get("KEEP_E2E") != "1":
            shutil.rmtree(cluster.dir, ignore_errors=True)
        else:
            print(f"\n{name}: kept for inspection in {cluster.dir}")

    request.addfinalizer(finish)
    return cluster


def other_members(cluster: Cluster, group: int, pod) -> list:
    return [p for p in cluster.group(group) if p is not pod]


def wait_new_leader(cluster: Cluster, group: int, old, timeout: float = 90):
    """The group's writable leader once it is not `old`."""
    def check():
        pod = cluster.writable_leader(group)
        return pod if pod is not None and pod is not old else None
    return cluster.wait_for(f"a new leader in group {group}", check, timeout)


SYNC_ROLES = ("sync_standby", "quorum_standby")


def wait_promotable(cluster: Cluster, group: int, timeout: float = 120) -> None:
    """A replica of the group may take over if its leader is lost now. With synchronous or
    quorum replication (SYNCHRONOUS_MODE; quorum by default with Citus) Patroni promotes only a
    member its /sync key names, which it updates a loop after the replica streams: a leader
    killed before that leaves the group without a candidate until it is back."""
    def check():
        leader = cluster.writable_leader(group)
        _, config = leader.api("/config")
        if not (config or {}).get("synchronous_mode"):
            return True
        _, body = leader.api("/cluster")
        roles = {m.get("name"): m.get("role") for m in (body or {}).get("members", [])}
        return any(roles.get(p.name) in SYNC_ROLES for p in other_members(cluster, group, leader))
    cluster.wait_for(f"a replica of group {group} that may be promoted", check, timeout)


def wait_replica_streaming(cluster: Cluster, pod, timeout: float = 120) -> None:
    def check():
        leader = cluster.writable_leader(pod.group)
        return (leader is not None and leader is not pod
                and pod.name in cluster.streaming_replicas(leader)
                and pod.patroni_state().get("role") == "replica")
    cluster.wait_for(f"{pod.name} streaming as a replica", check, timeout)


def assert_one_leader_per_group_streaming(cluster: Cluster) -> None:
    """Patroni reports exactly one leader per group, every other member a replica that
    streams from it."""
    for g in cluster.groups:
        roles = {p.name: p.patroni_state().get("role") for p in cluster.group(g)}
        leaders = [n for n, r in roles.items() if r in PRIMARY_ROLES]
        assert len(leaders) == 1, f"group {g}: roles {roles}"
        leader = cluster.pods[leaders[0]]
        replicas = {n for n in roles if n != leaders[0]}
        assert replicas <= cluster.streaming_replicas(leader), f"group {g}"
        assert all(roles[n] == "replica" for n in replicas), f"group {g}: roles {roles}"


class PairWriter(Writer):
    """Transaction n inserts ids 2n and 2n+1 (on different shards for most n when the table is
    distributed by id) with pair = n through the group's primary (libpq picks the writable
    member); remembers, per n, when the attempt started and when its COMMIT was acknowledged
    (wall clock, time.time()), so a restore can be checked against a point in time."""

    def __init__(self, cluster: Cluster, table: str, group: int = 0, pause: float = 0.0):
        super().__init__(cluster, group, pause)
        self.table = table

    def write(self, cur, n: int) -> None:
        cur.execute(f"INSERT INTO {self.table} VALUES (%s, %s), (%s, %s)",
                    (2 * n, n, 2 * n + 1, n))


def execute(pod, sql: str, params=None, dbname=None):
    with pod.connect(dbname=dbname) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def write_resumes(cluster: Cluster, note: str, group: int = 0, table: str = "e2e_writes",
                  timeout: float = 60) -> None:
    """An INSERT of note into table (columns id serial, note text) through the group's
    current leader succeeds within timeout."""
    def write():
        execute(cluster.writable_leader(group), f"INSERT INTO {table} (note) VALUES (%s)",
                (note,))
        return True
    cluster.wait_for(f"a successful write in group {group} ({note})", write, timeout)


def gone_without_trace(pod, pid_ns: str, timeout: float = 10) -> None:
    """Nothing of the pod is left (zombies the host reaps a moment later aside)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs.in_namespace(pid_ns) if p.state != "Z"]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"{pod.name}: processes left in its PID namespace: {left}"


def lasting_zombies(pod, rounds: int = 3) -> list:
    """Zombies in the pod seen in every one of a few snapshots (a zombie reaped within a
    second is just a child that ended a moment ago)."""
    seen = None
    for i in range(rounds):
        zs = {(p.pid, p.start_ticks, p.comm) for p in pod.processes() if p.state == "Z"}
        seen = zs if seen is None else seen & zs
        if i + 1 < rounds:
            time.sleep(1)
    return sorted(seen)


def assert_pod_hygiene(cluster: Cluster) -> None:
    """No lasting zombie in any running pod; no password in any pod log."""
    problems = []
    for pod in cluster.pods.values():
        if pod.running():
            zs = lasting_zombies(pod)
            if zs:
                problems.append(f"{pod.name}: zombies {zs}")
    passwords = cluster.passwords() + cluster.backup_secrets()
    logs = sorted((cluster.dir / "logs").glob("*.log"))
    assert logs, "no pod logs found"
    for log in logs:
        text = log.read_text(errors="replace")
        for n, pw in enumerate(passwords):
            if pw in text:
                what = ("superuser password", "replication password", "REST API password",
                        "S3 secret key", "repository passphrase")[n]
                problems.append(f"{log.name}: contains the {what}")
    assert not problems, "; ".join(problems)
