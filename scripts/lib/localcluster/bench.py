"""Figures for scripts/bench.d/cluster (see there for what is measured). Prints, never asserts."""
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import benchplot

from . import paths
from .cluster import Cluster, ClusterError, ClusterSpec

RUNS = int(os.environ.get("BENCH_CLUSTER_RUNS")
           or max(3, min(int(os.environ.get("BENCH_RUNS", "3")), 5)))
SWITCHOVERS = int(os.environ.get("BENCH_SWITCHOVERS", "20"))
JOB_POLL_S = 5
# An unplanned failure strikes at a random point of the leader's HA cycle, which decides how
# much of the lock's ttl is left. The kill waits a random 0-10 s (the larger loop_wait of the
# two variants; the same seeded sequence for both), and never within SETTLE_S of a change of
# leader (a coordinator's new leader runs extra HA cycles for 20 s: src/leader.c).
KILL_JITTER_S = 10.0
SETTLE_S = 21.0
SEED = int(os.environ.get("BENCH_SEED", "4"))
ANCHOR = str(paths.LAUNCHER.parent / "anchor-entrypoint")
LOGS_DIR = os.environ.get("BENCH_LOGS_DIR")  # keep every run's pod logs there (teardown purges)


def out(msg: str) -> None:
    print(msg, flush=True)


class ExtensionJob(threading.Thread):
    """The anchor's extensions: like the chart's original hook Job, try the coordinator every
    5 s until it answers as a primary, then CREATE EXTENSION each one."""

    def __init__(self, cluster: Cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.halt = threading.Event()

    def run(self):
        import psycopg2
        c = self.cluster
        while not self.halt.wait(JOB_POLL_S):
            try:
                with c.connect_primary(0) as conn, conn.cursor() as cur:
                    for line in c.spec.extensions.split():
                        name, _, schema = line.partition(":")
                        if schema:
                            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {name} SCHEMA {schema} "
                                        "CASCADE")
                        else:
                            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {name} CASCADE")
                return
            except psycopg2.Error:
                continue


class Variant:
    def __init__(self, label: str, name: str, subnet: str, anchor: bool):
        self.label = label
        self.anchor = anchor
        self.rng = random.Random(SEED)
        self.leader_changed = 0.0  # monotonic time of the last change of coordinator leader
        # without backups: the figures compare the HA paths of both ways, which do not archive
        self.spec = ClusterSpec(name=name, subnet=subnet, command=[ANCHOR] if anchor else None,
                                backup=False)
        self.cluster = None
        self.job = None
        self.runs = 0  # clusters started, for BENCH_LOGS_DIR

    def fresh(self) -> Cluster:
        self.teardown()
        self.cluster = Cluster(self.spec)
        self.runs += 1
        return self.cluster

    def teardown(self) -> None:
        if self.job:
            self.job.halt.set()
            self.job = None
        if self.cluster is not None:
            self.cluster.stop()  # the object that started them: it also reaps them
            logs = self.cluster.dir / "logs"
            if LOGS_DIR and logs.is_dir():
                kept = Path(LOGS_DIR) / f"{self.label}-run{self.runs}"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(logs, kept)
            self.cluster = None
        Cluster(self.spec).stop(purge=True)  # also what an interrupted earlier bench left

    def launch(self) -> None:
        self.cluster.start()
        if self.anchor:
            self.job = ExtensionJob(self.cluster)
            self.job.start()


