"""Figures for scripts/bench.d/rollout (see there for what is measured). Prints, never asserts."""
import os
import signal
import statistics
import sys
import time

import benchplot

from . import paths
from .cluster import Cluster, ClusterError, ClusterSpec
from .rollout import health_problem, order, rollout
from .writer import Writer

SHAPE = {0: 2, 1: 2, 2: 2}
MEMBER_TIMEOUT = 180


def out(msg: str) -> None:
    print(msg, flush=True)


class OneRow(Writer):
    """One-row transactions through the coordinator into a distributed table (each lands on
    one worker group)."""

    def write(self, cur, n: int) -> None:
        cur.execute("INSERT INTO bench_roll VALUES (%s)", (n,))


def by_ordinal(cluster: Cluster, tell) -> None:
    """What a StatefulSet's RollingUpdate does to each group (here one group after the other,
    the same group order): the highest ordinal first, each member stopped and started again
    and the next one only once the group is healthy again, whichever member is primary."""
    for group in order(cluster):
        for pod in sorted(cluster.group(group), key=lambda p: -p.index):
            tell(f"  group {group}: restarting {pod.name}")
            pod.stop()
            pod.start()
            cluster.wait_for(f"group {group} healthy after {pod.name}",
                             lambda: health_problem(cluster, group) is None, MEMBER_TIMEOUT)


def timelines(cluster: Cluster) -> dict:
    return {g: int(cluster.writable_leader(g).patroni_state().get("timeline") or 0)
            for g in cluster.groups}


def measure(cluster: Cluster, label: str, action) -> dict:
    cluster.wait_ready(300)
    cluster.wait_streaming(180)
    before = timelines(cluster)
    writer = OneRow(cluster)
    writer.start()
    time.sleep(2)
    t0 = time.time()
    try:
        action(cluster, lambda _: None)
    finally:
        t1 = time.time()
        time.sleep(2)
        writer.stop()
    cluster.wait_ready(300)
    after = timelines(cluster)
    changes = {g: after[g] - before[g] for g in cluster.groups}
    return {"label": label, "changes": changes, "errors": len(writer.failed_at),
            "gap": writer.longest_gap(t0, t1), "duration": t1 - t0}


def med(values) -> float:
    return statistics.median(values) if values else float("nan")


def runs() -> int:
    """BENCH_ROLLOUT_RUNS, else max(1, min(BENCH_RUNS, 3)); ValueError naming the variable."""
    for var in ("BENCH_ROLLOUT_RUNS", "BENCH_RUNS"):
        text = os.environ.get(var)
        if text:
            if not text.isdigit() or not 1 <= int(text) <= 1000:
                raise ValueError(f"{var}={text!r}: expected a number of runs, 1 to 1000")
            return int(text) if var == "BENCH_ROLLOUT_RUNS" else max(1, min(int(text), 3))
    return 3


def main() -> int:
    try:
        n_runs = runs()
    except ValueError as e:
        out(str(e))
        return 2
    # stopped from outside: leave through the finally below, which stops the cluster by PID
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = ClusterSpec(name="benchroll", subnet="127.0.39", groups=dict(SHAPE), backup=False)
    citus = spec.citus_enabled()
    out(f"shape: coordinator 2, workers 2 x 2; Citus {'on' if citus else 'off'} "
        f"({paths.citus_mode(spec.citus)[1]}); {n_runs} runs of each; a writer commits one-row "
        f"transactions through the coordinator throughout")
    cluster = Cluster(spec)
    cluster.stop(purge=True)
    cluster = Cluster(spec)
    results = {"rollout": [], "by ordinal": []}
    try:
        cluster.start()
        cluster.wait_ready(300)
        with cluster.connect_primary(0) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_roll (id bigint)")
            if citus:
                cur.execute("SELECT create_distributed_table('bench_roll', 'id', "
                            "shard_count => 8)")
        for run in range(1, n_runs + 1):
            for label, action in (("rollout", rollout), ("by ordinal", by_ordinal)):
                try:
                    r = measure(cluster, label, action)
                except ClusterError as e:
                    out(f"run {run} {label}: incomplete: {e}")
                    continue
                results[label].append(r)
                out(f"run {run} {label:10s}: leader changes "
                    + " ".join(f"g{g}={n}" for g, n in sorted(r["changes"].items()))
                    + f"; writer errors {r['errors']}; longest write gap {r['gap']:.2f}s; "
                    f"{r['duration']:.0f}s")
    finally:
        cluster.stop(purge=True)

    out("")
    out(f"{'measure (median)':44s} {'rollout':>10s} {'by ordinal':>10s}  ratio")
    rows = [("leader changes per group, most", lambda r: max(r["changes"].values()), "{:.0f}"),
            ("leader changes, all groups", lambda r: sum(r["changes"].values()), "{:.0f}"),
            ("writer errors", lambda r: r["errors"], "{:.0f}"),
            ("longest write gap (s)", lambda r: r["gap"], "{:.2f}"),
            ("duration (s)", lambda r: r["duration"], "{:.0f}")]
    for (name, get, fmt), unit in zip(rows, ("", "", "", "s", "s")):
        ours = [get(r) for r in results["rollout"]]
        anchor = [get(r) for r in results["by ordinal"]]
        a, b = med(ours), med(anchor)
        ratio = f"{a / b:5.2f}x" if b and b == b and a == a else "    -"
        out(f"{name:44s} {fmt.format(a):>10s} {fmt.format(b):>10s}  {ratio}")
        if ours:
            benchplot.record("rollout", name.replace(" (s)", ""), unit or "count",
                             "scripts/demo rollout", ours,
                             "by ordinal" if anchor else None, anchor or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
