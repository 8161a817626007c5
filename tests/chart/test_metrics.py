"""Metrics of the chart (issue #17, docs/observability.md): the exporter container and the
agent's port in every database pod, the NetworkPolicy's rule for them, and the PodMonitor,
PrometheusRule and dashboard ConfigMap, each off unless asked."""
import json
import os
import re

import pytest
import yaml

from conftest import CHART, NAMESPACE, render, render_error
from netpol import ingress_allowed
from pss import violations
from test_render import container, env, pod_spec, volumes

ASSETS = os.path.join(CHART, "files", "monitoring")
GROUPS = ["citusdemo-0", "citusdemo-1", "citusdemo-2"]
ALL_ON = {"metrics": {"podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                      "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                      "dashboard": {"enabled": True}}}
EXT = {"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}}


def asset(name):
    with open(os.path.join(ASSETS, name)) as f:
        return f.read()


def mounts_of(c):
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


def ports_of(c):
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


# ---------------------------------------------------------------- the pods

def test_every_database_pod_has_the_exporter(default):
    for name in GROUPS:
        sts = default.get("StatefulSet", name)
        assert [c["name"] for c in pod_spec(sts)["containers"]] == ["postgres", "exporter"]
        pg, exp = container(sts, "postgres"), container(sts, "exporter")
        assert exp["image"] == pg["image"] and exp["imagePullPolicy"] == pg["imagePullPolicy"]
        assert exp["command"] == ["prometheus-postgres-exporter"]
        assert exp["args"] == ["--web.listen-address=:9187",
                               "--extend.query-path=/etc/postgres-exporter/queries.yaml"]
        assert {e["name"]: e["value"] for e in exp["env"]} == {
            "DATA_SOURCE_NAME": "host=/var/run/postgresql user=citus_monitor dbname=citus sslmode=disable"}
        assert ports_of(exp) == {"metrics": 9187}
        assert exp["readinessProbe"]["httpGet"] == {"path": "/", "port": "metrics"}
        assert "livenessProbe" not in exp, "a stuck exporter must never restart the database pod's container"
        res = exp["resources"]
        assert res["requests"] == {"cpu": "10m", "memory": "32Mi"}
        assert res["limits"] == {"cpu": "200m", "memory": "128Mi"}


def test_database_container_gets_the_agent_contract(default):
    for name in GROUPS:
        sts = default.get("StatefulSet", name)
        e = env(sts)
        assert e["AGENT_METRICS_PORT"] == "9188"
        assert e["MONITORING_ROLE"] == "citus_monitor"
        assert e["MONITORING_OS_USER"] == "nobody"
        assert ports_of(container(sts, "postgres")) == {"postgresql": 5432, "patroni": 8008, "metrics-agent": 9188}


def test_socket_directory_shared_and_nothing_else(default):
    """The exporter sees PostgreSQL's socket directory (read-only) and its queries, nothing
    of the secrets, the data or the run directory."""
    for name in GROUPS:
        sts = default.get("StatefulSet", name)
        vols = volumes(sts)
        assert vols["sockets"] == {"name": "sockets", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
        pg, exp = mounts_of(container(sts, "postgres")), mounts_of(container(sts, "exporter"))
        assert pg["/var/run/postgresql"]["name"] == "sockets" and not pg["/var/run/postgresql"].get("readOnly")
        assert exp["/var/run/postgresql"] == {"name": "sockets", "mountPath": "/var/run/postgresql", "readOnly": True}
        assert exp["/etc/postgres-exporter"] == {"name": "metrics-queries", "mountPath": "/etc/postgres-exporter",
                                                 "readOnly": True}
        assert set(exp) == {"/var/run/postgresql", "/etc/postgres-exporter"}
        assert vols["metrics-queries"]["configMap"]["name"] == "citusdemo-metrics-queries"
        assert "envFrom" not in container(sts, "exporter")


def test_queries_configmap_is_the_file(default):
    cm = default.get("ConfigMap", "citusdemo-metrics-queries")
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["data"] == {"queries.yaml": asset("queries.yaml")}
    yaml.safe_load(cm["data"]["queries.yaml"])


EXPORTER_SC = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "allowPrivilegeEscalation": False,
               "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("values", [{}, {"securityContext": {"runAsNonRoot": True}}], ids=["root", "non-root"])
def test_exporter_security_context(values):
    """nobody, no capabilities, read-only root file system, whatever the database container
    does; the exporter alone passes `restricted` even in the default (root) mode."""
    r = render(values)
    for sts in r.all("StatefulSet"):
        exp = container(sts, "exporter")
        assert exp["securityContext"] == EXPORTER_SC
        spec = dict(pod_spec(sts), containers=[exp])
        assert violations(spec, {}, "restricted") == [], sts["metadata"]["name"]


def test_extra_args_and_ports():
    r = render({"metrics": {"exporter": {"port": 9300, "extraArgs": ["--log.level=debug"]}, "agentPort": 9301}})
    sts = r.get("StatefulSet", "citusdemo-1")
    exp = container(sts, "exporter")
    assert exp["args"] == ["--web.listen-address=:9300",
                           "--extend.query-path=/etc/postgres-exporter/queries.yaml", "--log.level=debug"]
    assert ports_of(exp) == {"metrics": 9300}
    assert ports_of(container(sts, "postgres"))["metrics-agent"] == 9301
    assert env(sts)["AGENT_METRICS_PORT"] == "9301"
    (policy,) = r.all("NetworkPolicy")
    from_monitoring = peer("monitoring")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert ingress_allowed([policy], labels, NAMESPACE, from_monitoring, 9300)
    assert ingress_allowed([policy], labels, NAMESPACE, from_monitoring, 9301)
    assert not ingress_allowed([policy], labels, NAMESPACE, from_monitoring, 9187)


def test_database_name_in_the_dsn():
    sts = render({"citus": {"database": "shop"}}).get("StatefulSet", "citusdemo-0")
    dsn = {e["name"]: e["value"] for e in container(sts, "exporter")["env"]}["DATA_SOURCE_NAME"]
    assert dsn == "host=/var/run/postgresql user=citus_monitor dbname=shop sslmode=disable"


def test_metrics_off_leaves_the_pod_as_before():
    r = render(dict(ALL_ON, metrics=dict(ALL_ON["metrics"], enabled=False,
                                         podMonitor={"enabled": False}, prometheusRule={"enabled": False})))
    for sts in r.all("StatefulSet"):
        assert [c["name"] for c in pod_spec(sts)["containers"]] == ["postgres"]
        e = env(sts)
        assert not {"AGENT_METRICS_PORT", "MONITORING_ROLE", "MONITORING_OS_USER"} & set(e)
        assert set(ports_of(container(sts))) == {"postgresql", "patroni"}
        assert not {"sockets", "metrics-queries"} & set(volumes(sts))
        assert "/var/run/postgresql" not in mounts_of(container(sts))
    assert "citusdemo-metrics-queries" not in r.names("ConfigMap")
    assert r.all("PodMonitor") == [] and r.all("PrometheusRule") == []
    # the dashboard does not depend on this release's pods
    assert "citusdemo-dashboard" in r.names("ConfigMap")
    (policy,) = r.all("NetworkPolicy")
    assert all(p["port"] not in (9187, 9188) for rule in policy["spec"]["ingress"] for p in rule.get("ports", []))


# ---------------------------------------------------------------- the NetworkPolicy

def peer(namespace, labels=None, namespace_labels=None):
    return {"namespace": namespace, "labels": labels or {"app.kubernetes.io/name": "prometheus"},
            "namespace_labels": namespace_labels or {"kubernetes.io/metadata.name": namespace}}


def allowed(r, source, port):
    policies = r.all("NetworkPolicy")
    results = {ingress_allowed(policies, s["spec"]["template"]["metadata"]["labels"], NAMESPACE, source, port)
               for s in r.all("StatefulSet")}
    assert len(results) == 1, "groups differ"
    return results.pop()


def test_metrics_ports_only_from_the_scrapers_namespace():
    r = render(EXT)
    prometheus = peer("monitoring")
    member = {"namespace": NAMESPACE, "labels": r.get("StatefulSet", "citusdemo-1")["spec"]["template"]["metadata"]["labels"],
              "namespace_labels": {"kubernetes.io/metadata.name": NAMESPACE}}
    for port in (9187, 9188):
        assert allowed(r, prometheus, port), port
        for who in (peer("elsewhere"), peer(NAMESPACE, {"app": "shop"}), member,
                    {"ip": "203.0.113.7", "labels": None}):
            assert not allowed(r, who, port), (who, port)
    # nothing else opened to the scraper
    for port in (5432, 8008, 9186, 9189):
        assert not allowed(r, prometheus, port), port
    # exactly one rule is new: the two ports from the selector
    rules = [rule for rule in r.all("NetworkPolicy")[0]["spec"]["ingress"]
             if {p["port"] for p in rule["ports"]} & {9187, 9188}]
    assert rules == [{"ports": [{"port": 9187, "protocol": "TCP"}, {"port": 9188, "protocol": "TCP"}],
                      "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]


def test_scraper_namespace_selector():
    """What the chart README says: helm merges the selector into the default, null removes
    the default's key."""
    r = render({"metrics": {"scraperNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prom"}}}})
    assert allowed(r, peer("prom"), 9187) and not allowed(r, peer("monitoring"), 9187)
    r = render({"metrics": {"scraperNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": None,
                                                                         "team": "observability"}}}})
    assert allowed(r, peer("prom", namespace_labels={"team": "observability"}), 9187)
    assert not allowed(r, peer("monitoring"), 9187)
    r = render({"metrics": {"scraperNamespaceSelector": {"matchLabels": None}}})
    assert allowed(r, peer("anywhere"), 9188), "{} selects every namespace"
    assert not allowed(r, {"ip": "203.0.113.7", "labels": None}, 9188), "still pods only"


