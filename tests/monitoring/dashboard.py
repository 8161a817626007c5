"""The Grafana dashboard's queries, for the tests that run them against a real Prometheus:
the monitoring suite (tests/monitoring/test_dashboard.py: plain servers, no Patroni) and
the local cluster's (tests/e2e/test_monitoring.py: every panel, Patroni's included). Pure:
the callers bring the Prometheus to ask."""
import json
import os
import re
import time

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helm",
                         "citus-cluster", "files", "monitoring", "dashboard.json")

# Panels whose data comes from Patroni's /metrics.
NEEDS_PATRONI = {
    "Groups without a leader",
    "Primaries per group",
    "Replication lag",
    "Members",
    "DCS last contact",
}
# Panels fed by the Citus queries: without Citus they have nothing to show.
NEEDS_CITUS = {
    "Workers active / inactive",
    "Rebalance",
    "Nodes in pg_dist_node",
    "Shard placements per group",
    "Shard bytes per group",
    "Distributed queries",
    "Connections between nodes",
}
# Panels fed by citus-init's backup history and restore points: nothing before the first
# backup (and, for restore points, without Citus).
NEEDS_BACKUPS = {
    "Newest restore point",
    "Last successful backup per group",
}
# Panels fed by citus-init's agent (its metrics endpoint): only where pods run citus-init.
NEEDS_AGENT = {
    "Certificate expiry",
    "Agent restarts",
}
METRIC = re.compile(r'\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)')
FUNCTIONS = {"rate", "increase", "sum", "max", "min", "count", "avg", "by", "on", "group_right",
             "group_left", "clamp_min", "vector", "time", "and", "or", "unless"}
# Grafana's rate window is chosen per panel; 30 s covers several scrapes in both setups.
RATE_INTERVAL = "30s"


def load(path: str = DASHBOARD) -> dict:
    with open(path) as f:
        return json.load(f)


def panels(dash: dict = None) -> list:
    return [p for p in (dash or load())["panels"] if p["type"] != "row"]


def titles() -> list:
    return [p["title"] for p in panels()]


# The local cluster's namespace unless its spec says otherwise (ClusterSpec.namespace in
# scripts/lib/localcluster/cluster.py; its Prometheus labels every target with it).
LOCAL_NAMESPACE = "default"
# The label matcher every selector of every panel and of every variable after $namespace
# carries (test_dashboard.py checks it), as the dashboard spells it.
NAMESPACE_MATCHER = 'namespace=~"$namespace"'
CLUSTER_MATCHER = 'cluster_name="$cluster"'


def variables(cluster: str, namespace: str = LOCAL_NAMESPACE) -> dict:
    """The dashboard's variables as the tests set them: one namespace and one cluster (as a
    Grafana user picks them: single select), every group and pod."""
    return {"$namespace": namespace, "$cluster": cluster, "$group": ".*", "$pod": ".*",
            "$__rate_interval": RATE_INTERVAL}


def expand(expr: str, values: dict) -> str:
    for var, val in values.items():
        expr = expr.replace(var, val)
    return expr


def metric_names(expr: str) -> set:
    return {m for m in METRIC.findall(expr) if m not in FUNCTIONS}


def patroni_metric_names(api_py: str) -> set:
    """The names Patroni's metrics handler (do_GET_metrics in patroni/api.py) writes."""
    with open(api_py) as f:
        source = f.read()
    handler = source[source.index("def do_GET_metrics"):]
    handler = handler[:handler.index("\n    def ", 1)]
    return (set(re.findall(r'"(patroni_[a-z_]+)\{', handler))
            | set(re.findall(r'f"(patroni_[a-z_]+)\{', handler)))


def panel_exprs(title: str, values: dict) -> list:
    panel = next(p for p in panels() if p["title"] == title)
    return [expand(t["expr"], values) for t in panel["targets"]]


def wait_panel_data(title: str, query, values: dict, timeout: float = 40.0) -> None:
    """Every query of the panel returns something within timeout (rate() needs two samples
    in its window: the first scrapes). query(expr) -> result list. AssertionError names the
    query that stayed empty."""
    for expr in panel_exprs(title, values):
        deadline = time.monotonic() + timeout
        while not query(expr):
            assert time.monotonic() < deadline, \
                f"panel {title!r}: no data after {timeout:.0f} s for {expr}"
            time.sleep(0.5)


def variable_queries(values: dict) -> list:
    """[(name, series selector, label)] of the dashboard's query variables
    (label_values(SELECTOR, LABEL)), expanded."""
    found = []
    for var in load()["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r'label_values\((.*), (\w+)\)', var["query"]["query"])
        assert m, var["query"]
        found.append((var["name"], expand(m.group(1), values), m.group(2)))
    return found


SELECTOR = re.compile(r'\{[^{}]*\}')
# Label lists of aggregations and vector matching, ranges, string literals: not metrics.
_LABEL_LISTS = re.compile(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)')
_RANGES = re.compile(r'\[[^\]]*\]')
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_OPERATORS = {"and", "or", "unless", "bool", "offset"}


def selectors(expr: str) -> list:
    """The label matchers ({...}) of every series selector in expr."""
    return SELECTOR.findall(expr)


def bare_metrics(expr: str) -> set:
    """Metric names in expr written without a {...} selector (`up`, not `up{...}`): such a
    series would come from every namespace and cluster."""
    rest = SELECTOR.sub(" {} ", _RANGES.sub(" ", expr))
    rest = _STRINGS.sub(" ", _LABEL_LISTS.sub(" ", rest))
    rest = re.sub(r'\b[0-9][0-9a-zA-Z_.]*', " ", rest)  # numbers, durations
    found = set()
    for m in re.finditer(r'\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?=\s*(.?))', rest):
        name, after = m.groups()
        if after in ("(", "{") or name in _OPERATORS:
            continue  # a function call, a selected metric, an operator
        found.add(name)
    return found
