"""Backups and point-in-time recovery (docs/backups.md, issue 13), against the suite's real S3
server (versitygw with TLS on loopback, localcluster/s3.py) and real pgBackRest.

With Citus (skips without): distributed, reference and local tables; a writer committing
cross-shard transactions; a backup; restore point R; more writes; a time T; restore point R2;
DROP TABLE. The source is then stopped (a restore needs only the repository) and restored
twice as new clusters: to R (every transaction acknowledged before R is there, none begun
after it, no half transaction; node health; writes and DDL; new backups in the new stanzas,
the source's repository untouched) and to T (lands on the latest restore point at or before
T). A replica rebuilt from scratch is made from the repository. Without Citus: a group
restored to a time. Faults: wrong S3 key, the S3 server down for a minute, a wrong passphrase
and an unknown target on restore.
"""
import datetime
import re
import shutil
import time

import pytest

from conftest import (CITUS, CITUS_WHY, PairWriter, assert_pod_hygiene, execute,
                      needs_backup_tools, new_cluster, other_members, wait_replica_streaming)
from localcluster import cluster as lc

pytestmark = needs_backup_tools

# No automatic restore points and no schedules in the sources: the test decides what exists.
QUIET = {"RESTORE_POINT_INTERVAL": "0", "BACKUP_FULL_SCHEDULE": "off",
         "BACKUP_DIFF_SCHEDULE": "off", "BACKUP_ARCHIVE_TIMEOUT": "10"}
SEGMENT = re.compile(r"/([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-[0-9a-f]{40}")


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float:
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def log_lines(pod, *words) -> list:
    return [line for line in pod.log_text(whole=True).splitlines() if all(w in line for w in words)]


def wait_log(cluster, pods, *words, timeout=180) -> str:
    """The first log line of any of pods that holds every word."""
    def check():
        for pod in pods:
            found = log_lines(pod, *words)
            if found:
                return found[0]
        return None
    return cluster.wait_for(f"a log line with {words} in {[p.name for p in pods]}", check, timeout,
                            interval=1)


def citus_init(pod, *args, timeout=600):
    """citus-init ARGS in the pod, like kubectl exec (root, the container's environment)."""
    return pod.exec([pod.command[0], *args], timeout=timeout)


def pairs(pod, table: str) -> tuple:
    """({n whose both rows are there}, {n with only one row})."""
    rows = execute(pod, f"SELECT pair, count(*) FROM {table} GROUP BY pair")
    return {p for p, c in rows if c == 2}, {p for p, c in rows if c != 2}


def switch_and_wait_archived(cluster, group: int, timeout: float = 120) -> str:
    """pg_switch_wal() on the group's primary and wait until that segment is archived."""
    leader = cluster.writable_leader(group)
    (seg,), = execute(leader, "SELECT pg_walfile_name(pg_switch_wal())", dbname="postgres")
    cluster.wait_for(f"{seg} archived in group {group}", lambda: execute(
        leader, "SELECT last_archived_wal >= %s FROM pg_stat_archiver", (seg,),
        dbname="postgres")[0][0], timeout, interval=1)
    return seg


def repo_snapshot(cluster, name: str) -> dict:
    """Every file of a cluster's repository on the S3 server's disk: path -> (size, mtime)."""
    root = cluster.s3.repo_dir(name)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def wait_no_member_runs(cluster, timeout: float = 240) -> None:
    cluster.wait_for("every member of the failed restore to end",
                     lambda: not any(p.running() for p in cluster.pods.values()), timeout, 1)


def assert_not_started(cluster) -> None:
    """No half-started cluster: no member ever served as primary, no member runs, and no
    PGDATA with a PostgreSQL data directory in it is left."""
    for pod in cluster.pods.values():
        assert not pod.running(), f"{pod.name} still runs"
        text = pod.log_text(whole=True)
        assert "promoted self to leader" not in text and "no action. I am" not in text, pod.name
        assert not (pod.data_dir / "pgroot" / "data" / "PG_VERSION").exists(), pod.name


# == With Citus: restore points, consistent restores ==========================================

@pytest.fixture(scope="module")
def source(request):
    if not CITUS:
        pytest.skip(CITUS_WHY)
    c = new_cluster(request, "e2ebkp", "127.0.42", {0: 1, 1: 2, 2: 1}, backup=True, env=QUIET)
    c.start()
    c.wait_ready(240)
    c.wait_streaming(240)
    return c


