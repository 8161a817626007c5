"""The alerting rules: promtool's syntax check, its unit tests (alerts_test.yaml and
alerts_long_test.yaml, the rules with windows of hours), tests for every rule, and the
rules as the suite's Prometheus loaded them."""
import os
import subprocess

import yaml

from conftest import ASSETS, CITUS, prom_api, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(ASSETS, "alerts.yaml")
UNIT_TESTS = ["alerts_test.yaml", "alerts_long_test.yaml"]


def alert_names():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules():
    out = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass():
    out = subprocess.run(["promtool", "test", "rules", *UNIT_TESTS], cwd=HERE,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_unit_test():
    tests = []
    for name in UNIT_TESTS:
        with open(os.path.join(HERE, name)) as f:
            tests += yaml.safe_load(f)["tests"]
    tested_firing = {t["alertname"] for test in tests for t in test.get("alert_rule_test", [])
                     if t.get("exp_alerts")}
    tested_quiet = {t["alertname"] for test in tests for t in test.get("alert_rule_test", [])
                    if not t.get("exp_alerts")}
    for name in alert_names():
        assert name in tested_firing, f"{name}: no test where it fires"
        assert name in tested_quiet, f"{name}: no test where it stays quiet"


def test_every_rule_has_a_runbook_section():
    with open(os.path.join(HERE, "../../docs/observability.md")) as f:
        doc = f.read()
    with open(RULES) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    for rule in rules:
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {rule['alert']}\n" in doc, f"docs/observability.md has no runbook for {rule['alert']}"


def test_prometheus_loaded_every_rule_healthy():
    def evaluated():
        rules = {r["name"]: r for g in prom_api("/api/v1/rules")["groups"] for r in g["rules"]}
        return rules if rules and all(r["health"] != "unknown" for r in rules.values()) else None
    loaded = wait_for("every rule evaluated once", evaluated, timeout=30)
    assert sorted(loaded) == sorted(alert_names())
    for name, rule in loaded.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"


def test_rules_on_the_exporters_real_series():
    """The backup and restore point rules against what the exporters really export (the
    rows tests/monitoring/run inserted are from January 2026): the coordinator's newest
    backup failed, so CitusBackupFailed fires at once for it; the rules with a `for` are
    pending, CitusBackupTooOld for both groups."""
    want = {("CitusBackupFailed", "firing", "0"), ("CitusBackupTooOld", "pending", "0"),
            ("CitusRestorePointTooOld", "pending", "0")}
    if CITUS:
        want.add(("CitusBackupTooOld", "pending", "1"))

    def alerts():
        found = {(a["labels"]["alertname"], a["state"], a["labels"]["citus_group"]): a["labels"]
                 for a in prom_api("/api/v1/alerts")["alerts"]}
        return found if want <= set(found) else None
    found = wait_for("the backup and restore point alerts", alerts, timeout=30)
    assert found[("CitusBackupFailed", "firing", "0")]["stanza"] == "mon-0"
    assert found[("CitusRestorePointTooOld", "pending", "0")]["pod"] == "mon-0-0"
    # nothing else: a coordinator, a worker and a standby in good health
    assert set(found) == want
