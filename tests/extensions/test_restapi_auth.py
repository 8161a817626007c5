"""Patroni's REST API is authenticated by default (RESTAPI_AUTH, docs/citus-init.md).

Real etcd, PostgreSQL and Patroni, citus-init as PID 1 of each simulated pod (tests/harness):
- unsafe methods (POST /restart, PATCH /config, POST /switchover) without credentials, or
  with a wrong password, get 401 and change nothing; with the pod's credentials they work;
- GET endpoints (/patroni, /health, /liveness, /readiness, /cluster) need no credentials;
- `patronictl list` and `patronictl switchover --force` inside a pod work with no flags
  (PATRONICTL_CONFIG_FILE, as the chart sets it: the rendered file carries the credentials);
- no password appears in any pod's log;
- RESTAPI_AUTH=false renders no authentication; a missing password file stops the pod (78);
- in Citus mode the coordinator's POST /citus (workers' notifications) is behind the same
  credentials, so every member must share them; the leader module's PATCH /config wakeup
  sends them.
"""
import json
from pathlib import Path

import pytest
import yaml

from conftest import (LEADER_TIMEOUT, PodSet, assert_no_secrets, start_citus_pair,
                      wait_leader)
from harness import cluster, rest


def wait_streaming(pod, timeout=LEADER_TIMEOUT):
    def check():
        pod.check_running()
        st = pod.patroni()
        return st.get("role") == "replica" and st.get("state") in ("running", "streaming")
    cluster.wait_for(check, timeout, what=f"{pod.name} to run as a replica")


def raw_request(pod, method, path, body=None, authorization=None):
    return rest.request(pod.ip, cluster.API_PORT, method, path, body, authorization)[0]


def patronictl(pod, *args):
    """patronictl inside the pod, configured only by PATRONICTL_CONFIG_FILE (as the chart's
    StatefulSet sets it for `kubectl exec`)."""
    conf = f"{pod.env['RUN_DIR']}/patroni.yml"
    return pod.exec(["patronictl", *args], env={"PATRONICTL_CONFIG_FILE": conf}, timeout=90)


def env_for(cluster_name, **more):
    return dict({"CLUSTER_NAME": cluster_name, "CITUS_DATABASE": "postgres"}, **more)


@pytest.fixture(scope="module")
def pair(net, etcd, workdir, citus_init):
    """Two members of one non-Citus cluster sharing their secrets; a leads, b streams."""
    ps = PodSet(net, etcd, workdir)
    ps.next_ip = 60
    pw = cluster.new_passwords()
    try:
        a = ps.new("auth-a", env=env_for("auth"), passwords=pw)
        wait_leader(a)
        b = ps.new("auth-b", env=env_for("auth"), passwords=pw)
        wait_streaming(b)
        yield a, b
    finally:
        ps.stop_all()


def rendered(pod):
    return yaml.safe_load((Path(pod.env["RUN_DIR"]) / "patroni.yml").read_text())


def test_rendered_configuration_holds_the_credentials(pair):
    a, _ = pair
    assert rendered(a)["restapi"]["authentication"] == {"username": "patroni",
                                                        "password": a.passwords["restapi"]}
    rc, out = a.run(["check"])
    assert rc == 0, out
    assert "password: '********'" in out or 'password: "********"' in out, out
    assert a.passwords["restapi"] not in out, "check must mask the REST API password"


def test_get_endpoints_need_no_credentials(pair):
    a, b = pair
    for path in ("/patroni", "/health", "/liveness", "/readiness", "/cluster"):
        assert raw_request(a, "GET", path) == 200, path
    assert raw_request(b, "GET", "/replica") == 200


def test_unsafe_methods_without_or_with_wrong_credentials_get_401(pair):
    a, b = pair
    before = a.api("GET", "/config", auth=False)
    wrong = rest.basic_auth("patroni", "not-" + a.passwords["restapi"])
    for authorization in (None, wrong, rest.basic_auth("someone", a.passwords["restapi"])):
        assert raw_request(a, "PATCH", "/config", {"maximum_lag_on_failover": 1},
                           authorization) == 401
        assert raw_request(b, "POST", "/restart", {}, authorization) == 401
        assert raw_request(a, "POST", "/switchover", {"leader": a.name, "candidate": b.name},
                           authorization) == 401
        assert raw_request(b, "POST", "/reinitialize", {}, authorization) == 401
    assert a.api("GET", "/config", auth=False) == before, "a refused PATCH changed /config"
    assert a.is_leader()