class History:
    """What the Citus source went through, for the restore tests."""
    writer = None
    r_name = r_t0 = r_t1 = None
    t_target = None
    r2_name = None
    points = None            # [(name, time)] the source's catalogue lists at the end
    ref_before = local_before = None
    repo_after = None


@pytest.fixture(scope="module")
def history(source):
    """The scenario on the source, once: tables, writer, backup, R, T, R2, DROP TABLE; then
    the source is stopped."""
    h = History()
    for g in source.groups:  # the agent's first full backup first (a second one is refused)
        wait_log(source, source.group(g), "backup finished", f"stanza=e2ebkp-{g}", timeout=300)
    coord = source.writable_leader(0)
    for sql in ("CREATE TABLE acked_pairs (id bigint PRIMARY KEY, pair bigint NOT NULL)",
                "SELECT create_distributed_table('acked_pairs', 'id', shard_count => 8)",
                "CREATE TABLE ref_items (id int PRIMARY KEY, note text)",
                "SELECT create_reference_table('ref_items')",
                "CREATE TABLE local_notes (id int PRIMARY KEY, note text)",
                "INSERT INTO ref_items SELECT g, 'before' FROM generate_series(1, 50) g",
                "INSERT INTO local_notes SELECT g, 'before' FROM generate_series(1, 50) g"):
        execute(coord, sql)
    h.writer = PairWriter(source, "acked_pairs")
    h.writer.start()
    try:
        h.writer.wait_more(30, 60)
        for g in source.groups:
            leader = source.writable_leader(g)
            res = citus_init(leader, "backup", "--type", "full")
            assert res.returncode == 0, f"group {g}: {res.stdout}{res.stderr}"
            assert "backup finished" in res.stderr + res.stdout, res.stderr
        h.writer.wait_more(30, 60)
        h.r_t0 = time.time()
        res = citus_init(source.writable_leader(0), "restore-point", "e2e-r")
        h.r_t1 = time.time()
        assert res.returncode == 0, res.stdout + res.stderr
        h.r_name = res.stdout.strip().splitlines()[-1]
        assert h.r_name == "e2e-r"
        execute(coord, "INSERT INTO ref_items SELECT g, 'after' FROM generate_series(51, 60) g")
        execute(coord, "INSERT INTO local_notes SELECT g, 'after' FROM generate_series(51, 60) g")
        h.writer.wait_more(30, 60)
        time.sleep(1.1 - time.time() % 1)  # T: a whole second after R, before R2
        h.t_target = rfc3339(time.time())
        time.sleep(1.1)
        h.writer.wait_more(20, 60)
        res = citus_init(source.writable_leader(0), "restore-point")
        assert res.returncode == 0, res.stdout + res.stderr
        h.r2_name = res.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"citus-\d{8}T\d{6}Z", h.r2_name), h.r2_name
        h.writer.wait_more(20, 60)
    finally:
        h.writer.stop()
    execute(coord, "DROP TABLE acked_pairs")
    res = citus_init(source.writable_leader(0), "restore-points")
    assert res.returncode == 0, res.stderr
    h.points = [tuple(line.split("\t")) for line in res.stdout.splitlines()]
    source.stop()  # the restores need only the repository
    h.repo_after = repo_snapshot(source, "e2ebkp")
    return h


def restored_cluster(request, name, subnet, target, groups=None, env=None):
    c = new_cluster(request, name, subnet, groups or {0: 1, 1: 1, 2: 1}, backup=True,
                    restore_from="e2ebkp", restore_target=target, env=env or {})
    return c


def test_backups_and_stanzas_on_start(source):
    """Each group's leader creates its stanza and, finding no backup, makes a full one; the
    last success is in citus_init.backup_history."""
    for g in source.groups:
        leader = source.writable_leader(g)
        wait_log(source, [leader], "stanza ready", f"stanza=e2ebkp-{g}", timeout=120)
        wait_log(source, [leader], "backup finished", f"stanza=e2ebkp-{g}", timeout=300)
        (last,), = execute(leader, "SELECT max(finished_at) FROM citus_init.backup_history "
                                   "WHERE status = 'ok'")
        assert last is not None, f"group {g}: no successful backup in backup_history"
        keys = source.s3.list_keys(f"e2ebkp/backup/e2ebkp-{g}/")
        assert any(k.endswith("/backup.manifest") for k in keys), keys[:5]


