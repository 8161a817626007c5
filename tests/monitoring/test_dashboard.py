"""Every query of the Grafana dashboard against the suite's Prometheus. Panels whose data
comes from Patroni (not running here) are listed in dashboard.NEEDS_PATRONI: their metric
names are checked against Patroni's own source instead (the metrics handler in
patroni/api.py); tests/e2e/test_monitoring.py runs them against the local cluster."""
import os
import re
import urllib.parse

import pytest

import dashboard
from conftest import CITUS, prom_api, prom_query, wait_for

PATRONI_API = os.environ.get("MON_PATRONI_API", "")
# tests/monitoring/run labels every target namespace="mon-ns", cluster_name="mon".
NAMESPACE = "mon-ns"
VALUES = dashboard.variables("mon", NAMESPACE)


def test_dashboard_shape():
    dash = dashboard.load()
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Cluster", "Per group", "Per member"]
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "namespace", "cluster", "group", "pod"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard.panels(dash):
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]


def test_every_selector_picks_the_namespace_and_the_cluster():
    """Every series selector of every panel query and of every variable after $namespace
    matches namespace=~"$namespace" and cluster_name="$cluster" (only $cluster's own query
    has no cluster to match): kube-prometheus-stack users run releases in several
    namespaces, and two of them may share a clusterName. No metric without a selector."""
    variables = {v["name"]: v for v in dashboard.load()["templating"]["list"]}
    ns = variables["namespace"]
    assert (ns["type"], ns["includeAll"], ns["multi"]) == ("query", False, False)
    assert ns["query"]["query"] == ns["definition"] == 'label_values(pg_up{cluster_name!=""}, namespace)'
    assert variables["cluster"]["query"]["query"] == \
        'label_values(pg_up{namespace=~"$namespace"}, cluster_name)'
    exprs = [(p["title"], t["expr"]) for p in dashboard.panels() for t in p["targets"]]
    # label_values(SELECTOR, LABEL): the selector
    exprs += [(f"${name}", re.fullmatch(r'label_values\((.*), \w+\)', var["query"]["query"]).group(1))
              for name, var in variables.items()
              if var["type"] == "query" and name not in ("namespace", "cluster")]
    assert len(exprs) > 30
    for where, expr in exprs:
        assert not dashboard.bare_metrics(expr), f"{where}: no selector on {dashboard.bare_metrics(expr)}: {expr}"
        found = dashboard.selectors(expr)
        assert found, f"{where}: no selector: {expr}"
        for sel in found:
            assert dashboard.NAMESPACE_MATCHER in sel, f"{where}: {sel} misses {dashboard.NAMESPACE_MATCHER}"
            assert dashboard.CLUSTER_MATCHER in sel, f"{where}: {sel} misses {dashboard.CLUSTER_MATCHER}"


def test_the_selector_checks_catch_a_missing_namespace():
    """The checks above fail a query that forgets the namespace, in any of its selectors."""
    ok = 'sum(a{namespace=~"$namespace",cluster_name="$cluster"}) / max(b{namespace=~"$namespace",cluster_name="$cluster"}[5m])'
    assert not dashboard.bare_metrics(ok)
    assert all(dashboard.NAMESPACE_MATCHER in s for s in dashboard.selectors(ok))
    forgot = ok.replace('b{namespace=~"$namespace",', 'b{')
    assert not all(dashboard.NAMESPACE_MATCHER in s for s in dashboard.selectors(forgot))
    assert dashboard.bare_metrics('sum(a) and on (pod) b{x="1"} or vector(0)') == {"a"}
    assert dashboard.bare_metrics('time() - max(c{x="1"} > 0) / 86400 and d offset 5m') == {"d"}


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
        if name == "namespace":
            assert values == [NAMESPACE], values


def test_another_namespace_shows_nothing():
    """The same cluster name in a namespace where it does not run: every panel query is
    empty (except those that say 0 by themselves, `or vector(0)`), and so are $group and
    $pod."""
    elsewhere = dashboard.variables("mon", "not-" + NAMESPACE)
    wait_for("the suite's exporters scraped", lambda: prom_query(dashboard.expand(
        'pg_up{namespace=~"$namespace",cluster_name="$cluster"}', VALUES)), timeout=30)
    for title in dashboard.titles():
        for expr in dashboard.panel_exprs(title, elsewhere):
            if "vector(" not in expr:
                assert not prom_query(expr), f"panel {title!r} shows another namespace's data: {expr}"
    for name, match, label in dashboard.variable_queries(elsewhere):
        if name in ("group", "pod"):
            assert not prom_api(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})), name
