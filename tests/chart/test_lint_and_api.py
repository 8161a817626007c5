"""helm lint --strict, and every rendered object decoded strictly into the Kubernetes API
types by tests/chart/kubevalidate."""
import os
import subprocess

import pytest

from conftest import CHART, EXAMPLES, KUBEVALIDATE, helm, render, template_args

VARIANTS = {
    "defaults": {},
    "persistence+ssl+extensions": {
        "storage": {"persistentVolume": {"enabled": True, "size": "10Gi", "storageClass": "ssd"}},
        "ssl": {"enabled": True, "mode": "verify-full"},
        "additionalExtensions": {"enabled": True, "extensions": ["postgis", "pg_partman:partman"]}},
    "non-root+cert-manager+bypass": {
        "securityContext": {"runAsNonRoot": True},
        "ssl": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}},
        "patroni": {"bypassApiService": True}},
    "no coordinator, no PDB, hard anti-affinity": {
        "coordinator": {"enabled": False, "replicas": 1}, "podDisruptionBudget": {"enabled": False},
        "podAntiAffinity": "hard"},
    "extras": {
        "extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}],
        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
        "tolerations": [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}],
        "service": {"type": "LoadBalancer", "annotations": {"example.com/lb": "internal"}}},
    "backups to s3 with a CA, restore": {
        "backup": {"enabled": True, "s3": {"endpoint": "minio.storage.svc:9000", "bucket": "citus",
                                           "uriStyle": "path", "existingSecret": "minio-keys",
                                           "caSecret": {"name": "minio-ca", "key": "ca.crt"},
                                           "egress": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}}}]}},
        "restore": {"fromCluster": "old", "target": "2026-12-02T03:15:00Z"}},
    "backups to posix, non-root": {
        "securityContext": {"runAsNonRoot": True},
        "backup": {"enabled": True, "repo": {"type": "posix"}, "posix": {"storageClass": "nfs"}}},
}

# Values helm lint --strict must accept besides the defaults and the examples.
LINT_VARIANTS = {k: v for k, v in VARIANTS.items() if k.startswith("backups")}


def test_examples_exist():
    names = [os.path.basename(e) for e in EXAMPLES]
    assert "production-values.yaml" in names


def test_lint_strict_defaults():
    res = helm(["lint", "--strict", CHART])
    assert "0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("name", sorted(LINT_VARIANTS))
def test_lint_strict_variant(name, tmp_path):
    import yaml
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(LINT_VARIANTS[name]))
    res = helm(["lint", "--strict", CHART, "-f", str(values)])
    assert "0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_lint_strict_example(example):
    res = helm(["lint", "--strict", CHART, "-f", example])
    assert "0 chart(s) failed" in res.stdout


def test_production_example_is_production_like():
    r = render(files=[e for e in EXAMPLES if e.endswith("production-values.yaml")])
    stss = r.all("StatefulSet")
    assert len(stss) == 4, "coordinator + 3 worker groups"
    assert all(s["spec"].get("volumeClaimTemplates") for s in stss)
    assert r.all("Secret") == []
    e = {x["name"]: x.get("value") for x in stss[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert e["SSL_MODE"] == "verify-full" and e["SUPERUSER_PASSWORD_KEY"] != "superuser-password"
    assert r.all("Job"), "extensions hook Job"


def kubevalidate(text):
    return subprocess.run([KUBEVALIDATE, "-"], input=text, capture_output=True, text=True)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rendered_objects_match_api_types(name):
    r = render(VARIANTS[name])
    res = kubevalidate(r.text)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "%d objects, 0 invalid" % len(r.docs) in res.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_example_objects_match_api_types(example):
    r = render(files=[example])
    res = kubevalidate(r.text)
    assert res.returncode == 0, res.stdout + res.stderr


BROKEN = {
    "unknown field": ("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  portz: []\n",
                      'unknown field "portz"'),
    "wrong type": ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  replicas: three\n",
                   "strict decoding"),
    "unknown kind": ("apiVersion: v1\nkind: Sekret\nmetadata:\n  name: s\n", 'no typed schema for apiVersion "v1" kind "Sekret"'),
    "bad quantity": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Never\n  containers:\n"
                     "    - name: c\n      image: i\n      resources:\n        limits:\n          memory: lots\n",
                     "quantities must match"),
    "mount without volume": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Never\n"
                             "  containers:\n    - name: c\n      image: i\n      volumeMounts:\n"
                             "        - name: data\n          mountPath: /data\n", 'no volume named "data"'),
    "selector not matching": ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  serviceName: h\n"
                              "  selector:\n    matchLabels: {a: b}\n  template:\n    metadata:\n      labels: {a: c}\n"
                              "    spec:\n      containers:\n        - name: c\n          image: i\n",
                              "do not match spec.selector"),
    "probe on unknown port": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Never\n"
                              "  containers:\n    - name: c\n      image: i\n      readinessProbe:\n"
                              "        httpGet: {path: /, port: api}\n", 'no container port named "api"'),
    "network policy CIDR": ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: n\nspec:\n"
                            "  podSelector: {matchLabels: {a: b}}\n  egress:\n    - to: [{ipBlock: {cidr: kubernetes}}]\n",
                            "spec.egress[0].to[0].ipBlock.cidr"),
    "network policy empty peer": ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: n\nspec:\n"
                                  "  podSelector: {matchLabels: {a: b}}\n  ingress:\n    - from: [{}]\n"
                                  "      ports: [{port: 5432, protocol: TCPX}]\n",
                                  "a peer needs podSelector"),
    "claim without access modes": ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: c\nspec:\n"
                                   "  resources:\n    requests:\n      storage: 1Gi\n", "spec.accessModes"),
    "projected files that collide": ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Never\n"
                                     "  containers:\n    - name: c\n      image: i\n  volumes:\n    - name: s\n"
                                     "      projected:\n        sources:\n"
                                     "          - secret: {name: a, items: [{key: k, path: f}]}\n"
                                     "          - secret: {name: b, items: [{key: k, path: f}]}\n",
                                     'conflicting duplicate path "f"'),
    "bad label value": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {a: 'not valid!'}\n",
                        "metadata.labels[a]"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_kubevalidate_catches(name):
    text, expected = BROKEN[name]
    res = kubevalidate(text)
    assert res.returncode == 1, res.stdout
    assert expected in res.stdout, res.stdout