def test_replica_built_from_repository(source):
    """A replica whose data is gone is rebuilt by pgBackRest from the repository (the first
    create_replica_method), not by pg_basebackup; Patroni logs which method it used."""
    wait_log(source, source.group(1), "backup finished", "stanza=e2ebkp-1", timeout=300)
    leader = source.writable_leader(1)
    replica, = other_members(source, 1, leader)
    replica.stop()
    shutil.rmtree(replica.data_dir / "pgroot", ignore_errors=True)
    replica.start()
    wait_replica_streaming(source, replica, timeout=300)
    text = replica.log_text()
    assert "replica has been created using pgbackrest" in text, text[-3000:]


def test_restore_to_restore_point(request, source, history):
    h = history
    c = restored_cluster(request, "e2ersr", "127.0.43", h.r_name,
                         env={"RESTORE_POINT_INTERVAL": "0", "BACKUP_FULL_SCHEDULE": "off",
                              "BACKUP_DIFF_SCHEDULE": "* * * * *"})
    started = time.monotonic()
    c.start()
    c.wait_ready(600)
    print(f"restored to {h.r_name} and ready in {time.monotonic() - started:.1f}s")
    for g in c.groups:
        assert log_lines(c.writable_leader(g), "restore target resolved"), f"group {g}"
    coord = c.writable_leader(0)
    present, half = pairs(coord, "acked_pairs")
    assert not half, f"transactions with one of their two rows: {sorted(half)[:10]}"
    missing = sorted(h.writer.acked_before(h.r_t0) - present)
    assert not missing, f"{len(missing)} committed before R are missing, e.g. {missing[:10]}"
    later = sorted(present & h.writer.started_after(h.r_t1))
    assert not later, f"{len(later)} begun after R are there, e.g. {later[:10]}"
    assert len(present) >= 60
    assert execute(coord, "SELECT count(*), max(note) FROM ref_items") == [(50, "before")]
    assert execute(coord, "SELECT count(*), max(note) FROM local_notes") == [(50, "before")]
    assert execute(coord, "SELECT bool_and(result) FROM citus_check_cluster_node_health()") \
        == [(True,)]
    # the source's restore points, listed from the new cluster with the source gone
    res = citus_init(coord, "restore-points", "--cluster", "e2ebkp")
    assert res.returncode == 0, res.stderr
    assert [tuple(line.split("\t")) for line in res.stdout.splitlines()] == h.points
    nodes = [r[0] for r in execute(coord, "SELECT nodename FROM pg_dist_node")]
    assert all(".e2ersr-" in n for n in nodes), nodes
    # the workers' rows were renamed and made inactive by restore-bootstrap (nothing reached
    # the source), then activated by the agent once Patroni pointed them at the new leaders
    assert execute(coord, "SELECT count(*) FROM pg_dist_node WHERE NOT isactive") == [(0,)]
    for g in c.groups:
        if g:
            wait_log(c, c.group(0), "restored worker group rejoined the cluster", f"group={g}",
                     timeout=60)
    assert execute(coord, "SELECT count(*) FROM citus_init.restored_nodes") == [(0,)], (
        execute(coord, "SELECT * FROM citus_init.restored_nodes"),
        execute(coord, "SELECT nodeid, groupid, nodename, noderole, isactive FROM pg_dist_node"))
    # new writes and DDL
    execute(coord, "INSERT INTO acked_pairs VALUES (-1, -1), (-2, -1)")
    execute(coord, "ALTER TABLE acked_pairs ADD COLUMN note text")
    execute(coord, "CREATE TABLE after_restore (id bigint PRIMARY KEY)")
    execute(coord, "SELECT create_distributed_table('after_restore', 'id')")
    execute(coord, "INSERT INTO after_restore SELECT generate_series(1, 100)")
    assert execute(coord, "SELECT count(*) FROM after_restore") == [(100,)]
    # its own stanzas: a first full backup each, then the schedule (a diff every minute)
    for g in c.groups:
        wait_log(c, c.group(g), "backup finished", f"stanza=e2ersr-{g}", "type=full", timeout=300)
        assert c.s3.list_keys(f"e2ersr/archive/e2ersr-{g}/"), f"group {g}: nothing archived"
    wait_log(c, c.group(0), "backup finished", "stanza=e2ersr-0", "type=diff", timeout=180)
    assert repo_snapshot(c, "e2ebkp") == h.repo_after, "the restore wrote into the source's repository"
    assert_pod_hygiene(c)


