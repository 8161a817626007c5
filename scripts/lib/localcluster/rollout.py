"""scripts/demo rollout: restart every member of the local cluster in the update order a
production rollout needs (docs/operations.md, "Rolling restarts"): group by group, the worker
groups first and the coordinator last; in each group the replicas first, each one back and
streaming from the primary before the next; then a switchover to a restarted replica
(Patroni's POST /switchover: for a worker group Patroni's Citus support holds the
coordinator's distributed queries to the group instead of failing them); then the old
primary. So each group changes leader exactly once and never by failover, and never has two
members down at once. A group that is not healthy before it is touched (no leader, a member
not running, a replica not streaming) stops the rollout there with the reason; the groups
already done stay done.

rollout() returns one report per group: the members in the order they were restarted, the
leader before and after, the timeline before and after (one leader change: +1), and when
the switchover started and ended (time.time(), for a writer's gaps)."""
import time
from typing import Callable, Optional

from .cluster import Cluster, ClusterError, Pod

MEMBER_TIMEOUT = 180    # a restarted member running and streaming again
SWITCHOVER_TIMEOUT = 90  # the candidate the group's writable leader


def order(cluster: Cluster) -> list:
    """Groups in rollout order: the worker groups (ascending), then the coordinator."""
    workers = sorted(g for g in cluster.groups if g != 0)
    return workers + [0] if 0 in cluster.groups else workers


def health_problem(cluster: Cluster, group: int) -> Optional[str]:
    """None when the group can be rolled: every member running, one writable leader, every
    other member streaming from it and reported running by Patroni."""
    stopped = [p.name for p in cluster.group(group) if not p.running()]
    if stopped:
        return f"members not running: {', '.join(stopped)}"
    try:
        return cluster.streaming_problem(group)
    except Exception as e:  # noqa: BLE001 - an unreachable leader is a reason, not a crash
        return f"the group's members cannot be asked: {e}"


def _timeline(pod: Pod) -> int:
    return int(pod.patroni_state().get("timeline") or 0)


def _restart(cluster: Cluster, pod: Pod, leader: Optional[Pod]) -> None:
    """Stop the member as the kubelet would (SIGTERM, then the grace period), start it again
    on the same data, and wait until it streams from leader (or, without one, until it is
    the group's writable leader again)."""
    pod.stop()
    pod.start()
    if leader is None:
        cluster.wait_for(f"{pod.name} the writable leader of group {pod.group} again",
                         lambda: cluster.writable_leader(pod.group) is pod, MEMBER_TIMEOUT)
        return
    _wait_streaming(cluster, pod, leader)


def _wait_streaming(cluster: Cluster, pod: Pod, leader: Pod) -> None:
    def streaming():
        state = pod.patroni_state()
        return (state.get("role") == "replica" and state.get("state") in ("running", "streaming")
                and pod.name in cluster.streaming_replicas(leader))
    cluster.wait_for(f"{pod.name} streaming from {leader.name}", streaming, MEMBER_TIMEOUT)


def _candidate(cluster: Cluster, leader: Pod, replicas: list) -> Pod:
    """The replica to switch over to: in synchronous mode (on or quorum) Patroni takes only a
    synchronous standby, which a restarted replica becomes again an HA cycle after it
    streams; else the first replica."""
    _, config = cluster.api_request(leader, "GET", "/config", 5)
    if not (isinstance(config, dict) and config.get("synchronous_mode")):
        return replicas[0]
    names = {p.name: p for p in replicas}

    def sync_standby():
        _, view = cluster.api_request(leader, "GET", "/cluster", 5)
        found = [m["name"] for m in (view or {}).get("members", [])
                 if m.get("role") in ("sync_standby", "quorum_standby")
                 and m.get("name") in names]
        return names[sorted(found)[0]] if found else None
    return cluster.wait_for(f"a synchronous standby of {leader.name} among the restarted "
                            f"replicas", sync_standby, MEMBER_TIMEOUT)


def switchover(cluster: Cluster, leader: Pod, candidate: Pod) -> None:
    status, body = cluster.api_request(leader, "POST", "/switchover", 60,
                                       {"leader": leader.name, "candidate": candidate.name})
    if status != 200:
        raise ClusterError(f"group {leader.group}: switchover {leader.name} -> {candidate.name} "
                           f"refused by Patroni ({status}): {body}")
    cluster.wait_for(f"{candidate.name} the writable leader of group {leader.group}",
                     lambda: cluster.writable_leader(leader.group) is candidate,
                     SWITCHOVER_TIMEOUT)


def roll_group(cluster: Cluster, group: int, tell: Callable[[str], None]) -> dict:
    problem = health_problem(cluster, group)
    if problem:
        raise ClusterError(f"rollout stopped at group {group}, nothing of it restarted: "
                           f"{problem}")
    leader = cluster.writable_leader(group)
    report = {"group": group, "leader_before": leader.name, "timeline_before": _timeline(leader),
              "restarted": [], "switchover": None}
    replicas = [p for p in cluster.group(group) if p is not leader]
    for pod in replicas:
        tell(f"  group {group}: restarting replica {pod.name}")
        _restart(cluster, pod, leader)
        report["restarted"].append(pod.name)
    if replicas:
        candidate = _candidate(cluster, leader, replicas)
        tell(f"  group {group}: switchover {leader.name} -> {candidate.name}")
        t0 = time.time()
        switchover(cluster, leader, candidate)
        report["switchover"] = (t0, time.time())
        # the old primary finishes its demotion and streams from the new one before it is
        # stopped: stopped while Patroni still counts it as the new primary's synchronous
        # standby, commits would wait for Patroni's next cycle to drop it
        _wait_streaming(cluster, leader, candidate)
        tell(f"  group {group}: restarting the old primary {leader.name}")
        _restart(cluster, leader, candidate)
    else:
        tell(f"  group {group}: one member only: restarting {leader.name} in place "
             f"(the group has no primary meanwhile)")
        _restart(cluster, leader, None)
    report["restarted"].append(leader.name)
    now = cluster.writable_leader(group)
    report["leader_after"] = now.name if now else None
    report["timeline_after"] = _timeline(now) if now else 0
    return report


def rollout(cluster: Cluster, tell: Callable[[str], None]) -> list:
    if not any(p.running() for p in cluster.pods.values()):
        raise ClusterError(f"{cluster.spec.name} is not running")
    reports = []
    for group in order(cluster):
        tell(f"group {group}")
        reports.append(roll_group(cluster, group, tell))
        r = reports[-1]
        tell(f"  group {group} done: leader {r['leader_before']} -> {r['leader_after']}, "
             f"timeline {r['timeline_before']} -> {r['timeline_after']}")
    return reports
