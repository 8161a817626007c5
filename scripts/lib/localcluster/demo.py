"""scripts/demo: the chart's default shape as simulated pods on this machine.

    scripts/demo [up]                  start (or complete) the cluster, print how to connect
    scripts/demo status                member, group, role, state, address
    scripts/demo psql [ARGS...]        psql on the current coordinator primary
    scripts/demo backup                a full backup of every group now, then a restore point
    scripts/demo restore-points        the restore points the backups hold (name, time)
    scripts/demo restore TARGET [--as NAME]
                                       a cluster restored to TARGET (a restore point name, an
                                       RFC 3339 UTC time or latest): beside this one as NAME,
                                       or in place of this one (its data is deleted first)
    scripts/demo workers N [--no-rebalance]
                                       set the number of worker groups (Citus): new groups
                                       start and take their share of the shards (citus-init
                                       rebalance --wait); removed groups (the highest) are
                                       drained first, then stopped, deleted and removed from
                                       pg_dist_node; a refused drain changes nothing
    scripts/demo rollout               restart every member in the update order: worker groups
                                       first, the coordinator last; in each group the replicas
                                       one by one, then a switchover to one of them, then the
                                       old primary (one leader change per group, no failover)
    scripts/demo metrics               Prometheus' URL (it scrapes every pod, rules loaded)
    scripts/demo down [--purge]        stop everything started; --purge also deletes the data
                                       and the cluster's backups
    scripts/demo --cluster NAME CMD    any of these for the cluster NAME (default citusdemo)

DEMO_CITUS=auto|true|false (default auto: Citus when the citus extension is installed) picks
the mode of a new cluster; without Citus each group is its own Patroni HA cluster (scope
<name>-<group>) whose leader creates the extensions. DEMO_BACKUP=false starts a new cluster
without backups (default: WAL archiving and backups to the local S3 server). Both are
recorded with the cluster (run/<name>/cluster.json), as are its addresses.
DEMO_METRICS=false starts the cluster without metrics (default: every pod runs
postgres_exporter and serves citus-init's metrics, and Prometheus scrapes them); up decides
it whenever the cluster's pods are not running, and records it.
"""
import json
import os
import re
import sys
import time

from . import metrics, paths, s3
from .cluster import Cluster, ClusterError, ClusterSpec, atomic_write

