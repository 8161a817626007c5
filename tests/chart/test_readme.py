"""README parameter table generated from values.yaml; the original chart's parameters."""
import os
import subprocess
import sys

import yaml

from conftest import CHART, ROOT

# The parameter table of the original chart description: same names, meanings and defaults,
# except the passwords (empty: generated) -- see README "Passwords".
SEED_DEFAULTS = {
    "clusterName": "citusdemo",
    "image.repository": "patroni-citus-k8s",
    "image.pullPolicy": "IfNotPresent",
    "coordinator.enabled": True,
    "coordinator.replicas": 3,
    "patroni.superuser.password": "",
    "patroni.replication.password": "",
    "secret.create": True,
    "secret.keys.superuserPassword": "superuser-password",
    "secret.keys.replicationPassword": "replication-password",
    "storage.persistentVolume.enabled": False,
    "storage.persistentVolume.size": "5Gi",
    "namespace": "default",
    "ssl.enabled": False,
    "ssl.mode": "verify-ca",
    "additionalExtensions.enabled": False,
    "additionalExtensions.maxAttempts": 60,
    "additionalExtensions.retryDelaySeconds": 5,
    "additionalExtensions.backoffLimit": 3,
    "additionalExtensions.enableOnWorkers": False,
    "additionalExtensions.extensions": ["postgis", "postgis_topology", "pg_partman"],
}


# Defaults the chart derives instead of spelling them in values.yaml; with the default
# clusterName they are the original chart's names (README "Deviations").
SEED_DERIVED = {"secret.name": "citusdemo", "ssl.secretName": "citusdemo-ssl-certs"}
# Deliberate deviations from the original chart's defaults (README "Differences from the
# original chart"): image.tag `latest` -> the chart's appVersion.
SEED_CHANGED = {"image.tag": ("latest", "")}


def values():
    with open(os.path.join(CHART, "values.yaml")) as f:
        return yaml.safe_load(f)


def test_seed_parameters_and_defaults():
    v = values()
    for path, default in SEED_DEFAULTS.items():
        node = v
        for key in path.split("."):
            assert key in node, "parameter %s of the original chart is missing" % path
            node = node[key]
        assert node == default, "%s defaults to %r, the original chart to %r" % (path, node, default)
    assert [w["citusGroup"] for w in v["workers"]] == ["1", "2"]
    assert all(w["replicas"] == 2 and w["citusType"] == "worker" for w in v["workers"])


def test_seed_derived_defaults():
    from conftest import render
    v = values()
    assert v["secret"]["name"] == "" and v["ssl"]["secretName"] == ""
    r = render({"ssl": {"enabled": True}})
    assert r.names("Secret") == [SEED_DERIVED["secret.name"]]
    vols = {v["name"]: v for v in r.get("StatefulSet", "citusdemo-0")["spec"]["template"]["spec"]["volumes"]}
    assert vols["ssl-certs"]["secret"]["secretName"] == SEED_DERIVED["ssl.secretName"]


def test_seed_deviations_are_documented():
    v = values()
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    section = readme.split("## Differences from the original chart", 1)
    assert len(section) == 2, "README lacks the section naming the deviations"
    for path, (seed, now) in SEED_CHANGED.items():
        node = v
        for key in path.split("."):
            node = node[key]
        assert node == now, path
        assert "`%s`" % path in section[1].split("\n## ", 1)[0], path


def test_readme_table_is_up_to_date():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "chart", "gen_readme.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_readme_documents_every_parameter():
    with open(os.path.join(CHART, "README.md")) as f:
        readme = f.read()
    for path in list(SEED_DEFAULTS) + list(SEED_DERIVED) + list(SEED_CHANGED):
        assert "| `%s` |" % path in readme, path


def test_generator_flags_undocumented_keys(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests", "chart"))
    import gen_readme
    rows, missing = gen_readme.parse("a:\n  # -- documented\n  b: 1\n  c: 2\n# -- whole list\nd:\n  - e: 1\n")
    assert [r.path for r in rows] == ["a.b", "d"] and missing == ["a.c"]
