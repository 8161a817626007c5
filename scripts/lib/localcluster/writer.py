"""A client that keeps writing while something happens to the cluster (a failover, a
rollout, a scale-out), for the tests and the benchmarks: transaction n is attempted once;
it counts when its COMMIT was acknowledged. A subclass says what transaction n writes
(write) and, if not the group's primary through libpq's multi-host string, where it
connects (connect)."""
import threading
import time

from .cluster import Cluster


class Writer(threading.Thread):
    def __init__(self, cluster: Cluster, group: int = 0, pause: float = 0.0):
        super().__init__(daemon=True)
        self.cluster, self.group, self.pause = cluster, group, pause
        self.acked = []          # n, in commit order
        self.started = {}        # n -> wall-clock time the attempt began (time.time())
        self.acked_at = {}       # n -> wall-clock time the commit was acknowledged
        self.failed_at = []      # wall-clock times of the attempts that failed
        self.attempts = 0
        self.halt = threading.Event()

    def connect(self):
        """A connection (autocommit off), or None to try again a little later."""
        return self.cluster.connect_primary(self.group, autocommit=False)

    def write(self, cur, n: int) -> None:
        raise NotImplementedError

    def run(self):
        conn = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    conn = self.connect()
                    if conn is None:
                        time.sleep(0.2)
                        continue
                self.attempts += 1
                n = self.attempts
                self.started[n] = time.time()
                with conn.cursor() as cur:
                    self.write(cur, n)
                conn.commit()
                self.acked_at[n] = time.time()
                self.acked.append(n)
                if self.pause:
                    time.sleep(self.pause)
            except Exception:  # noqa: BLE001 - any failure: n is simply not acknowledged
                self.failed_at.append(time.time())
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def wait_more(self, count: int, timeout: float) -> None:
        target = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"writer stalled at {len(self.acked)}"
            time.sleep(0.1)

    def stop(self) -> None:
        self.halt.set()
        self.join(30)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without an acknowledged commit within [start, end]."""
        times = [start] + sorted(t for t in self.acked_at.values() if start <= t <= end) + [end]
        return max(b - a for a, b in zip(times, times[1:]))

    def acked_before(self, t: float) -> set:
        return {n for n, at in self.acked_at.items() if at < t}

    def started_after(self, t: float) -> set:
        return {n for n, at in self.started.items() if at > t}