USAGE = __doc__.split("\n\n", 1)[1]
DEFAULT_NAME = ClusterSpec.name
DEFAULT_SUBNET = ClusterSpec.subnet
EXTRA_SUBNETS = [f"127.0.{n}" for n in range(11, 20)]  # other demo clusters (tests use 21+)
SPEC_FILE = "cluster.json"  # in the cluster's directory, written by up and restore
MODE_FILE = "citus-mode"    # the mode file of clusters made before cluster.json
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def say(msg: str) -> None:
    print(msg, flush=True)


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rel(path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# -- which cluster, in which shape ---------------------------------------------------------

def recorded(name: str):
    """What up or restore recorded for the cluster NAME, or None."""
    d = paths.RUN / name
    try:
        return json.loads((d / SPEC_FILE).read_text())
    except FileNotFoundError:
        pass
    except ValueError as e:
        raise ClusterError(f"{rel(d / SPEC_FILE)} is not valid JSON: {e}") from None
    try:
        mode = (d / MODE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return {"citus": {"true": True, "false": False}.get(mode), "subnet": DEFAULT_SUBNET}


def free_subnet(name: str) -> str:
    if name == DEFAULT_NAME:
        return DEFAULT_SUBNET
    taken = set()
    if paths.RUN.is_dir():
        for d in paths.RUN.iterdir():
            rec = recorded(d.name) if d.is_dir() and d.name != name else None
            if rec:
                taken.add(rec.get("subnet"))
    for subnet in EXTRA_SUBNETS:
        if subnet not in taken:
            return subnet
    raise ClusterError(f"no free address range for another cluster ({EXTRA_SUBNETS[0]}-"
                       f"{EXTRA_SUBNETS[-1]} are taken): scripts/demo --cluster NAME down --purge "
                       "one of them")


def backup_setting() -> bool:
    raw = os.environ.get("DEMO_BACKUP", "").strip().lower() or "true"
    if raw not in ("true", "false"):
        raise ClusterError(f"DEMO_BACKUP={raw!r} is not understood; expected true (the "
                           "default) or false")
    return raw == "true"


METRICS_VAR = "DEMO_METRICS"


def metrics_setting():
    """DEMO_METRICS: True (the default, also when unset or empty) or False."""
    raw = os.environ.get(METRICS_VAR, "")
    value = raw.strip().lower() or "true"
    if value not in ("true", "false"):
        raise ClusterError(f"{METRICS_VAR}={raw!r} is not understood; expected true (the "
                           "default: exporters and Prometheus) or false")
    return value == "true"


def spec_for(name: str, rec: dict) -> ClusterSpec:
    groups = {int(g): n for g, n in rec.get("groups", {}).items()} or ClusterSpec().groups
    return ClusterSpec(name=name, subnet=rec["subnet"], groups=groups, citus=rec["citus"],
                       backup=rec.get("backup", True), restore_from=rec.get("restore_from"),
                       restore_target=rec.get("restore_target"),
                       metrics=rec.get("metrics", False))


def record(cluster: Cluster) -> None:
    spec = cluster.spec
    cluster.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cluster.dir, 0o700)
    rec = {"citus": spec.citus, "subnet": spec.subnet,
           "groups": {str(g): n for g, n in sorted(spec.groups.items())}, "backup": spec.backup,
           "restore_from": spec.restore_from, "restore_target": spec.restore_target,
           "metrics": spec.metrics}
    atomic_write(cluster.dir / SPEC_FILE, json.dumps(rec, indent=1) + "\n", 0o600)
    (cluster.dir / MODE_FILE).unlink(missing_ok=True)


def demo_cluster(name: str, cmd: str) -> tuple:
    """(Cluster, why this mode). `up` of a new cluster decides the mode from DEMO_CITUS and
    DEMO_BACKUP (and refuses to change the mode of an existing cluster); everything else uses
    what the cluster was created with. A DEMO_CITUS value that is not understood is an error
    for every command."""
    rec = recorded(name)
    was = rec.get("citus") if rec else None
    try:
        if cmd == "up" or was is None:
            enabled, why = paths.citus_mode()
        else:
            paths.citus_mode_setting()
            enabled, why = was, "recorded by scripts/demo up"
    except paths.CitusModeError as e:
        raise ClusterError(str(e)) from None
    if cmd == "up" and was is not None and was != enabled:
        have = "with" if was else "without"
        raise ClusterError(
            f"{rel(paths.RUN / name)} holds a cluster created {have} Citus, but {why}; its "
            f"data cannot change mode: scripts/demo{'' if name == DEFAULT_NAME else ' --cluster ' + name}"
            f" down --purge first (deletes the data), or start it as it was "
            f"(DEMO_CITUS={str(was).lower()})")
    if rec is None:
        if cmd != "up" and name != DEFAULT_NAME:
            raise ClusterError(f"no cluster {name!r} in {rel(paths.RUN)}: start one with "
                               f"scripts/demo --cluster {name} up")
        rec = {"subnet": free_subnet(name), "backup": backup_setting()}
    rec = dict(rec, citus=enabled)
    if cmd == "up":
        rec["metrics"] = metrics_for_up(name, rec)
    else:
        metrics_setting()  # a value that is not understood is an error for every command
    return Cluster(spec_for(name, rec)), why


def metrics_for_up(name: str, rec: dict) -> bool:
    """DEMO_METRICS decides while none of the cluster's pods runs (their environment and
    containers are set when they start); a running cluster keeps what it runs with, and
    DEMO_METRICS set to the other value then is an error."""
    wanted = metrics_setting()
    running = Cluster(spec_for(name, dict(rec, metrics=rec.get("metrics", False))))
    if not any(p.running() for p in running.pods.values()):
        return wanted
    have = rec.get("metrics", False)
    if os.environ.get(METRICS_VAR, "").strip() and wanted != have:
        raise ClusterError(
            f"{name} runs {'with' if have else 'without'} metrics; {METRICS_VAR}="
            f"{str(wanted).lower()} takes effect when its pods start: scripts/demo"
            f"{'' if name == DEFAULT_NAME else ' --cluster ' + name} down first")
    return have


def mode_text(enabled: bool, spec: ClusterSpec) -> str:
    if enabled:
        return f"the groups form one Citus cluster (CITUS_ENABLED=true, scope {spec.name})"
    scopes = ", ".join(f"{spec.name}-{g}" for g in sorted(spec.groups))
    return (f"each group runs as its own Patroni HA cluster (CITUS_ENABLED=false, scopes "
            f"{scopes}); every group's leader creates the extensions")


def backup_text(cluster: Cluster) -> str:
    if cluster.s3 is None:
        return "backups off (DEMO_BACKUP=false when it was created)"
    text = (f"WAL archiving and backups to https://{cluster.s3.endpoint} (versitygw on "
            f"{cluster.s3.ip}), bucket {cluster.s3.bucket}, path /{cluster.spec.name}, stanzas "
            + ", ".join(f"{cluster.spec.name}-{g}" for g in cluster.groups))
    if cluster.spec.restore_from:
        text += (f"; restored from {cluster.spec.restore_from} "
                 f"(RESTORE_TARGET={cluster.spec.restore_target})")
    return text


def metrics_text(cluster: Cluster) -> str:
    if not cluster.spec.metrics:
        return (f"metrics off ({METRICS_VAR}=false when it was started; scripts/demo"
                f"{cluster_flag(cluster)} down, then up without it turns them on)")
    prom = cluster.prometheus
    return (f"Prometheus {prom.url} ({'running' if prom.running() else 'stopped'}), scraping "
            f"every pod's exporter (:{metrics.EXPORTER_PORT}), Patroni and citus-init "
            f"(:{metrics.AGENT_PORT}) every {metrics.SCRAPE_INTERVAL}, alerts at "
            f"{prom.url}/alerts")


def print_table(rows: list, out=sys.stdout) -> None:
    cols = ["member", "group", "role", "state", "timeline", "address"]
    cells = [cols] + [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)


def psql_env(cluster: Cluster, pod) -> dict:
    env = dict(os.environ, PGHOST=pod.dns_name, PGHOSTADDR=pod.ip, PGPORT="5432",
               PGUSER="postgres", PGDATABASE=cluster.database,
               PGPASSFILE=str(cluster.pgpass_file), PGAPPNAME="demo-psql")
    env.pop("PGPASSWORD", None)
    if cluster.spec.ssl:
        env.update(PGSSLMODE=cluster.spec.ssl_mode,
                   PGSSLROOTCERT=str(cluster.certs_dir / "ca.crt"))
    return env


def cluster_flag(cluster: Cluster) -> str:
    return "" if cluster.spec.name == DEFAULT_NAME else f" --cluster {cluster.spec.name}"


# -- commands ---------------------------------------------------------------------------------

def start_and_wait(cluster: Cluster, timeout: float = 300) -> bool:
    started = time.monotonic()
    shape = ", ".join(f"group {g}: {n} members" for g, n in sorted(cluster.spec.groups.items()))
    extra = " and the S3 server" if cluster.s3 is not None else ""
    say(f"starting etcd{extra} and {len(cluster.pods)} pods ({shape}); logs in "
        f"{rel(cluster.dir / 'logs')}/")
    cluster.start()
    if cluster.new_cipher_pass:
        say(f"backups: the repository passphrase was generated now: "
            f"{rel(cluster.s3.keys_dir(cluster.spec.name) / 'cipher-pass')} (0600). Without it "
            "this cluster's backups cannot be read: keep a copy.")
    ready = ("ready: every group's leader takes writes, extensions exist, pg_dist_node names "
             "every group's leader, a distributed DDL commits" if cluster.spec.citus else
             "ready: every group's leader takes writes, extensions exist")
    steps = [(ready, lambda: wait_ready_or_failed(cluster, timeout)),
             ("every replica is streaming", lambda: cluster.wait_streaming(timeout))]
    for what, wait in steps:
        try:
            wait()
            say(f"  {time.monotonic() - started:6.1f}s  {what}")
        except ClusterError as e:
            say(f"  not ready: {e}")
            return False
    return True


def wait_ready_or_failed(cluster: Cluster, timeout: float) -> None:
    """wait_ready, but a group whose every member has ended (a failed bootstrap, e.g. a
    restore that cannot be done) ends the wait at once with the pods' error lines."""
    deadline = time.monotonic() + timeout
    while True:
        problem = cluster.ready_problem()
        if problem is None:
            return
        for g in cluster.groups:
            if not any(p.running() for p in cluster.group(g)):
                raise ClusterError(f"every member of group {g} has ended; "
                                   + "; ".join(error_lines(cluster, g)[-3:]))
        if time.monotonic() > deadline:
            raise ClusterError(f"{cluster.spec.name}: not ready after {timeout:.0f}s: {problem}")
        time.sleep(0.5)


def error_lines(cluster: Cluster, group: int) -> list:
    lines = []
    for pod in cluster.group(group):
        for line in pod.log_text().splitlines():
            if "level=error" in line or "ERROR:" in line or "FATAL" in line:
                lines.append(f"{pod.name}: {line.strip()}")
    return lines or [f"see {rel(cluster.dir / 'logs')}/"]


def print_connect(cluster: Cluster) -> None:
    print()
    print_table(cluster.status_rows())
    print()
    leader = cluster.leader(0)
    flag = cluster_flag(cluster)
    if leader is not None:
        env = psql_env(cluster, leader)
        ssl = (f" sslmode={env['PGSSLMODE']} sslrootcert={rel(env['PGSSLROOTCERT'])}"
               if cluster.spec.ssl else "")
        target = "coordinator primary" if cluster.spec.citus else "group 0's primary"
        print(f"Connect:  scripts/demo{flag} psql            ({target}, password from "
              f"{rel(cluster.pgpass_file)})")
        print(f"   or:    PGPASSFILE={rel(cluster.pgpass_file)} psql 'host={leader.dns_name} "
              f"hostaddr={leader.ip} dbname={cluster.database} user=postgres{ssl}'")
    print(f"Status:   scripts/demo{flag} status       Stop: scripts/demo{flag} down [--purge]")
    if cluster.spec.metrics:
        print(f"Metrics:  {cluster.prometheus.url}   (scripts/demo{flag} metrics)")
    if cluster.s3 is not None:
        print(f"Backups:  scripts/demo{flag} backup       scripts/demo{flag} restore-points    "
              f"scripts/demo{flag} restore TARGET [--as NAME]   (docs/backups.md)")


def check_binary() -> None:
    binary = paths.citus_init_binary()
    if not os.access(binary, os.X_OK):
        raise ClusterError(f"{binary} is missing: build it with ninja -C {paths.BUILD}")


def cmd_up(cluster: Cluster, why: str) -> int:
    check_binary()
    say(f"{why}: {mode_text(cluster.spec.citus, cluster.spec)}")
    say(backup_text(cluster))
    say(metrics_text(cluster))
    record(cluster)
    ok = start_and_wait(cluster)
    print_connect(cluster)
    return 0 if ok else 1


def cmd_status(cluster: Cluster, why: str) -> int:
    if not cluster.dir.exists():
        err(f"no cluster in {rel(cluster.dir)}: start one with scripts/demo{cluster_flag(cluster)} up")
        return 1
    etcd = "running" if cluster.etcd.running() else "stopped"
    print(f"cluster {cluster.spec.name}: etcd {etcd} at {cluster.etcd.client_url}")
    print(f"mode: {mode_text(cluster.spec.citus, cluster.spec)} ({why})")
    print(f"backups: {backup_text(cluster)}"
          + ("" if cluster.s3 is None else
             f"; S3 server {'running' if cluster.s3.running() else 'stopped'}"))
    print(f"metrics: {metrics_text(cluster)}")
    print_table(cluster.status_rows())
    return 0


def cmd_metrics(cluster: Cluster, args: list) -> int:
    """Prometheus' URL on stdout (the only line), so $(scripts/demo metrics) is the URL."""
    if args:
        err(f"metrics: unknown argument {args[0]!r}")
        return 2
    if not cluster.spec.metrics:
        err(f"{cluster.spec.name}: {metrics_text(cluster)}")
        return 1
    print(cluster.prometheus.url)
    if not cluster.prometheus.running():
        err(f"Prometheus of {cluster.spec.name} is not running: scripts/demo"
            f"{cluster_flag(cluster)} up starts it")
        return 1
    err(metrics_text(cluster))
    return 0


def cmd_psql(cluster: Cluster, args: list) -> int:
    leader = cluster.leader(0)
    if leader is None:
        err(f"no running {'coordinator ' if cluster.spec.citus else ''}primary in group 0; "
            f"see scripts/demo{cluster_flag(cluster)} status")
        return 1
    os.execvpe("psql", ["psql", *args], psql_env(cluster, leader))
    return 127  # not reached


def cmd_down(cluster: Cluster, args: list) -> int:
    purge = "--purge" in args
    unknown = [a for a in args if a != "--purge"]
    if unknown:
        err(f"down: unknown argument {unknown[0]!r}; expected only --purge")
        return 2
    running = [p.name for p in cluster.pods.values() if p.running()]
    say(f"stopping {len(running)} pods (SIGTERM to each PID 1), etcd"
        + (", Prometheus" if cluster.prometheus.running() else "")
        + (" (and the S3 server when no other cluster uses it)" if cluster.s3 else ""))
    cluster.stop(purge=purge)
    if purge:
        say(f"removed {rel(cluster.dir)}" + (
            f" and the cluster's backups ({rel(cluster.s3.repo_dir(cluster.spec.name))}, "
            f"{rel(cluster.s3.keys_dir(cluster.spec.name))})" if cluster.s3 else ""))
    else:
        say(f"data kept in {rel(cluster.dir)}")
    return 0


def needs_backups(cluster: Cluster) -> None:
    if cluster.s3 is None:
        raise ClusterError(f"{cluster.spec.name} runs without backups (DEMO_BACKUP=false when "
                           "it was created)")


def in_pod(pod, args: list, timeout: float) -> tuple:
    """citus-init ARGS in the pod, like `kubectl exec POD -- citus-init ARGS`."""
    res = pod.exec([pod.command[0], *args], timeout=timeout)
    return res.returncode, res.stdout.strip(), res.stderr.strip()


def cmd_backup(cluster: Cluster, args: list) -> int:
    if args:
        err(f"backup: unknown argument {args[0]!r}")
        return 2
    needs_backups(cluster)
    failed = 0
    for g in cluster.groups:
        leader = cluster.writable_leader(g)
        if leader is None:
            err(f"group {g}: no writable primary; see scripts/demo{cluster_flag(cluster)} status")
            failed += 1
            continue
        started = time.monotonic()
        rc, out, errs = in_pod(leader, ["backup", "--type", "full"], timeout=1800)
        took = time.monotonic() - started
        if rc == 0:
            say(f"group {g}: full backup on {leader.name} done in {took:.1f}s"
                + (f": {out.splitlines()[-1]}" if out else ""))
        else:
            failed += 1
            err(f"group {g}: backup on {leader.name} failed (exit {rc}): "
                f"{(errs or out).splitlines()[-1] if (errs or out) else ''}")
    if failed:
        return 1
    if not cluster.spec.citus:
        say("restore points are Citus-only: restore a group of this cluster to a time "
            "(scripts/demo restore 2026-12-02T03:15:00Z)")
        return 0
    rc, out, errs = in_pod(cluster.writable_leader(0), ["restore-point"], timeout=300)
    if rc != 0:
        err(f"restore point failed (exit {rc}): {(errs or out).splitlines()[-1] if (errs or out) else ''}")
        return 1
    say(f"restore point: {out.splitlines()[-1]}")
    return 0


def coordinator_command(cluster: Cluster, args: list, timeout: float = 3600) -> tuple:
    """citus-init ARGS in the coordinator's primary (the worker-group commands need it):
    (exit status, its stderr lines, which carry the log)."""
    leader = cluster.writable_leader(0)
    if leader is None:
        raise ClusterError("no writable coordinator primary (group 0); see scripts/demo status")
    rc, out, errs = in_pod(leader, args, timeout)
    return rc, [line for line in (errs + "\n" + out).splitlines() if line.strip()]


def reason(lines: list) -> str:
    """The lines that say why a command failed (its error lines, else its last line)."""
    errors = [line for line in lines if "level=error" in line or line.startswith("error:")]
    return " | ".join(errors[-3:] or lines[-1:] or ["no output"])


def set_workers(cluster: Cluster, count: int, rebalance: bool = True, tell=say) -> None:
    """The cluster's worker groups become 1..count (docs/operations.md). Raises ClusterError
    with the reason; a refused or failed drain leaves every group running."""
    if not cluster.spec.citus_enabled():
        raise ClusterError("workers: worker groups are a Citus notion; this cluster runs "
                           "without Citus (each group is its own Patroni cluster)")
    if count < 1:
        raise ClusterError(f"workers: N={count}: expected 1 or more worker groups")
    if not any(p.running() for p in cluster.group(0)):
        raise ClusterError(f"{cluster.spec.name} is not running: scripts/demo"
                           f"{cluster_flag(cluster)} up first")
    current = [g for g in cluster.groups if g > 0]
    if count == len(current):
        tell(f"{len(current)} worker groups already: nothing to change")
        return
    if count > len(current):
        first = max(current, default=0) + 1
        new = list(range(first, first + count - len(current)))
        members = cluster.spec.groups[current[-1]] if current else 2
        tell(f"adding worker groups {', '.join(map(str, new))} ({members} members each)")
        cluster.add_worker_groups(new, members)
        if cluster.dir.joinpath(SPEC_FILE).exists():
            record(cluster)
        wait_ready_or_failed(cluster, 300)
        tell("  registered in pg_dist_node by Patroni")
        if not rebalance:
            tell("  no rebalance (--no-rebalance): new shards only; run citus-init rebalance "
                 "--wait on the coordinator's primary later")
            return
        groups = ",".join(str(g) for g in current + new)
        rc, lines = coordinator_command(cluster, ["rebalance", "--wait", "--expect", groups,
                                                  "--timeout", "300"])
        for line in lines:
            if "rebalance" in line or "nothing to move" in line:
                tell(f"  {line}")
        if rc != 0:
            raise ClusterError(f"rebalance failed (exit {rc}): {reason(lines)}")
        return
    remove = sorted(current, reverse=True)[:len(current) - count]
    keep = ",".join(str(g) for g in sorted(set(current) - set(remove)))
    # the chart's hooks run the same two commands: drain before the pods go, remove after
    tell(f"draining worker group{'s' if len(remove) > 1 else ''} "
         f"{', '.join(map(str, remove))}")
    rc, lines = coordinator_command(cluster, ["drain-group", "--absent-from", keep])
    for line in lines:
        if "progress" in line or "drained" in line:
            tell(f"  {line}")
    if rc != 0:
        raise ClusterError(f"drain-group --absent-from {keep} failed (exit {rc}); every group "
                           f"keeps running: {reason(lines)}")
    for g in remove:
        tell(f"stopping and deleting worker group {g} (pods, data, DCS keys)")
        cluster.delete_worker_group(g)
        if cluster.dir.joinpath(SPEC_FILE).exists():
            record(cluster)
    rc, lines = coordinator_command(cluster, ["remove-group", "--absent-from", keep,
                                              "--wait-gone", "120"], timeout=600)
    if rc != 0:
        raise ClusterError(f"remove-group --absent-from {keep} failed (exit {rc}): "
                           f"{reason(lines)}")
    tell(f"  group{'s' if len(remove) > 1 else ''} {', '.join(map(str, remove))} removed "
         f"from pg_dist_node")


def cmd_workers(cluster: Cluster, args: list) -> int:
    rebalance = "--no-rebalance" not in args
    rest = [a for a in args if a != "--no-rebalance"]
    if len(rest) != 1 or not rest[0].isdigit():
        err("workers: expected N, the number of worker groups (1 or more), and optionally "
            "--no-rebalance")
        return 2
    set_workers(cluster, int(rest[0]), rebalance)
    return 0


def restore_points(cluster: Cluster, source: str) -> list:
    """[(name, time)] of the source's catalogue, read in a member of cluster (a one-off pod
    when none runs)."""
    res = cluster.citus_init(["restore-points", "--cluster", source])
    if res.returncode != 0:
        raise ClusterError(f"citus-init restore-points failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()[-800:]}")
    return [tuple(line.split("\t", 1)) for line in res.stdout.splitlines() if "\t" in line]


def cmd_rollout(cluster: Cluster, args: list) -> int:
    if args:
        err("rollout: expected no arguments")
        return 2
    from . import rollout
    t0 = time.monotonic()
    reports = rollout.rollout(cluster, say)
    changes = ", ".join(f"group {r['group']}: {r['timeline_after'] - r['timeline_before']}"
                        for r in reports)
    say(f"rollout done in {time.monotonic() - t0:.0f}s; leader changes {changes}")
    return 0


def cmd_restore_points(cluster: Cluster, args: list) -> int:
    if args:
        err(f"restore-points: unknown argument {args[0]!r}")
        return 2
    needs_backups(cluster)
    points = restore_points(cluster, cluster.spec.name)
    if not points:
        say(f"no restore points of {cluster.spec.name} yet (scripts/demo{cluster_flag(cluster)} "
            "backup makes one)")
    for name, when in points:
        print(f"{name}\t{when}")
    return 0


def cmd_restore(source: Cluster, args: list) -> int:
    target, new_name = None, None
    rest = list(args)
    while rest:
        a = rest.pop(0)
        if a == "--as" and rest:
            new_name = rest.pop(0)
        elif a.startswith("--as="):
            new_name = a[5:]
        elif target is None and not a.startswith("--"):
            target = a
        else:
            err(f"restore: unexpected argument {a!r}; expected TARGET [--as NAME]")
            return 2
    if not target:
        err("restore: expected TARGET: a restore point name (scripts/demo restore-points), an "
            "RFC 3339 UTC time (2026-12-02T03:15:00Z) or latest")
        return 2
    check_binary()
    needs_backups(source)
    name = source.spec.name
    if not source.s3.keys_dir(name).is_dir():
        raise ClusterError(f"{name} has no backups (no {rel(source.s3.keys_dir(name))})")
    if target != "latest" and not TIME_RE.match(target) and source.spec.citus:
        names = [n for n, _ in restore_points(source, name)]
        if target not in names:
            raise ClusterError(f"{target!r} is not a restore point of {name} "
                               f"(scripts/demo{cluster_flag(source)} restore-points lists them)")
    if new_name is None:
        new_name = name
        say(f"restoring {name} in place: stopping it and deleting its data (its backups and "
            "their passphrase stay)")
        source.stop()
        source.remove_data()
        subnet = source.spec.subnet
    else:
        if not NAME_RE.match(new_name):
            raise ClusterError(f"--as {new_name!r}: expected a cluster name of a-z, 0-9 and -")
        if recorded(new_name) is not None or (paths.RUN / new_name).exists():
            raise ClusterError(f"a cluster {new_name!r} exists already ({rel(paths.RUN / new_name)}):"
                               f" scripts/demo --cluster {new_name} down --purge first")
        subnet = free_subnet(new_name)
    spec = ClusterSpec(name=new_name, subnet=subnet, groups=dict(source.spec.groups),
                       citus=source.spec.citus, backup=True, restore_from=name,
                       restore_target=target, metrics=metrics_setting())
    restored = Cluster(spec)
    say(f"restoring {name} to {target} as {new_name} ({subnet}.x): every group bootstraps from "
        f"its stanza {name}-<group>, then archives into {new_name}-<group>")
    record(restored)
    if start_and_wait(restored, timeout=900):
        print_connect(restored)
        return 0
    say(f"the restore did not come up: stopping {new_name} (no half-started cluster is left "
        f"running); logs in {rel(restored.dir / 'logs')}/")
    restored.stop()
    return 1


def main(argv: list) -> int:
    if os.geteuid() != 0:
        err("scripts/demo needs root (mount and PID namespaces for the simulated pods)")
        return 1
    name = DEFAULT_NAME
    if argv and argv[0] == "--cluster" and len(argv) > 1:
        name, argv = argv[1], argv[2:]
    elif argv and argv[0].startswith("--cluster="):
        name, argv = argv[0].split("=", 1)[1], argv[1:]
    cmd, args = (argv[0], argv[1:]) if argv else ("up", [])
    if cmd in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if not NAME_RE.match(name):
        err(f"--cluster {name!r}: expected a cluster name of a-z, 0-9 and -")
        return 2
    try:
        cluster, why = demo_cluster(name, cmd)
        if cmd == "up" and not args:
            return cmd_up(cluster, why)
        if cmd == "status" and not args:
            return cmd_status(cluster, why)
        commands = {"psql": cmd_psql, "down": cmd_down, "backup": cmd_backup,
                    "metrics": cmd_metrics, "workers": cmd_workers, "rollout": cmd_rollout,
                    "restore-points": cmd_restore_points, "restore": cmd_restore}
        if cmd in commands:
            return commands[cmd](cluster, args)
    except (ClusterError, s3.S3Error) as e:
        err(f"error: {e}")
        return 1
    err(f"unknown command {' '.join(argv)!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