def test_restore_to_time_lands_on_latest_restore_point_before(request, source, history):
    h = history
    c = restored_cluster(request, "e2erst", "127.0.44", h.t_target)
    listed = h.points
    names = [n for n, _ in listed]
    assert h.r_name in names and h.r2_name in names, listed
    expected = max((parse_rfc3339(t), n) for n, t in listed if t <= h.t_target)[1]
    c.start()
    c.wait_ready(600)
    line = log_lines(c.writable_leader(0), "restore target resolved")[0]
    assert expected in line, line
    present, half = pairs(c.writable_leader(0), "acked_pairs")
    assert not half, sorted(half)[:10]
    if expected == h.r_name:
        assert h.writer.acked_before(h.r_t0) <= present
        assert not present & h.writer.started_after(h.r_t1)
    assert not present & h.writer.started_after(parse_rfc3339(h.t_target) + 1)


def test_unknown_restore_point_is_refused(request, source, history):
    c = restored_cluster(request, "e2ersu", "127.0.45", "no-such-point", groups={0: 1})
    c.start()
    wait_no_member_runs(c)
    assert log_lines(c.pods["e2ersu-0-0"], "RESTORE_TARGET", "not in the catalogue"), \
        c.pods["e2ersu-0-0"].log_text()[-3000:]
    assert_not_started(c)


def test_zz_source_hygiene(source):
    assert_pod_hygiene(source)


# == Without Citus: a group restored to a time ===============================================

@pytest.fixture(scope="module")
def plain(request):
    c = new_cluster(request, "e2epitr", "127.0.46", {0: 1}, backup=True, citus=False, env=QUIET)
    c.start()
    c.wait_ready(240)
    wait_log(c, c.group(0), "backup finished", "stanza=e2epitr-0", timeout=300)
    execute(c.writable_leader(0), "CREATE TABLE acked_pairs (id bigint PRIMARY KEY, "
                                  "pair bigint NOT NULL)")
    return c


@pytest.fixture(scope="module")
def plain_history(plain):
    writer = PairWriter(plain, "acked_pairs", pause=0.01)
    writer.start()
    try:
        writer.wait_more(50, 60)
        time.sleep(1.1 - time.time() % 1)
        target = rfc3339(time.time())
        time.sleep(1.1)
        writer.wait_more(50, 60)
    finally:
        writer.stop()
    switch_and_wait_archived(plain, 0)
    return writer, target


def test_without_citus_restore_a_group_to_a_time(request, plain, plain_history):
    writer, target = plain_history
    t = parse_rfc3339(target)
    c = new_cluster(request, "e2epitr2", "127.0.47", {0: 1}, backup=True, citus=False,
                    restore_from="e2epitr", restore_target=target)
    c.start()
    c.wait_ready(600)
    present, half = pairs(c.writable_leader(0), "acked_pairs")
    assert not half
    missing = sorted(writer.acked_before(t) - present)
    assert not missing, f"{len(missing)} committed before {target} missing, e.g. {missing[:10]}"
    later = sorted(present & writer.started_after(t))
    assert not later, f"{len(later)} begun after {target} are there, e.g. {later[:10]}"
    assert writer.acked_before(t) and writer.started_after(t)
    execute(c.writable_leader(0), "INSERT INTO acked_pairs VALUES (-1, -1)")
    wait_log(c, c.group(0), "backup finished", "stanza=e2epitr2-0", timeout=300)
    assert_pod_hygiene(c)


def test_wrong_passphrase_on_restore(request, plain, plain_history):
    c = new_cluster(request, "e2epitrw", "127.0.48", {0: 1}, backup=True, citus=False,
                    restore_from="e2epitr", restore_target="latest")
    c.prepare()
    wrong = c.dir / "wrong-source-keys"
    shutil.copytree(plain.s3.keys_dir("e2epitr"), wrong)
    (wrong / "cipher-pass").write_text("not-the-passphrase-of-that-repository")
    lc.share_with_postgres(wrong)  # as the chart mounts secrets (Patroni's bootstrap reads them)
    for pod in c.pods.values():
        pod.volumes[lc.POD_RESTORE_SECRETS] = ("bind", str(wrong), "ro")
    c.start()
    wait_no_member_runs(c)
    pod = c.pods["e2epitrw-0-0"]
    assert log_lines(pod, "restore failed"), pod.log_text()[-3000:]
    assert_not_started(c)


