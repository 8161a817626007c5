"""When a cluster is ready for clients: the one condition scripts/demo up, the bench's probe and
the end-to-end tests wait for (Cluster.ready_problem / Cluster.wait_ready).

Ready means:
  - every group has a leader in the DCS (what `patronictl list` shows) that Patroni reports
    as a running primary, and that member accepts writes (pg_is_in_recovery() is false);
  - the configured extensions exist where citus-init creates them (the coordinator with
    Citus, else every group's leader);
  - with Citus, the coordinator's pg_dist_node names, for every group, the host that group's
    leader registers (the host of its conn_url in the DCS, the pod's DNS name) as the active
    primary, with Citus' metadata synced to it, and a distributed DDL commits: a table
    distributed over every worker group and dropped again, in a scratch schema.

Registration alone is not enough. After `down` + `up` of an existing cluster, pg_dist_node
names the primaries of the previous run until the coordinator's Patroni has caught up; and
once it has (citus_update_node, or citus_set_coordinator_host for a new coordinator leader),
Citus marks the metadata nodes out of sync until its maintenance daemon has synced them
again, refusing create_distributed_table meanwhile ("... is a metadata node, but is out of
sync"). The DDL proves what clients need (every worker primary reachable, writable,
metadata in sync, two-phase commit) and is only tried once everything cheaper holds.

The checks return None when they hold, else a sentence saying what is missing.
"""
import base64
import json
import urllib.request
from typing import Optional
from urllib.parse import urlparse

PRIMARY_ROLES = ("primary", "master")  # Patroni 4.x says primary, 3.x master
DCS_NAMESPACE = "/service"             # Patroni's default namespace (citus-init keeps it)
SCRATCH_SCHEMA = "localcluster_ready"
SCRATCH_TABLE = f"{SCRATCH_SCHEMA}.probe"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def etcd_prefix(client_url: str, prefix: str, timeout: float = 2.0) -> dict:
    """Every key below prefix with its value, from etcd's v3 JSON gateway (one request)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": _b64(prefix), "range_end": _b64(end)}).encode()
    req = urllib.request.Request(f"{client_url}/v3/kv/range", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        kvs = json.load(resp).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in kvs}


def etcd_delete_prefix(client_url: str, prefix: str, timeout: float = 5.0) -> int:
    """Delete every key below prefix (etcd's v3 JSON gateway); how many were deleted."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": _b64(prefix), "range_end": _b64(end)}).encode()
    req = urllib.request.Request(f"{client_url}/v3/kv/deleterange", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(json.load(resp).get("deleted", 0))


def dcs_groups(keys: dict, scope: str, citus: bool) -> dict:
    """{group: {"leader": name or None, "members": {name: member data}}} from Patroni's keys.
    With Citus all groups share the scope (<ns>/<scope>/<group>/...); without, each group is
    its own scope <scope>-<group> (<ns>/<scope>-<group>/...)."""
    groups: dict = {}
    for key, value in keys.items():
        parts = key[len(DCS_NAMESPACE) + 1:].split("/")
        if citus:
            if len(parts) < 3 or parts[0] != scope or not parts[1].isdigit():
                continue
            group, rest = int(parts[1]), parts[2:]
        else:
            head, _, g = parts[0].rpartition("-")
            if head != scope or not g.isdigit() or len(parts) < 2:
                continue
            group, rest = int(g), parts[1:]
        entry = groups.setdefault(group, {"leader": None, "members": {}})
        if rest == ["leader"]:
            entry["leader"] = value
        elif len(rest) == 2 and rest[0] == "members":
            try:
                entry["members"][rest[1]] = json.loads(value)
            except ValueError:
                entry["members"][rest[1]] = {}
    return groups


def leader_problem(group: int, entry: Optional[dict]) -> Optional[str]:
    """The group's DCS leader is a running primary in Patroni's own member data."""
    if not entry or not entry.get("leader"):
        return f"group {group} has no leader in the DCS"
    name = entry["leader"]
    data = entry["members"].get(name, {})
    if data.get("role") not in PRIMARY_ROLES or data.get("state") != "running":
        return (f"group {group}: leader {name} is {data.get('role', '?')}/"
                f"{data.get('state', '?')} in the DCS, not a running primary")
    return None


def registered_host(entry: dict) -> tuple:
    """(host, port) the group's leader registers in pg_dist_node: its conn_url's."""
    url = urlparse(entry["members"][entry["leader"]].get("conn_url", ""))
    return url.hostname, url.port or 5432


def registration_problem(cur, expected: dict) -> Optional[str]:
    """pg_dist_node (on the coordinator, cur) names expected[group] = (host, port) as the
    active primary of every group."""
    cur.execute("SELECT groupid, nodename, nodeport, hasmetadata AND NOT metadatasynced "
                "FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive")
    have, unsynced = {}, {}
    for group, host, port, behind in cur.fetchall():
        have.setdefault(group, []).append((host, port))
        unsynced[group] = behind
    for group, want in sorted(expected.items()):
        if have.get(group) != [want]:
            return (f"pg_dist_node names {have.get(group, 'nothing')} as group {group}'s "
                    f"primary; its leader is {want[0]}:{want[1]}")
        if unsynced[group]:  # Citus refuses distributed DDL until its maintenance daemon
            return (f"group {group}: Citus' metadata on {want[0]} is not synced yet "
                    "(pg_dist_node.metadatasynced)")
    return None


def distributed_ddl_problem(cur, worker_groups: list) -> Optional[str]:
    """Distribute a scratch table over every worker group (one shard each), check that every
    group got its placement, drop it again. Run on the coordinator in autocommit."""
    try:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")  # an earlier attempt's
        cur.execute(f"CREATE SCHEMA {SCRATCH_SCHEMA}")
        cur.execute(f"CREATE TABLE {SCRATCH_TABLE} (id bigint PRIMARY KEY)")
        cur.execute("SELECT create_distributed_table(%s, 'id', shard_count => %s)",
                    (SCRATCH_TABLE, len(worker_groups)))
        cur.execute("SELECT DISTINCT p.groupid FROM pg_catalog.pg_dist_placement p "
                    "JOIN pg_catalog.pg_dist_shard s USING (shardid) "
                    "WHERE s.logicalrelid = %s::regclass", (SCRATCH_TABLE,))
        placed = sorted(r[0] for r in cur.fetchall())
        cur.execute(f"DROP SCHEMA {SCRATCH_SCHEMA} CASCADE")
    except Exception as e:  # noqa: BLE001 - psycopg2's errors; the message is the answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        try:  # leave nothing behind when the cluster can take it (else the next try does)
            cur.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
        except Exception:  # noqa: BLE001
            pass
        return f"distributed DDL failed: {first}"
    if placed != sorted(worker_groups):
        return f"distributed table placed on groups {placed}, expected {sorted(worker_groups)}"
    return None
