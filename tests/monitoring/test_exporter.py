"""postgres_exporter with the project's queries file, logged in as the monitoring role,
against a real coordinator, worker and hot standby (tests/monitoring/run)."""
import datetime
import os
import re
import subprocess
import time

import psycopg2
import pytest

from conftest import ADDR, EXPORTER_PIDS, EXPORTER_PORTS, WORK, needs_citus, prom_query, scrape, series, wait_for


def scraped_twice(exporter):
    """Samples of a scrape after at least one earlier one (the first scrape of a new
    connection also detects the server version)."""
    scrape(exporter)
    return scrape(exporter)


def value(samples, name, **labels):
    found = series(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: expected one series, got {found}"
    return found[0][1]


def error_lines(exporter):
    with open(os.path.join(WORK, f"exporter-{exporter}.log")) as f:
        return [line for line in f if "level=error" in line or "level=warn" in line or "Error running query" in line]


@pytest.mark.parametrize("exporter", sorted(EXPORTER_PORTS))
def test_no_errors_on_any_role(exporter):
    samples = scraped_twice(exporter)
    assert value(samples, "pg_up") == 1
    assert value(samples, "pg_exporter_last_scrape_error") == 0
    assert value(samples, "pg_exporter_user_queries_load_error") == 0
    assert error_lines(exporter) == []


def test_standby_is_in_recovery_and_reports_slots():
    samples = scraped_twice("standby")
    # the built-in slot query would fail here; ours reports the standby's slot
    assert [l["slot_name"] for l, _ in series(samples, "pg_replication_slots_active")] == ["member_slot"]
    out = subprocess.run(["psql", "-X", "-At", "-h", ADDR, "-p", "5434", "-U", "citus_monitor", "-d", "citus",
                          "-c", "SELECT pg_is_in_recovery()"], capture_output=True, text=True)
    assert out.stdout.strip() == "t", out.stderr


@pytest.mark.parametrize("exporter", ["standby", "nocitus"])
def test_primary_only_metrics_absent(exporter):
    names = {n for n, _, _ in scraped_twice(exporter)}
    for prefix in ("citus_node_", "citus_group_", "citus_local_shards_", "citus_rebalance_",
                   "citus_init_backup_", "citus_init_restore_point_"):
        assert not [n for n in names if n.startswith(prefix)], f"{exporter} exports {prefix}*"


def test_database_without_citus_exports_no_citus_metrics():
    names = {n for n, _, _ in scraped_twice("nocitus")}
    assert not [n for n in names if n.startswith("citus_") and not n.startswith("citus_init_extension")]
    assert series(scrape("nocitus"), "citus_init_extension_installed", extname="plpgsql")


def test_backup_and_restore_point_status():
    samples = scraped_twice("coordinator")
    # rows inserted by tests/monitoring/run (docs/backups.md's tables)
    assert value(samples, "citus_init_backup_last_success_timestamp_seconds", stanza="mon-0") == 1767226200
    assert value(samples, "citus_init_backup_last_failure_timestamp_seconds", stanza="mon-0") == 1767312300
    assert value(samples, "citus_init_backup_last_success_size_bytes", stanza="mon-0") == 1000
    assert value(samples, "citus_init_backup_last_success_repo_size_bytes", stanza="mon-0") == 400
    assert value(samples, "citus_init_backup_succeeded", stanza="mon-0") == 1
    assert value(samples, "citus_init_backup_failed", stanza="mon-0") == 1
    assert value(samples, "citus_init_restore_point_last_available_timestamp_seconds") == 1767226500
    assert value(samples, "citus_init_restore_point_last_created_timestamp_seconds") == 1767226560
    assert value(samples, "citus_init_restore_point_available") == 1
    assert value(samples, "citus_init_restore_point_pending") == 1
    assert value(samples, "citus_init_restore_point_last_pause_ms") == 9


def test_missing_grant_means_no_rows_not_an_error():
    """Before monitoring-role.sql ran again after the agent created its tables, the role
    cannot read them: the metrics are absent, the scrape has no error."""
    def superuser(sql):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ADDR, "-p", "5432", "-U", "postgres",
                        "-d", "citus", "-c", sql], check=True, capture_output=True)
    revoked = time.time()
    superuser("REVOKE SELECT ON citus_init.backup_history FROM citus_monitor")
    try:
        samples = scraped_twice("coordinator")
        assert not [n for n, _, _ in samples if n.startswith("citus_init_backup_")]
        assert series(samples, "citus_init_restore_point_available")
        assert value(samples, "pg_exporter_last_scrape_error") == 0
    finally:
        superuser("GRANT SELECT ON citus_init.backup_history TO citus_monitor")
    assert series(scrape("coordinator"), "citus_init_backup_succeeded", stanza="mon-0")
    # A scrape (Prometheus' scrapes each second, or this test's) that checked the privilege
    # just before the REVOKE committed runs the inner query just after: that one error, in
    # that second, is the race of any privilege change under a running query, not the case.
    def racing_the_revoke(line):
        m = re.search(r"\bts=(\S+)Z", line)
        at = datetime.datetime.fromisoformat(m.group(1)).replace(
            tzinfo=datetime.timezone.utc).timestamp() if m else 0
        return "permission denied for table backup_history" in line and abs(at - revoked) < 2
    assert [line for line in error_lines("coordinator") if not racing_the_revoke(line)] == []


