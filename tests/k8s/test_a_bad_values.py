"""Bad values are refused by `helm install` with the schema's message, and nothing is created."""
import pytest

from conftest import CHART

NS = "citus-bad"

CASES = [
    # (--set argument, words the schema's message must contain)
    ("podAntiAffinity=sometimes", ["podAntiAffinity", "soft", "hard", "none"]),
    ("patroni.ttl=5", ["ttl", "minimum", "10"]),
    ("coordinator.replicas=-1", ["replicas"]),
]


@pytest.mark.parametrize("setting,words", CASES, ids=[c[0].split("=")[0] for c in CASES])
def test_schema_refuses(kube, setting, words):
    res = kube.helm("install", "bad", str(CHART), "-n", NS, "--create-namespace",
                    "--set", setting, check=False)
    assert res.returncode != 0, f"helm install accepted {setting}:\n{res.stdout}"
    out = res.stdout
    assert "values don't meet the specifications of the schema" in out, out
    for w in words:
        assert w in out, f"{w!r} missing from helm's message for {setting}:\n{out}"
    # Refused before anything reached the API server.
    assert kube.helm("status", "bad", "-n", NS, check=False).returncode != 0
    assert kube.api.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets")["items"] == []
    assert kube.api.get(f"/api/v1/namespaces/{NS}/secrets",
                        labelSelector="app.kubernetes.io/instance=bad")["items"] == []
