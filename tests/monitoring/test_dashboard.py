"""Every query of the Grafana dashboard against the suite's Prometheus. Panels whose data
comes from Patroni (not running here) are listed by name below: their metric names are
checked against Patroni's own source instead (the metrics handler in patroni/api.py)."""
import json
import os
import re
import urllib.parse

import pytest

from conftest import ASSETS, CITUS, prom_api, prom_query, wait_for

DASHBOARD = os.path.join(ASSETS, "dashboard.json")
PATRONI_API = os.environ.get("MON_PATRONI_API", "")

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
METRIC = re.compile(r'\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)')
VARIABLES = {"$cluster": "mon", "$group": ".*", "$pod": ".*", "$__rate_interval": "30s"}


def load():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels():
    return [p for p in load()["panels"] if p["type"] != "row"]


def expand(expr):
    for var, val in VARIABLES.items():
        expr = expr.replace(var, val)
    return expr


def metric_names(expr):
    functions = {"rate", "increase", "sum", "max", "min", "count", "avg", "by", "on", "group_right",
                 "group_left", "clamp_min", "vector", "time", "and", "or", "unless"}
    return {m for m in METRIC.findall(expr) if m not in functions}


def patroni_metric_names():
    with open(PATRONI_API) as f:
        source = f.read()
    handler = source[source.index("def do_GET_metrics"):]
    handler = handler[:handler.index("\n    def ", 1)]
    return set(re.findall(r'"(patroni_[a-z_]+)\{', handler)) | set(re.findall(r'f"(patroni_[a-z_]+)\{', handler))


def test_dashboard_shape():
    dash = load()
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Cluster", "Per group", "Per member"]
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "cluster", "group", "pod"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels():
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]


def test_patroni_panels_are_the_listed_ones_and_use_real_metric_names():
    assert PATRONI_API, "MON_PATRONI_API: Patroni's api.py in the project's venv"
    known = patroni_metric_names()
    assert {"patroni_primary", "patroni_xlog_location", "patroni_dcs_last_seen"} <= known
    found = set()
    for p in panels():
        names = set().union(*(metric_names(t["expr"]) for t in p["targets"]))
        patroni = {n for n in names if n.startswith("patroni_")}
        if patroni:
            found.add(p["title"])
            assert patroni <= known, f"{p['title']}: not in Patroni's /metrics: {patroni - known}"
    assert found == NEEDS_PATRONI


@pytest.mark.parametrize("title", [p["title"] for p in panels() if p["title"] not in NEEDS_PATRONI])
def test_panel_returns_data(title):
    if title in NEEDS_CITUS and not CITUS:
        pytest.skip("needs Citus (not installed)")
    panel = next(p for p in panels() if p["title"] == title)
    for target in panel["targets"]:
        expr = expand(target["expr"])
        # rate() needs two samples in its window: the scrapes of the first seconds
        result = wait_for(f"data for {title!r}: {expr}", lambda: prom_query(expr), timeout=40)
        assert result, expr


def test_variables_have_values():
    dash = load()
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r'label_values\((.*), (\w+)\)', var["query"]["query"])
        assert m, var["query"]
        match, label = expand(m.group(1)), m.group(2)
        values = wait_for(f"values of ${var['name']}",
                          lambda: prom_api(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})), timeout=30)
        assert values, var["name"]
