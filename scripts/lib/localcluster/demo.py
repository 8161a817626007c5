"""scripts/demo: the chart's default shape as simulated pods on this machine.

    scripts/demo [up]            start (or complete) the cluster, print how to connect
    scripts/demo status          member, group, role, state, address
    scripts/demo psql [ARGS...]  psql on the current coordinator primary
    scripts/demo down [--purge]  stop everything started; --purge also deletes the data

DEMO_CITUS=auto|true|false (default auto: Citus when the citus extension is installed) picks
the mode of a new cluster; without Citus each group is its own Patroni HA cluster (scope
<name>-<group>) whose leader creates the extensions. The mode is recorded with the cluster.
"""
import os
import sys
import time
from pathlib import Path

from . import paths
from .cluster import Cluster, ClusterError, ClusterSpec, atomic_write

USAGE = __doc__.split("\n\n", 1)[1]


def say(msg: str) -> None:
    print(msg, flush=True)


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


MODE_FILE = "citus-mode"  # in the cluster's directory: "true" or "false", written by up


def recorded_mode(spec: ClusterSpec):
    """The mode an existing demo cluster was created in, or None."""
    try:
        value = (Path(spec.run_root) / spec.name / MODE_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return {"true": True, "false": False}.get(value)


def mode_text(enabled: bool, spec: ClusterSpec) -> str:
    if enabled:
        return f"the groups form one Citus cluster (CITUS_ENABLED=true, scope {spec.name})"
    scopes = ", ".join(f"{spec.name}-{g}" for g in sorted(spec.groups))
    return (f"each group runs as its own Patroni HA cluster (CITUS_ENABLED=false, scopes "
            f"{scopes}); every group's leader creates the extensions")


def demo_cluster(cmd: str) -> tuple:
    """(Cluster, why this mode). `up` decides the mode from DEMO_CITUS (and refuses to change
    the mode of an existing cluster); the other commands use the mode the cluster was created
    in. A DEMO_CITUS value that is not understood is an error for every command."""
    spec = ClusterSpec()
    recorded = recorded_mode(spec)
    try:
        if cmd == "up" or recorded is None:
            enabled, why = paths.citus_mode()
        else:
            paths.citus_mode_setting()
            enabled, why = recorded, "recorded by scripts/demo up"
    except paths.CitusModeError as e:
        raise ClusterError(str(e)) from None
    if cmd == "up" and recorded is not None and recorded != enabled:
        have = "with" if recorded else "without"
        raise ClusterError(
            f"{rel(Path(spec.run_root) / spec.name)} holds a cluster created {have} Citus, but "
            f"{why}; its data cannot change mode: scripts/demo down --purge first (deletes the "
            f"data), or start it as it was (DEMO_CITUS={str(recorded).lower()})")
    spec.citus = enabled
    return Cluster(spec), why


def record_mode(cluster: Cluster) -> None:
    cluster.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cluster.dir, 0o700)
    atomic_write(cluster.dir / MODE_FILE, "true\n" if cluster.spec.citus else "false\n", 0o600)


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


def rel(path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def cmd_up(cluster: Cluster, why: str) -> int:
    binary = paths.citus_init_binary()
    if not os.access(binary, os.X_OK):
        raise ClusterError(f"{binary} is missing: build it with ninja -C {paths.BUILD}")
    say(f"{why}: {mode_text(cluster.spec.citus, cluster.spec)}")
    record_mode(cluster)
    started = time.monotonic()
    shape = ", ".join(f"group {g}: {n} members" for g, n in sorted(cluster.spec.groups.items()))
    say(f"starting etcd and {len(cluster.pods)} pods ({shape}); logs in {rel(cluster.dir / 'logs')}/")
    cluster.start()
    ok = True
    ready = ("ready: every group's leader takes writes, extensions exist, pg_dist_node names "
             "every group's leader, a distributed DDL commits" if cluster.spec.citus else
             "ready: every group's leader takes writes, extensions exist")
    steps = [(ready, lambda: cluster.wait_ready(300)),
             ("every replica is streaming", lambda: cluster.wait_streaming(300))]
    for what, wait in steps:
        try:
            wait()
            say(f"  {time.monotonic() - started:6.1f}s  {what}")
        except ClusterError as e:
            say(f"  not ready: {e}")
            ok = False
            break
    print()
    print_table(cluster.status_rows())
    print()
    leader = cluster.leader(0)
    if leader is not None:
        env = psql_env(cluster, leader)
        ssl = (f" sslmode={env['PGSSLMODE']} sslrootcert={rel(env['PGSSLROOTCERT'])}"
               if cluster.spec.ssl else "")
        target = "coordinator primary" if cluster.spec.citus else "group 0's primary"
        print(f"Connect:  scripts/demo psql            ({target}, password from "
              f"{rel(cluster.pgpass_file)})")
        print(f"   or:    PGPASSFILE={rel(cluster.pgpass_file)} psql 'host={leader.dns_name} "
              f"hostaddr={leader.ip} dbname={cluster.database} user=postgres{ssl}'")
    print("Status:   scripts/demo status       Stop: scripts/demo down [--purge]")
    return 0 if ok else 1


def cmd_status(cluster: Cluster, why: str) -> int:
    if not cluster.dir.exists():
        err(f"no cluster in {rel(cluster.dir)}: start one with scripts/demo up")
        return 1
    etcd = "running" if cluster.etcd.running() else "stopped"
    print(f"cluster {cluster.spec.name}: etcd {etcd} at {cluster.etcd.client_url}")
    print(f"mode: {mode_text(cluster.spec.citus, cluster.spec)} ({why})")
    print_table(cluster.status_rows())
    return 0


def cmd_psql(cluster: Cluster, args: list) -> int:
    leader = cluster.leader(0)
    if leader is None:
        err(f"no running {'coordinator ' if cluster.spec.citus else ''}primary in group 0; "
            "see scripts/demo status")
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
    say(f"stopping {len(running)} pods (SIGTERM to each PID 1) and etcd")
    cluster.stop(purge=purge)
    say(f"removed {rel(cluster.dir)}" if purge else f"data kept in {rel(cluster.dir)}")
    return 0


def main(argv: list) -> int:
    if os.geteuid() != 0:
        err("scripts/demo needs root (mount and PID namespaces for the simulated pods)")
        return 1
    cmd, args = (argv[0], argv[1:]) if argv else ("up", [])
    if cmd in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    try:
        cluster, why = demo_cluster(cmd)
        if cmd == "up" and not args:
            return cmd_up(cluster, why)
        if cmd == "status" and not args:
            return cmd_status(cluster, why)
        if cmd == "psql":
            return cmd_psql(cluster, args)
        if cmd == "down":
            return cmd_down(cluster, args)
    except ClusterError as e:
        err(f"error: {e}")
        return 1
    err(f"unknown command {' '.join(argv)!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
