"""Bad values are rejected before anything is rendered, with a message naming the value."""
import pytest

from conftest import render, render_error

W = lambda **kw: dict({"citusGroup": 1, "citusType": "worker", "replicas": 2}, **kw)

SCHEMA_CASES = [
    ("unknown ssl.mode", {"ssl": {"enabled": True, "mode": "verify-everything"}},
     ["/ssl/mode", "value must be one of 'prefer', 'require', 'verify-ca', 'verify-full'"]),
    ("worker replicas 0", {"workers": [W(replicas=0)]}, ["/workers/0/replicas", "minimum: got 0, want 1"]),
    ("coordinator replicas 0", {"coordinator": {"replicas": 0}}, ["/coordinator/replicas", "minimum"]),
    ("worker citusGroup 0", {"workers": [W(citusGroup=0)]}, ["/workers/0/citusGroup"]),
    ("worker citusGroup not a number", {"workers": [W(citusGroup="one")]}, ["/workers/0/citusGroup"]),
    ("worker without replicas", {"workers": [{"citusGroup": 1}]}, ["/workers/0", "missing property 'replicas'"]),
    ("unknown citusType", {"workers": [W(citusType="coordinator")]}, ["/workers/0/citusType"]),
    ("unknown top-level key", {"replicaCount": 3}, ["additional properties 'replicaCount' not allowed"]),
    ("unknown key in image", {"image": {"repo": "x"}}, ["/image", "additional properties 'repo' not allowed"]),
    ("unknown key in a worker", {"workers": [W(replica=2)]}, ["/workers/0", "additional properties 'replica' not allowed"]),
    ("unknown key in secret.keys", {"secret": {"keys": {"superuser": "x"}}},
     ["/secret/keys", "additional properties 'superuser' not allowed"]),
    ("unknown key in ssl", {"ssl": {"verify": True}}, ["/ssl", "additional properties 'verify' not allowed"]),
    ("replicas as string", {"coordinator": {"replicas": "three"}}, ["/coordinator/replicas", "got string, want integer"]),
    ("boolean as string", {"ssl": {"enabled": "yes"}}, ["/ssl/enabled", "got string, want boolean"]),
    ("workers not a list", {"workers": {"citusGroup": 1}}, ["/workers", "got object, want array"]),
    ("pullPolicy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "value must be one of"]),
    ("digest without algorithm", {"image": {"digest": "0123456789abcdef0123456789abcdef"}}, ["/image/digest"]),
    ("tag with a colon", {"image": {"tag": "1.0:x"}}, ["/image/tag"]),
    ("clusterName not a DNS label", {"clusterName": "Citus_Demo"}, ["/clusterName"]),
    ("bad extension name", {"additionalExtensions": {"extensions": ["postgis; DROP TABLE x"]}},
     ["/additionalExtensions/extensions/0"]),
    ("Job memory not a quantity", {"additionalExtensions": {"resources": {"limits": {"memory": "lots"}}}},
     ["/additionalExtensions/resources/limits/memory"]),
    ("test pod resources unknown key", {"helmTest": {"resources": {"request": {}}}},
     ["/helmTest/resources", "additional properties 'request' not allowed"]),
    ("emptyDir size limit", {"storage": {"emptyDir": {"sizeLimit": "big"}}}, ["/storage/emptyDir/sizeLimit"]),
    ("grace period too short", {"terminationGracePeriodSeconds": 3}, ["/terminationGracePeriodSeconds", "minimum"]),
    ("anti-affinity preset", {"podAntiAffinity": "sometimes"}, ["/podAntiAffinity", "value must be one of"]),
    ("storage size", {"storage": {"persistentVolume": {"size": "lots"}}}, ["/storage/persistentVolume/size"]),
    ("REST API user with a colon", {"patroni": {"restapi": {"authentication": {"username": "a:b"}}}},
     ["/patroni/restapi/authentication/username"]),
    ("REST API auth not a boolean", {"patroni": {"restapi": {"authentication": {"enabled": "no"}}}},
     ["/patroni/restapi/authentication/enabled", "got string, want boolean"]),
    ("rebalance on scale-out not a boolean", {"rebalance": {"onScaleOut": "yes"}},
     ["/rebalance/onScaleOut", "got string, want boolean"]),
    ("scaling Job deadline too short", {"rebalance": {"timeoutSeconds": 10}},
     ["/rebalance/timeoutSeconds", "minimum"]),
    ("registration wait not a number", {"rebalance": {"registerTimeoutSeconds": "10m"}},
     ["/rebalance/registerTimeoutSeconds", "got string, want integer"]),
    ("unknown rebalance key", {"rebalance": {"onScaleIn": False}},
     ["/rebalance", "additional properties 'onScaleIn' not allowed"]),
]


@pytest.mark.parametrize("what,values,expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_rejects(what, values, expected):
    err = render_error(values)
    assert "values don't meet the specifications of the schema" in err, err
    for e in expected:
        assert e in err, "expected %r in helm's error:\n%s" % (e, err)


TEMPLATE_CASES = [
    ("duplicate citusGroup", {"workers": [W(citusGroup=1), W(citusGroup=2), W(citusGroup="1")]},
     "workers[2].citusGroup: group 1 is used twice"),
    ("ttl too short for loopWait and retryTimeout", {"patroni": {"ttl": 10, "loopWait": 5, "retryTimeout": 5}},
     "patroni.ttl (10) must be at least patroni.loopWait + 2 * patroni.retryTimeout"),
    ("extensions without coordinator", {"coordinator": {"enabled": False, "replicas": 1},
                                        "additionalExtensions": {"enabled": True}},
     "additionalExtensions.enabled needs coordinator.enabled"),
    ("same key for both passwords", {"secret": {"keys": {"superuserPassword": "pw", "replicationPassword": "pw"}}},
     "secret.keys.superuserPassword and secret.keys.replicationPassword are both \"pw\""),
    ("REST API password sharing a key", {"secret": {"keys": {"restapiPassword": "replication-password"}}},
     "secret.keys.replicationPassword and secret.keys.restapiPassword are both \"replication-password\": "
     "each password needs its own key"),
    ("cert-manager without issuer", {"ssl": {"enabled": True, "certManager": {"enabled": True}}},
     "ssl.certManager.issuerRef.name is empty"),
]


@pytest.mark.parametrize("what,values,expected", TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES])
def test_template_checks_reject(what, values, expected):
    err = render_error(values)
    assert expected in err, "expected %r in helm's error:\n%s" % (expected, err)


def test_schema_accepts_seed_style_values():
    """The original chart's documented examples keep working."""
    r = render({"workers": [{"citusGroup": "1", "citusType": "worker", "replicas": 3},
                            {"citusGroup": "2", "citusType": "worker", "replicas": 3},
                            {"citusGroup": "3", "citusType": "worker", "replicas": 2}],
                "namespace": "citus",
                "resources": {"limits": {"cpu": "4", "memory": "8Gi"}, "requests": {"cpu": "2", "memory": "4Gi"}},
                "additionalExtensions": {"enabled": True, "enableOnWorkers": False,
                                         "extensions": ["postgis", "postgis_topology", "pg_partman"]}},
               sets=["ssl.enabled=true", "ssl.mode=verify-ca", "ssl.secretName=my-ssl-certs"])
    assert len(r.all("StatefulSet")) == 4