@needs_citus
def test_backup_status_of_a_worker_group():
    samples = scraped_twice("worker")
    assert [l["stanza"] for l, _ in series(samples, "citus_init_backup_last_success_timestamp_seconds")] == ["mon-1"]
    assert value(samples, "citus_init_backup_last_success_timestamp_seconds", stanza="mon-1") == 1767226800
    assert value(samples, "citus_init_backup_last_failure_timestamp_seconds", stanza="mon-1") == 0
    assert value(samples, "citus_init_backup_last_success_size_bytes", stanza="mon-1") == 2000
    # restore points live on the coordinator only
    assert not series(samples, "citus_init_restore_point_available")


@pytest.fixture(scope="module")
def rebalanced():
    """The rebalance tests/monitoring/run started, finished: its metrics on the coordinator."""
    def finished():
        samples = scrape("coordinator")
        tasks = series(samples, "citus_rebalance_tasks")
        done = series(samples, "citus_rebalance_tasks_done")
        running = series(samples, "citus_rebalance_running")
        if tasks and done and running and running[0][1] == 0 and tasks[0][1] > 0 and done[0][1] == tasks[0][1]:
            return samples
        return None
    return wait_for("the rebalance to finish", finished, timeout=90)


@needs_citus
def test_coordinator_sees_both_nodes_active():
    samples = scraped_twice("coordinator")
    nodes = {(l["groupid"], l["nodeport"]): v for l, v in series(samples, "citus_node_active", noderole="primary")}
    assert nodes == {("0", "5432"): 1, ("1", "5433"): 1}
    assert value(samples, "citus_node_should_have_shards", groupid="1") == 1
    assert value(samples, "citus_node_metadata_synced", groupid="1") == 1


@needs_citus
def test_rebalance_progress(rebalanced):
    samples = rebalanced
    assert value(samples, "citus_rebalance_running") == 0
    tasks = value(samples, "citus_rebalance_tasks")
    assert tasks >= 10  # about half of the 32 shards moved to the coordinator
    assert value(samples, "citus_rebalance_tasks_done") == tasks
    assert value(samples, "citus_rebalance_tasks_failed") == 0
    assert value(samples, "citus_rebalance_last_started_timestamp_seconds") > 1.7e9
    # Prometheus, scraping each second, saw it running
    seen = prom_query('max_over_time(citus_rebalance_running{pod="mon-0-0"}[10m])')
    assert seen and float(seen[0]["value"][1]) == 1


@needs_citus
def test_shard_placements_and_bytes_per_group(rebalanced):
    coord = scraped_twice("coordinator")
    worker = scraped_twice("worker")
    per_group = {l["groupid"]: v for l, v in series(coord, "citus_group_placements")}
    assert set(per_group) == {"0", "1"}
    assert sum(per_group.values()) == 32  # citus.shard_count of the distributed table
    assert per_group["0"] == value(rebalanced, "citus_rebalance_tasks")
    assert value(worker, "citus_local_shards_placements", groupid="1") == per_group["1"]
    assert value(coord, "citus_local_shards_placements", groupid="0") == per_group["0"]
    # 20000 rows of 200 bytes, split between the two groups
    total = value(worker, "citus_local_shards_bytes", groupid="1") + value(coord, "citus_local_shards_bytes", groupid="0")
    assert total > 4_000_000
    assert value(worker, "citus_local_shards_bytes", groupid="1") > 0
    assert not series(worker, "citus_node_active"), "a worker must not report pg_dist_node"


