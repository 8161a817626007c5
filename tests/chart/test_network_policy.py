"""The chart's NetworkPolicy, by what it allows (tests/chart/netpol.py evaluates the rules):
PostgreSQL from the release's pods and the configured clients, the REST API only between
members, egress only to members, DNS and the Kubernetes API."""
import pytest

from conftest import NAMESPACE, render
from netpol import egress_allowed, ingress_allowed

EXT = {"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}}
NS_LABELS = {"kubernetes.io/metadata.name": NAMESPACE}


def pod_labels(obj):
    if obj["kind"] == "Pod":
        return obj["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def pod(labels, namespace=NAMESPACE, namespace_labels=None):
    return {"namespace": namespace, "labels": labels,
            "namespace_labels": namespace_labels or {"kubernetes.io/metadata.name": namespace}}


def parties(r):
    """Peers by role: every group's member, the Job, the test pod, and outsiders."""
    members = [pod(pod_labels(s)) for s in r.all("StatefulSet")]
    return {
        "members": members,
        "job": pod(pod_labels(r.all("Job")[0])),
        "helm test": pod(pod_labels(r.all("Pod")[0])),
        "other pod here": pod({"app": "shop"}),
        "same labels, other namespace": pod(pod_labels(r.all("StatefulSet")[0]), "elsewhere"),
        "pod elsewhere": pod({"app": "shop"}, "elsewhere"),
        "outside the cluster": {"ip": "203.0.113.7", "labels": None},
    }


def allowed_in(r, source, port):
    """May source connect to port of every database pod?"""
    policies = r.all("NetworkPolicy")
    results = {ingress_allowed(policies, pod_labels(s), NAMESPACE, source, port) for s in r.all("StatefulSet")}
    assert len(results) == 1, "groups differ"
    return results.pop()


def test_default_policy_selects_every_member_and_nothing_else():
    r = render(EXT)
    (policy,) = r.all("NetworkPolicy")
    assert policy["metadata"]["name"] == "citusdemo"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    from netpol import selects
    for sts in r.all("StatefulSet"):
        assert selects(policy, pod_labels(sts), NAMESPACE), sts["metadata"]["name"]
    for obj in r.all("Job") + r.all("Pod"):
        assert not selects(policy, pod_labels(obj), NAMESPACE), obj["metadata"]["name"]
    assert render({"networkPolicy": {"enabled": False}}).all("NetworkPolicy") == []


def test_postgres_from_the_release_only():
    r = render(EXT)
    p = parties(r)
    for m in p["members"]:
        assert allowed_in(r, m, 5432)
    assert allowed_in(r, p["job"], 5432) and allowed_in(r, p["helm test"], 5432)
    for outsider in ("other pod here", "same labels, other namespace", "pod elsewhere", "outside the cluster"):
        assert not allowed_in(r, p[outsider], 5432), outsider
    assert not allowed_in(r, p["members"][0], 5433), "no other port"


def test_rest_api_between_members_only():
    """8008 (Patroni serves POST /mpp without auth): members only, whatever else is open."""
    for values in (EXT, dict(EXT, networkPolicy={"allowExternal": True}),
                   dict(EXT, networkPolicy={"clients": {"podSelectors": [{"matchLabels": {"app": "shop"}}],
                                                        "namespaceSelectors": [{}]}})):
        r = render(values)
        p = parties(r)
        for m in p["members"]:
            assert allowed_in(r, m, 8008)
        for who in ("job", "helm test", "other pod here", "same labels, other namespace", "pod elsewhere",
                    "outside the cluster"):
            assert not allowed_in(r, p[who], 8008), (who, values)


def test_allow_external_opens_postgres_to_all():
    r = render(dict(EXT, networkPolicy={"allowExternal": True}))
    p = parties(r)
    for who in p:
        for peer in (p[who] if who == "members" else [p[who]]):
            assert allowed_in(r, peer, 5432), who


def test_named_clients():
    r = render(dict(EXT, networkPolicy={"clients": {
        "podSelectors": [{"matchLabels": {"app": "shop"}}],
        "namespaceSelectors": [{"matchLabels": {"team": "analytics"}}]}}))
    assert allowed_in(r, pod({"app": "shop"}), 5432)
    assert not allowed_in(r, pod({"app": "other"}), 5432)
    assert not allowed_in(r, pod({"app": "shop"}, "elsewhere"), 5432), "podSelectors: release namespace only"
    assert allowed_in(r, pod({"any": "pod"}, "bi", {"team": "analytics"}), 5432)
    assert not allowed_in(r, pod({"any": "pod"}, "bi", {"team": "web"}), 5432)
    assert not allowed_in(r, pod({"any": "pod"}, "bi", {"team": "analytics"}), 8008)
    assert not allowed_in(r, {"ip": "203.0.113.7", "labels": None}, 5432)


def allowed_out(r, destination, port, protocol="TCP"):
    policies = r.all("NetworkPolicy")
    results = {egress_allowed(policies, pod_labels(s), NAMESPACE, destination, port, protocol)
               for s in r.all("StatefulSet")}
    assert len(results) == 1
    return results.pop()


def test_egress_members_dns_and_api_only():
    r = render(EXT)
    p = parties(r)
    for m in p["members"]:
        assert allowed_out(r, m, 5432) and allowed_out(r, m, 8008)
    for who in ("job", "helm test", "other pod here", "pod elsewhere"):
        assert not allowed_out(r, p[who], 5432), who
    dns = {"ip": "10.96.0.10", "labels": None}
    assert allowed_out(r, dns, 53, "UDP") and allowed_out(r, dns, 53, "TCP")
    # the API server: any address on its ports, nothing else
    api = {"ip": "10.96.0.1", "labels": None}
    assert allowed_out(r, api, 443) and allowed_out(r, {"ip": "192.0.2.10", "labels": None}, 6443)
    for port in (80, 22, 5432, 8008):
        assert not allowed_out(r, {"ip": "203.0.113.9", "labels": None}, port), port
    assert not allowed_out(r, p["pod elsewhere"], 80)


def test_egress_api_cidrs_and_dns_peers():
    kube_dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    r = render({"networkPolicy": {"kubernetesApi": {"cidrs": ["10.0.0.10/32"], "ports": [6443]},
                                  "dns": {"to": [kube_dns]}}})
    assert allowed_out(r, {"ip": "10.0.0.10", "labels": None}, 6443)
    assert not allowed_out(r, {"ip": "10.0.0.10", "labels": None}, 443)
    assert not allowed_out(r, {"ip": "10.0.0.11", "labels": None}, 6443)
    assert allowed_out(r, pod({"k8s-app": "kube-dns"}, "kube-system"), 53, "UDP")
    assert not allowed_out(r, {"ip": "8.8.8.8", "labels": None}, 53, "UDP")


def test_extra_rules():
    prometheus = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                  "ports": [{"port": 8008, "protocol": "TCP"}]}
    backup = {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    r = render({"networkPolicy": {"extraIngress": [prometheus], "extraEgress": [backup],
                                  "kubernetesApi": {"cidrs": ["10.0.0.10/32"], "ports": [6443]}}})
    assert allowed_in(r, pod({"app": "prometheus"}, "monitoring"), 8008)
    assert not allowed_in(r, pod({"app": "prometheus"}, "monitoring"), 5432)
    assert allowed_out(r, {"ip": "192.0.2.5", "labels": None}, 443)


@pytest.mark.parametrize("values,path", [
    ({"networkPolicy": {"kubernetesApi": {"cidrs": ["kubernetes"], "ports": [443]}}}, "/networkPolicy/kubernetesApi/cidrs/0"),
    ({"networkPolicy": {"kubernetesApi": {"cidrs": [], "ports": [0]}}}, "/networkPolicy/kubernetesApi/ports/0"),
    ({"networkPolicy": {"clients": {"podSelectors": [{"matchLabel": {"a": "b"}}]}}}, "/networkPolicy/clients/podSelectors/0"),
    ({"networkPolicy": {"allowExternal": "yes"}}, "/networkPolicy/allowExternal"),
], ids=["cidr", "port", "selector typo", "boolean"])
def test_schema_rejects_bad_policy_values(values, path):
    from conftest import render_error
    err = render_error(values)
    assert path in err, err