# ---------------------------------------------------------------- PodMonitor

def relabel(labels, rules):
    """Prometheus' relabeling (action replace, the only one the chart uses) of one target."""
    out = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace", rule
        value = rule.get("separator", ";").join(out.get(s, "") for s in rule.get("sourceLabels", []))
        m = re.fullmatch(rule.get("regex", "(.*)"), value)
        if m:
            out[rule["targetLabel"]] = m.expand(rule.get("replacement", "$1").replace("$1", r"\1"))
    return {k: v for k, v in out.items() if not k.startswith("__") and v != ""}


def discovered(sts, pod_name):
    """The __meta labels Prometheus' Kubernetes pod discovery gives a pod of sts."""
    labels = sts["spec"]["template"]["metadata"]["labels"]
    meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in labels.items()}
    meta.update({"__meta_kubernetes_pod_name": pod_name, "__meta_kubernetes_namespace": NAMESPACE})
    return meta


def test_monitors_and_dashboard_off_by_default(default):
    assert default.all("PodMonitor") == [] and default.all("PrometheusRule") == []
    assert "citusdemo-dashboard" not in default.names("ConfigMap")


def test_pod_monitor():
    r = render(dict(ALL_ON, **EXT))
    pm = r.get("PodMonitor", "citusdemo")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["namespace"] == NAMESPACE
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pm["metadata"]["labels"]["cluster-name"] == "citusdemo"
    spec = pm["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    from netpol import selector_matches
    for sts in r.all("StatefulSet"):
        assert selector_matches(spec["selector"], sts["spec"]["template"]["metadata"]["labels"])
    for other in r.all("Job") + r.all("Pod"):
        assert not selector_matches(spec["selector"], other["metadata"]["labels"] if other["kind"] == "Pod"
                                    else other["spec"]["template"]["metadata"]["labels"])
    eps = spec["podMetricsEndpoints"]
    assert [(e["port"], e["path"]) for e in eps] == [
        ("metrics-agent", "/patroni/metrics"), ("metrics", "/metrics"), ("metrics-agent", "/metrics")]
    ports = ports_of(container(r.get("StatefulSet", "citusdemo-0"), "postgres"))
    ports.update(ports_of(container(r.get("StatefulSet", "citusdemo-0"), "exporter")))
    for e in eps:
        assert e["port"] in ports, "the endpoint names a container port"
        assert e["interval"] == "30s" and e["scrapeTimeout"] == "10s"
    sts = r.get("StatefulSet", "citusdemo-2")
    targets = [relabel(discovered(sts, "citusdemo-2-1"), e["relabelings"]) for e in eps]
    base = {"cluster_name": "citusdemo", "citus_group": "2", "pod": "citusdemo-2-1", "namespace": NAMESPACE}
    assert targets == [dict(base, job="patroni"), dict(base, job="postgres-exporter"), dict(base, job="citus-init")]


def test_pod_monitor_timeout_may_equal_the_interval():
    r = render({"metrics": {"podMonitor": {"enabled": True, "interval": "1m30s", "scrapeTimeout": "90s"}}})
    assert {e["scrapeTimeout"] for e in r.get("PodMonitor", "citusdemo")["spec"]["podMetricsEndpoints"]} == {"90s"}


def test_pod_monitor_interval_and_labels():
    r = render({"metrics": {"podMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                                           "labels": {"team": "db"}}}})
    pm = r.get("PodMonitor", "citusdemo")
    assert pm["metadata"]["labels"]["team"] == "db" and "release" not in pm["metadata"]["labels"]
    assert {(e["interval"], e["scrapeTimeout"]) for e in pm["spec"]["podMetricsEndpoints"]} == {("15s", "5s")}


def rule_label_names():
    """Label names the alerts group or match by, and the jobs they name."""
    text = asset("alerts.yaml")
    exprs = [rule["expr"] for g in yaml.safe_load(text)["groups"] for rule in g["rules"]]
    names, jobs = set(), set()
    for e in exprs:
        for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", e):
            names |= {n.strip() for n in group.split(",") if n.strip()}
        jobs |= set(re.findall(r'job\s*=\s*"([^"]+)"', e))
    return names, jobs


def metric_label_names():
    """Labels the scraped series carry themselves: the queries' LABEL columns, Patroni's."""
    names = {"scope", "name", "server"}
    for q in yaml.safe_load(asset("queries.yaml")).values():
        for m in q["metrics"]:
            for col, spec in m.items():
                if spec.get("usage") == "LABEL":
                    names.add(col)
    return names


def test_relabelings_give_the_labels_the_rules_use():
    r = render(ALL_ON)
    eps = r.get("PodMonitor", "citusdemo")["spec"]["podMetricsEndpoints"]
    names, jobs = rule_label_names()
    assert {"namespace", "cluster_name", "citus_group", "pod"} <= names, names
    for sts in r.all("StatefulSet"):
        for e in eps:
            target = relabel(discovered(sts, sts["metadata"]["name"] + "-0"), e["relabelings"])
            missing = names - metric_label_names() - set(target)
            assert not missing, "the rules group by %s, which the scrape does not set" % sorted(missing)
    assert jobs <= {relabel({}, e["relabelings"])["job"] for e in eps}, jobs


# ---------------------------------------------------------------- PrometheusRule and dashboard

def test_prometheus_rule_is_alerts_yaml():
    r = render(ALL_ON)
    pr = r.get("PrometheusRule", "citusdemo")
    assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["metadata"]["namespace"] == NAMESPACE
    assert pr["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pr["spec"] == yaml.safe_load(asset("alerts.yaml"))
    # not run through tpl: Prometheus' own templates arrive as written
    annotations = [rule["annotations"]["summary"] for g in pr["spec"]["groups"] for rule in g["rules"]]
    assert any("{{ $labels.citus_group }}" in a for a in annotations)


def test_dashboard_configmap_is_the_file():
    r = render(ALL_ON)
    cm = r.get("ConfigMap", "citusdemo-dashboard")
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == {"patroni-citus-k8s.json": asset("dashboard.json")}
    assert json.loads(cm["data"]["patroni-citus-k8s.json"])["uid"] == "patroni-citus-k8s"
    r = render({"metrics": {"dashboard": {"enabled": True, "namespace": "monitoring",
                                          "labels": {"grafana_dashboard": "citus"}}}})
    cm = r.get("ConfigMap", "citusdemo-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "citus"


# ---------------------------------------------------------------- bad values

@pytest.mark.parametrize("values,expected", [
    ({"metrics": {"agentPort": 8008}}, "metrics.agentPort (8008) is the port of Patroni's REST API"),
    ({"metrics": {"exporter": {"port": 5432}}}, "metrics.exporter.port (5432) is the port of PostgreSQL"),
    ({"metrics": {"exporter": {"port": 9188}}}, "metrics.exporter.port and metrics.agentPort are both 9188"),
    ({"metrics": {"enabled": False, "podMonitor": {"enabled": True}}},
     "metrics.podMonitor.enabled and metrics.prometheusRule.enabled need metrics.enabled"),
    ({"metrics": {"podMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "20s"}}},
     "metrics.podMonitor.scrapeTimeout (20s) must be more than 0 and at most metrics.podMonitor.interval (15s)"),
    ({"metrics": {"podMonitor": {"enabled": True, "interval": "1m", "scrapeTimeout": "1m500ms"}}},
     "metrics.podMonitor.scrapeTimeout (1m500ms) must be more than 0 and at most metrics.podMonitor.interval (1m)"),
    ({"metrics": {"podMonitor": {"enabled": True, "scrapeTimeout": "0s"}}},
     "metrics.podMonitor.scrapeTimeout (0s) must be more than 0"),
], ids=["agent on 8008", "exporter on 5432", "same port", "monitor without metrics", "timeout over interval",
        "timeout over interval by 500ms", "timeout 0"])
def test_template_rejects(values, expected):
    err = render_error(values)
    assert expected in err, err


@pytest.mark.parametrize("values,path", [
    ({"metrics": {"exporter": {"port": 70000}}}, "/metrics/exporter/port"),
    ({"metrics": {"exporter": {"extraArgs": ["log.level=debug"]}}}, "/metrics/exporter/extraArgs/0"),
    ({"metrics": {"podMonitor": {"interval": "30"}}}, "/metrics/podMonitor/interval"),
    ({"metrics": {"dashboard": {"labels": {"grafana_dashboard": 1}}}}, "/metrics/dashboard/labels/grafana_dashboard"),
    ({"metrics": {"scraperNamespaceSelector": {"matchLabel": {"a": "b"}}}}, "/metrics/scraperNamespaceSelector"),
    ({"metrics": {"exporter": {"resources": {"limits": {"memory": "lots"}}}}}, "/metrics/exporter/resources/limits/memory"),
    ({"metrics": {"serviceMonitor": {"enabled": True}}}, "additional properties 'serviceMonitor' not allowed"),
], ids=["port", "arg without --", "interval", "label not a string", "selector typo", "resources", "unknown key"])
def test_schema_rejects(values, path):
    err = render_error(values)
    assert path in err, err


# ---------------------------------------------------------------- kubectl and NOTES

def test_kubectl_defaults_to_the_database_container(default):
    """`kubectl exec <pod> -- psql ...` and `kubectl logs <pod>` (README, NOTES) reach
    postgres, not the exporter, without -c."""
    for name in GROUPS:
        ann = default.get("StatefulSet", name)["spec"]["template"]["metadata"]["annotations"]
        assert ann["kubectl.kubernetes.io/default-container"] == "postgres"
    r = render({"podAnnotations": {"kubectl.kubernetes.io/default-container": "postgres", "a": "b"}})
    assert r.get("StatefulSet", "citusdemo-0")["spec"]["template"]["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/default-container": "postgres", "a": "b"}


def test_notes_name_the_metrics(notes_chart):
    from conftest import render_notes
    notes, _ = render_notes(notes_chart)
    assert "postgres_exporter on port 9187" in notes and "port 9188" in notes
    assert "--set metrics.podMonitor.enabled=true" in notes
    notes, _ = render_notes(notes_chart, ALL_ON)
    assert 'PodMonitor "citusdemo" scrapes them (labels {"release":"kube-prometheus-stack"})' in notes
    assert 'PrometheusRule "citusdemo"' in notes and 'ConfigMap "citusdemo-dashboard"' in notes
    assert "--set metrics.podMonitor.enabled=true" not in notes
    notes, _ = render_notes(notes_chart, {"metrics": {"enabled": False}})
    assert "postgres_exporter" not in notes