@needs_citus
def test_a_locked_shard_is_skipped_not_waited_for(rebalanced):
    """A session holds ACCESS EXCLUSIVE on one of the worker's shards (as a rewriting ALTER
    TABLE would): the scrape neither waits nor fails, and counts the shard as locked."""
    shard = subprocess.run(
        ["psql", "-X", "-At", "-h", ADDR, "-p", "5433", "-U", "postgres", "-d", "citus", "-c",
         "SELECT shard_name('events'::regclass, shardid) FROM pg_dist_shard JOIN pg_dist_placement USING (shardid)"
         " WHERE groupid = 1 ORDER BY shardid LIMIT 1"], capture_output=True, text=True, check=True).stdout.strip()
    locker = psycopg2.connect(host=ADDR, port=5433, user="postgres", dbname="citus")
    try:
        with locker.cursor() as cur:
            cur.execute("SET LOCAL citus.enable_manual_changes_to_shards TO on")
            cur.execute(f"LOCK TABLE {shard} IN ACCESS EXCLUSIVE MODE")  # the transaction stays open
        samples = scraped_twice("worker")
        assert value(samples, "citus_local_shards_locked", groupid="1") == 1
        assert value(samples, "citus_local_shards_bytes", groupid="1") > 0
        assert value(samples, "pg_exporter_last_scrape_error") == 0
        assert value(samples, "pg_exporter_last_scrape_duration_seconds") < 1
    finally:
        locker.rollback()
        locker.close()
    assert value(scrape("worker"), "citus_local_shards_locked", groupid="1") == 0
    assert error_lines("worker") == []


@needs_citus
def test_stat_counters_and_connection_pool():
    samples = scraped_twice("coordinator")
    for counter in ("connection_establishment_succeeded", "connection_establishment_failed",
                    "connection_reused", "query_execution_single_shard", "query_execution_multi_shard"):
        assert value(samples, f"citus_stat_counters_{counter}") >= 0
    # the monitoring role's EXECUTE grant on citus_remote_connection_stats() applies
    assert series(samples, "citus_remote_connections_connections", port="5433")


@needs_citus
def test_monitoring_role_reads_statistics_not_data():
    def psql(sql):
        # the role's CONNECTION LIMIT 5 is shared with the two exporters on this server and
        # the connections Citus opens for their queries: a full slot is retried, not judged
        for _ in range(20):
            res = subprocess.run(["psql", "-X", "-At", "-h", ADDR, "-p", "5432", "-U", "citus_monitor",
                                  "-d", "citus", "-c", sql], capture_output=True, text=True)
            if "too many connections for role" not in res.stderr:
                return res
            time.sleep(0.5)
        return res
    denied = psql("SELECT count(*) FROM public.events")
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    assert psql("CREATE TABLE public.x (i int)").returncode != 0
    assert psql("SELECT count(*) FROM pg_stat_activity WHERE query IS NOT NULL").returncode == 0
    assert psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").stdout.strip() == "f"


def test_exporter_cost(capsys):
    """Not a limit, a measurement: resident memory of each exporter and the CPU time one scrape
    costs it once warm (20 scrapes in a row; Prometheus scrapes every second meanwhile)."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    for name, pid in sorted(EXPORTER_PIDS.items()):
        before, scrapes_before = cpu_seconds(pid), value(scrape(name), "pg_exporter_scrapes_total")
        for _ in range(20):
            scrape(name)
        after, scrapes_after = cpu_seconds(pid), value(scrape(name), "pg_exporter_scrapes_total")
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        per_scrape = 1000 * (after - before) / (scrapes_after - scrapes_before)
        with capsys.disabled():
            print(f"\nexporter {name}: {per_scrape:.1f} ms CPU per scrape "
                  f"({scrapes_after - scrapes_before:.0f} scrapes), {rss / 1024:.1f} MiB RSS")
        assert rss < 200 * 1024
