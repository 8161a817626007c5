"""Bad values are refused by `helm install` with the schema's message, and nothing is created."""
import pytest

from conftest import CHART

NS = "citus-bad"

CASES = [
    # (--set argument, the schema's message for it as helm prints it)
    ("podAntiAffinity=sometimes", "at '/podAntiAffinity': value must be one of 'soft', 'hard', 'none'"),
    ("patroni.ttl=5", "at '/patroni/ttl': minimum: got 5, want 10"),
    ("coordinator.replicas=-1", "at '/coordinator/replicas': minimum: got -1, want 1"),
]


@pytest.mark.parametrize("setting,message", CASES, ids=[c[0].split("=")[0] for c in CASES])
def test_schema_refuses(kube, setting, message):
    res = kube.helm("install", "bad", str(CHART), "-n", NS, "--create-namespace",
                    "--set", setting, check=False)
    assert res.returncode != 0, f"helm install accepted {setting}:\n{res.stdout}"
    out = res.stdout
    assert "values don't meet the specifications of the schema" in out, out
    assert message in out, out
    # Refused before anything reached the API server.
    assert kube.helm("status", "bad", "-n", NS, check=False).returncode != 0
    assert kube.api.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets")["items"] == []
    assert kube.api.get(f"/api/v1/namespaces/{NS}/secrets",
                        labelSelector="app.kubernetes.io/instance=bad")["items"] == []