def test_unsafe_methods_with_credentials_work(pair):
    a, b = pair
    status, text = a.api("PATCH", "/config", {"maximum_lag_on_failover": 1048577})
    assert status == 200, text
    assert json.loads(a.api("GET", "/config", auth=False)[1])["maximum_lag_on_failover"] == 1048577
    status, text = b.api("POST", "/restart", {})
    assert status == 200, text
    wait_streaming(b)


def test_patronictl_in_the_pod_works_without_flags(pair):
    a, b = pair
    res = patronictl(a, "list", "--format", "json")
    assert res.returncode == 0, res.stderr
    members = {m["Member"]: m for m in json.loads(res.stdout)}
    assert set(members) == {a.name, b.name}

    res = patronictl(b, "switchover", "--leader", a.name, "--candidate", b.name, "--force")
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "401" not in res.stdout + res.stderr
    wait_leader(b)
    wait_streaming(a)
    for pod in (a, b):
        assert_no_secrets(pod, res.stdout, res.stderr)


def test_no_password_in_any_pod_log(pair):
    for pod in pair:
        assert_no_secrets(pod)


# ---------------------------------------------------------------- configuration

def test_auth_off_leaves_the_api_open(pods):
    p = pods.new("auth-off", env=env_for("authoff", RESTAPI_AUTH="false"))
    (p.secrets / "restapi-password").unlink()  # not needed when off
    wait_leader(p)
    assert raw_request(p, "PATCH", "/config", {"maximum_lag_on_failover": 1048578}) == 200
    assert "authentication" not in rendered(p)["restapi"]


def test_missing_password_file_stops_the_pod(pods):
    p = pods.new("auth-nopw", env=env_for("authnopw"), start=False)
    (p.secrets / "restapi-password").unlink()
    rc, out = p.run()
    assert rc == 78, out
    assert (f"RESTAPI_PASSWORD: not set and {p.secrets}/restapi-password does not exist; "
            "expected the Patroni REST API password in that file or in RESTAPI_PASSWORD") in out
    assert_no_secrets(p, out)


# ---------------------------------------------------------------- Citus

def test_citus_notifications_need_the_shared_credentials(pods):
    """Patroni 4.1.5 checks access on POST /citus too: workers send their own credentials,
    which is why every member of the cluster shares the secret."""
    if not cluster.paths.citus_available():
        pytest.skip(f"citus is not installed ({cluster.paths.citus_control_file()} is missing)")
    # an extension list, so the coordinator loads the leader module (its PATCH /config wakeup)
    coord, worker = start_citus_pair(pods, "authcitus", {"EXTENSIONS": "citext"})
    cluster.wait_for(lambda: coord.sql("SELECT count(*) FROM pg_dist_node WHERE groupid = 1 "
                                       "AND noderole = 'primary'", "citus") == [(1,)],
                     LEADER_TIMEOUT, what="the worker to be registered")
    event = {"type": "after_promote", "group": 1, "leader": worker.name, "timeout": 20,
             "cooldown": 5}
    assert raw_request(coord, "POST", "/citus", event) == 401
    assert coord.api("POST", "/citus", event)[0] == 200
    # Patroni 4.1.5 does not check access on its generic alias (docs/operations.md says so)
    assert raw_request(coord, "POST", "/mpp", event) == 200
    # the leader module's wakeup (PATCH /config) carries the credentials: Patroni checks
    # access before anything else (@check_access), so any answer but 401 proves they passed
    cluster.wait_for(lambda: "asked Patroni for an HA cycle now" in coord.log() or
                     "Patroni refused an early HA cycle" in coord.log(), 30,
                     what="the coordinator's leader module to wake Patroni")
    assert "http_status=401" not in coord.log(), coord.log()[-3000:]
    for pod in (coord, worker):
        assert_no_secrets(pod)