# == Faults: the repository cannot be reached =================================================

def archiver(pod) -> tuple:
    (row,) = execute(pod, "SELECT archived_count, failed_count, last_archived_wal, "
                          "last_failed_wal FROM pg_stat_archiver", dbname="postgres")
    return row


def test_wrong_s3_key(request):
    c = new_cluster(request, "e2ebkey", "127.0.49", {0: 1}, backup=True, citus=False, env=QUIET)
    c.prepare()
    wrong = c.dir / "wrong-keys"
    shutil.copytree(c.s3.keys_dir("e2ebkey"), wrong)
    (wrong / "s3-key-secret").write_text("wrong-secret-key-wrong-secret-key")
    lc.share_with_postgres(wrong)
    for pod in c.pods.values():
        pod.volumes[lc.POD_BACKUP_SECRETS] = ("bind", str(wrong), "ro")
    c.start()
    c.wait_ready(240)
    pod = c.writable_leader(0)
    line = wait_log(c, [pod], "stanza-create failed", timeout=180)
    assert "403" in line or "SignatureDoesNotMatch" in line or "Forbidden" in line, line
    # the database keeps serving; the archive backlog is visible
    execute(pod, "CREATE TABLE t (id int)")
    execute(pod, "INSERT INTO t SELECT generate_series(1, 1000)")
    execute(pod, "SELECT pg_switch_wal()", dbname="postgres")
    c.wait_for("failed archiving in pg_stat_archiver", lambda: archiver(pod)[1] > 0, 60, 1)
    assert archiver(pod)[2] is None  # nothing archived
    res = citus_init(pod, "backup", "--type", "full", timeout=300)
    assert res.returncode != 0, res.stdout
    assert "backup failed" in res.stderr + res.stdout + pod.log_text(), res.stderr
    assert execute(pod, "SELECT status FROM citus_init.backup_history ORDER BY started_at DESC "
                        "LIMIT 1") == [("failed",)]
    assert_pod_hygiene(c)


def test_s3_down_for_a_minute_loses_no_wal(request):
    c = new_cluster(request, "e2ebout", "127.0.50", {0: 1}, backup=True, citus=False, env=QUIET)
    c.start()
    c.wait_ready(240)
    wait_log(c, c.group(0), "backup finished", "stanza=e2ebout-0", timeout=300)
    pod = c.writable_leader(0)
    execute(pod, "CREATE TABLE acked_pairs (id bigint PRIMARY KEY, pair bigint NOT NULL)")
    first = switch_and_wait_archived(c, 0)
    writer = PairWriter(c, "acked_pairs", pause=0.01)
    writer.start()
    try:
        c.s3.kill()
        outage = time.monotonic()
        while time.monotonic() - outage < 60:
            time.sleep(10)
            execute(pod, "SELECT pg_switch_wal()", dbname="postgres")
        failed = archiver(pod)[1]
        assert failed > 0, "archiving did not fail while the S3 server was down"
        writer.wait_more(10, 30)  # the database kept serving
        c.s3.start()
    finally:
        writer.stop()
    last = switch_and_wait_archived(c, 0, timeout=300)
    keys = c.s3.list_keys("e2ebout/archive/e2ebout-0/")
    segs = sorted({(int(m[1], 16), int(m[2], 16) * 256 + int(m[3], 16))
                   for k in keys for m in [SEGMENT.search("/" + k.rsplit("/", 1)[-1])] if m})
    lo = (int(first[:8], 16), int(first[8:16], 16) * 256 + int(first[16:], 16))
    hi = (int(last[:8], 16), int(last[8:16], 16) * 256 + int(last[16:], 16))
    wanted = {(lo[0], n) for n in range(lo[1], hi[1] + 1)}
    lost = sorted(wanted - set(segs))
    assert not lost, f"WAL segments missing from the repository: {lost[:10]}"
    assert hi[1] - lo[1] >= 6, (first, last)
    assert_pod_hygiene(c)
