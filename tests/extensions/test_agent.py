"""The agent on a real leader: PID 1 restarts `citus-init agent` whenever it dies, Patroni
and PostgreSQL never notice, and the new agent redoes the leader's duties (an extension
dropped meanwhile is created again). Real etcd, PostgreSQL 15, Patroni; without Citus the
member leads its own cluster and owns the extensions, like the coordinator's leader."""
import signal
import time

import pytest

from conftest import wait_leader
from harness import cluster
from harness.cluster import procs

SECONDS = 20


def role_of(pid):
    args = procs.cmdline(pid)
    if len(args) >= 2 and args[1] == "agent":
        return "agent"
    if any("patroni" in a for a in args[:2]):
        return "patroni"
    if args and args[0].endswith("/postgres"):
        return "postmaster"
    return None


def members(pod):
    """{role: Proc} of PID 1's children: the agent, Patroni and the (re-parented) postmaster."""
    found = {}
    for p in procs.children(pod.pid1().pid):
        role = role_of(p.pid)
        if role:
            found[role] = p
    return found


def pid_and_start(p):
    return (p.pid, p.start_ticks)


_clusters = iter(range(1, 1000))


@pytest.fixture
def leader(pods):
    """A new single-member cluster each time (its own data directory and passwords)."""
    n = next(_clusters)
    pod = pods.new(f"agent{n}-0-0", env={"CLUSTER_NAME": f"agent{n}", "CITUS_DATABASE": "postgres",
                                     "EXTENSIONS": "citext", "LEADER_POLL_INTERVAL_MS": "500",
                                     "EXTENSIONS_RETRY_DELAY": "1"})
    wait_leader(pod)
    cluster.wait_for(lambda: "citext" in pod.extensions(), SECONDS, what="citext created")
    cluster.wait_for(lambda: {"agent", "patroni", "postmaster"} <= set(members(pod)), SECONDS,
                     what="the agent, Patroni and the postmaster under PID 1")
    return pod


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["KILL", "SEGV"])
def test_agent_dies_patroni_and_postgres_untouched_duties_redone(leader, sig):
    before = members(leader)
    leader.sql("DROP EXTENSION citext")
    procs.signal_if_same(before["agent"].pid, before["agent"].start_ticks, sig)
    t0 = time.monotonic()

    def new_agent():
        a = members(leader).get("agent")
        return a if a and pid_and_start(a) != pid_and_start(before["agent"]) else None
    cluster.wait_for(new_agent, SECONDS, interval=0.01, what="a new agent")
    back = time.monotonic() - t0
    cluster.wait_for(lambda: "citext" in leader.extensions(), SECONDS,
                     what="citext created again by the new agent")
    again = time.monotonic() - t0
    print(f"agent {sig.name}: back after {back:.2f} s, extension re-created after {again:.2f} s "
          "(informational; scripts/bench pid1 measures the restart)")
    after = members(leader)
    for role in ("patroni", "postmaster"):
        assert pid_and_start(after[role]) == pid_and_start(before[role]), role
    assert leader.is_leader()
    name = sig.name.removeprefix("SIG")
    ended = [ln for ln in leader.log().splitlines()
             if 'msg="agent ended; starting it again"' in ln and f"signal={name}" in ln]
    assert ended, "PID 1 did not log the agent's end with its signal"


def test_pod_stop_stops_the_agent_first(leader):
    agent = members(leader)["agent"]
    assert leader.stop() == 0
    log = leader.log()
    assert log.index('msg="agent stopped"') < log.index('msg="signal forwarded" signal=TERM')
    assert not procs.same_process(agent.pid, agent.start_ticks)