def poll(check, timeout: float, interval: float = 0.2) -> float:
    """Monotonic time at which check() first held; raises ClusterError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return time.monotonic()
        except Exception:  # noqa: BLE001 - a cluster in transition throws all sorts
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"not reached within {timeout:.0f}s")
        time.sleep(interval)


def ready(c: Cluster) -> bool:
    """Ready for clients, the condition scripts/demo up and the tests wait for
    (Cluster.ready_problem, readiness.py): every group's DCS leader takes writes, the
    extensions exist and, with Citus, pg_dist_node names every group's leader and a
    distributed DDL commits. One etcd read and one connection per group, no REST calls
    (asking every member's Patroni four times a second took CPU the starting cluster needs:
    on 2 cores it added about 1 s to a cold start)."""
    return c.ready_problem() is None


def streaming(c: Cluster) -> bool:
    return c.all_streaming()


def settled(c: Cluster) -> bool:
    """Every replica streams and its Patroni reports the leader's timeline: only then may the
    next leader be stopped (a replica that has not yet seen the last timeline may not take
    over, and Patroni's member data follows only every loop_wait)."""
    if not c.all_streaming():
        return False
    timelines = {p.patroni_state().get("timeline") for p in c.group(0)}
    return len(timelines) == 1 and None not in timelines


def write_once(c: Cluster, not_on=None) -> bool:
    leader = c.leader(0)
    if leader is None or leader is not_on:
        return False
    with leader.connect(connect_timeout=1) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO bench_writes DEFAULT VALUES")
    return True


def stop_leader_until_write(v: "Variant", sig: int, restart_at_once: bool = True) -> float:
    """Signal the coordinator leader's PID 1; seconds until a write through the coordinator
    succeeds. SIGKILL is an unplanned failure: it comes at a random moment of the HA cycle
    (KILL_JITTER_S, SETTLE_S). restart_at_once: the pod is started again as soon as it has
    ended, as Kubernetes brings a stopped or crashed pod back, and the write may land on it;
    else the pod is lost (its node is gone) until a write succeeded on another member, and
    started again after. Returns once every replica streams again."""
    c = v.cluster
    if sig == signal.SIGKILL:
        time.sleep(max(0.0, v.leader_changed + SETTLE_S - time.monotonic())
                   + v.rng.uniform(0, KILL_JITTER_S))
    old = c.writable_leader(0)
    restarted = False

    def written() -> bool:
        nonlocal restarted
        if restart_at_once and not restarted and not old.running():
            old.start()
            restarted = True
        # on another member until the old one is back (right after a TERM the old primary
        # may still take a write: that is not a hand-over)
        return write_once(c, not_on=None if restarted else old)
    t0 = time.monotonic()
    old.signal(sig)
    t1 = poll(written, 600, 0.1)
    if not restarted:
        old.wait(60)
        old.start()
    if c.leader(0) is not old:
        v.leader_changed = t1
    poll(lambda: settled(c), 600, 0.5)
    return t1 - t0


def cold_start(v: Variant) -> tuple:
    c = v.fresh()
    t0 = time.monotonic()
    v.launch()
    t_ready = poll(lambda: ready(c), 900, 0.25)
    v.leader_changed = t_ready
    t_stream = poll(lambda: streaming(c), 900, 0.25)
    with c.writable_leader(0).connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_writes (id serial PRIMARY KEY, "
                    "at timestamptz DEFAULT now())")
    return t_ready - t0, t_stream - t0


def med(values: list) -> str:
    return f"{statistics.median(values):7.2f}s" if values else "      -"


def main() -> int:
    # stopped from outside: leave through the finally below, which stops both clusters by PID
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    variants = [Variant("citus-init", "benchci", "127.0.40", anchor=False),
                Variant("anchor", "benchanc", "127.0.41", anchor=True)]
    only = os.environ.get("BENCH_ONLY")  # citus-init or anchor: one variant, no ratios
    if only:
        variants = [v for v in variants if v.label == only]
        if not variants:
            out(f"BENCH_ONLY={only!r}: expected citus-init or anchor")
            return 2
    dcs = os.environ.get("BENCH_DCS")  # e.g. 20/10/5: ttl/loop_wait/retry_timeout for citus-init
    if dcs:
        try:
            ttl, loop_wait, retry = (str(int(x)) for x in dcs.split("/"))
        except ValueError:
            out(f"BENCH_DCS={dcs!r}: expected TTL/LOOP_WAIT/RETRY_TIMEOUT in seconds, e.g. 20/10/5")
            return 2
        for v in variants:
            if not v.anchor:
                v.spec.env.update(DCS_TTL=ttl, DCS_LOOP_WAIT=loop_wait, DCS_RETRY_TIMEOUT=retry)
    metrics = ["cold start: ready for clients", "cold start: every replica streaming",
               "leader pod lost (kill -> write)", "leader container crash, restarted",
               "graceful switchover (TERM -> write)"]
    results = {v.label: {m: [] for m in metrics} for v in variants}
    citus = variants[0].spec.citus_enabled()
    labels = [v.label for v in variants]
    own_env = next((v.spec.env for v in variants if not v.anchor), {})
    timing = "/".join(own_env.get(k, d) for k, d in
                      (("DCS_TTL", "20"), ("DCS_LOOP_WAIT", "10"), ("DCS_RETRY_TIMEOUT", "5")))
    why = paths.citus_mode(variants[0].spec.citus)[1]
    out(f"shape: coordinator 3, workers 2 x 2; Citus {'on' if citus else 'off'} ({why}); "
        f"{RUNS} runs; {SWITCHOVERS} consecutive switchovers; citus-init ttl/loop_wait/retry_timeout "
        f"{timing}, anchor 30/10/10; kills at a random point of the HA cycle (seed {SEED})")
    try:
        for run in range(1, RUNS + 1):
            for v in variants:
                r = results[v.label]
                try:
                    a, b = cold_start(v)
                    r[metrics[0]].append(a)
                    r[metrics[1]].append(b)
                    r[metrics[2]].append(stop_leader_until_write(v, signal.SIGKILL,
                                                                 restart_at_once=False))
                    r[metrics[3]].append(stop_leader_until_write(v, signal.SIGKILL))
                    r[metrics[4]].append(stop_leader_until_write(v, signal.SIGTERM))
                    out(f"run {run} {v.label:10s} " + "  ".join(
                        f"{r[m][-1]:.2f}s" for m in metrics))
                except ClusterError as e:
                    out(f"run {run} {v.label:10s} incomplete: {e} (logs: {v.cluster.dir}/logs)")
                if run < RUNS:
                    v.teardown()
        switch = {}
        for v in variants:
            times = []
            try:
                for _ in range(SWITCHOVERS):
                    times.append(stop_leader_until_write(v, signal.SIGTERM))
            except ClusterError as e:
                out(f"{v.label}: switchover {len(times) + 1} did not finish: {e}")
            switch[v.label] = times
    finally:
        for v in variants:
            v.teardown()

    out("")
    out(f"{'metric':38s} {'citus-init':>10s} {'anchor':>10s}  ratio")
    for m in metrics:
        a, b = (results[k][m] if k in labels else [] for k in ("citus-init", "anchor"))
        ratio = (f"{statistics.median(a) / statistics.median(b):5.2f}x" if a and b else "    -")
        out(f"{m:38s} {med(a):>10s} {med(b):>10s}  {ratio}")
        if a:
            benchplot.record("cluster", m, "s", "citus-init", a,
                             "upstream way" if b else None, b or None)
    for label, times in switch.items():
        worst = f"{max(times):.2f}s" if times else "-"
        over = sum(1 for t in times if t > 10)
        out(f"{SWITCHOVERS} switchovers, {label:10s}: done {len(times)}, longest without a "
            f"writable leader {worst}, median {med(times).strip()}, over 10 s: {over}")
    a, b = (switch.get(k) for k in ("citus-init", "anchor"))
    for what, pick in (("longest", max), ("median", statistics.median)):
        if a:
            benchplot.record("cluster", f"{SWITCHOVERS} switchovers: {what} without a writable "
                             "leader", "s", "citus-init", pick(a),
                             "upstream way" if b else None, pick(b) if b else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
