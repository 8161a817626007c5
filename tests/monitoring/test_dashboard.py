"""Every query of the Grafana dashboard against the suite's Prometheus. Panels whose data
comes from Patroni (not running here) are listed in dashboard.NEEDS_PATRONI: their metric
names are checked against Patroni's own source instead (the metrics handler in
patroni/api.py); tests/e2e/test_monitoring.py runs them against the local cluster."""
import os
import urllib.parse

import pytest

import dashboard
from conftest import CITUS, prom_api, prom_query, wait_for

PATRONI_API = os.environ.get("MON_PATRONI_API", "")
VALUES = dashboard.variables("mon")


def test_dashboard_shape():
    dash = dashboard.load()
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Cluster", "Per group", "Per member"]
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "cluster", "group", "pod"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard.panels(dash):
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]


def test_patroni_panels_are_the_listed_ones_and_use_real_metric_names():
    assert PATRONI_API, "MON_PATRONI_API: Patroni's api.py in the project's venv"
    known = dashboard.patroni_metric_names(PATRONI_API)
    assert {"patroni_primary", "patroni_xlog_location", "patroni_dcs_last_seen"} <= known
    found = set()
    for p in dashboard.panels():
        names = set().union(*(dashboard.metric_names(t["expr"]) for t in p["targets"]))
        patroni = {n for n in names if n.startswith("patroni_")}
        if patroni:
            found.add(p["title"])
            assert patroni <= known, f"{p['title']}: not in Patroni's /metrics: {patroni - known}"
    assert found == dashboard.NEEDS_PATRONI


@pytest.mark.parametrize("title", [t for t in dashboard.titles()
                                   if t not in dashboard.NEEDS_PATRONI | dashboard.NEEDS_AGENT])
def test_panel_returns_data(title):
    if title in dashboard.NEEDS_CITUS and not CITUS:
        pytest.skip("needs Citus (not installed)")
    dashboard.wait_panel_data(title, prom_query, VALUES, timeout=40)


def test_variables_have_values():
    for name, match, label in dashboard.variable_queries(VALUES):
        values = wait_for(f"values of ${name}",
                          lambda: prom_api(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})), timeout=30)
        assert values, name
