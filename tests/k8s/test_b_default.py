"""helm install with default values (TLS with verify-full and the chart's generated
certificates, the application role), then: leaders through the Kubernetes DCS, helm test,
the application role logs in over verify-full and distributes a table, failover of the
coordinator leader, RBAC, helm upgrade (passwords kept, an extension added
without restarting any pod). The tests of this module run in order on one release."""
import base64
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import CHART, Kube, sockets_to_object_only_addresses, wait_for
from controlplane import Api, KubeError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import rest  # noqa: E402  (tests/harness: shared by the suites)

NS = "citus-default"
CLUSTER = "citusdemo"
GROUPS = [0, 1, 2]
MEMBERS = {0: 3, 1: 2, 2: 2}


@pytest.fixture(scope="module")
def release(kube):
    t0 = time.monotonic()
    res = kube.helm("install", "citus", str(CHART), "-n", NS, "--create-namespace",
                    "--timeout", "10m")
    print(f"\nTIMING helm install (default values): {time.monotonic() - t0:.1f}s")
    yield res
    t0 = time.monotonic()
    kube.remove_release(NS)
    print(f"\nTIMING helm uninstall + namespace deletion: {time.monotonic() - t0:.1f}s")


def test_install_accepted(kube, release):
    manifest = kube.helm("get", "manifest", "citus", "-n", NS).stdout
    kinds = {}
    for doc in manifest.split("\n---"):
        for line in doc.splitlines():
            if line.startswith("kind: "):
                kinds.setdefault(line[6:].strip(), 0)
                kinds[line[6:].strip()] += 1
    assert kinds.get("StatefulSet") == 3, kinds
    for g in GROUPS:
        sts = kube.api.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets/{CLUSTER}-{g}")
        assert sts["spec"]["replicas"] == MEMBERS[g]
    for name in ("Role", "RoleBinding", "ServiceAccount", "Secret", "PodDisruptionBudget"):
        assert name in kinds, f"{name} not in the release: {kinds}"


def test_leaders_elected_via_kubernetes_dcs(kube, release):
    leaders = kube.wait_leaders(NS, CLUSTER, GROUPS, 420)
    for g, (pod, ep) in leaders.items():
        # Endpoints <cluster>-<group> is Patroni's leader lock and points at the leader
        ann = ep["metadata"]["annotations"]
        assert ann["leader"] == pod["metadata"]["name"]
        # Patroni labels its pod in the HA cycle after it took the lock: wait for that one
        name = pod["metadata"]["name"]
        wait_for(f"{name} labelled role=primary", lambda: kube.api.get(
            f"/api/v1/namespaces/{NS}/pods/{name}")["metadata"]["labels"].get("role")
            == "primary", 30, 0.5)
        assert [p["name"] for s in ep["subsets"] for p in s["ports"]] == ["postgresql"]
    for g in GROUPS:
        kube.wait_replicas_running(NS, CLUSTER, g, MEMBERS[g] - 1, 300)
    assert sockets_to_object_only_addresses() == []
    # every member is Ready (readiness probe through the kubelet stand-in)
    wait_for("every pod Ready", lambda: all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group")), 120, 2)


def test_helm_test_passes(kube, release):
    res = kube.helm("test", "citus", "-n", NS, "--timeout", "5m", check=False)
    log = kube.pod_log(NS, f"{CLUSTER}-test")
    assert res.returncode == 0, f"helm test failed:\n{res.stdout}\n--- test pod log:\n{log}"
    assert "all checks passed" in log, log
    assert "ok: 2 active worker nodes" in log, log


def test_tls_verify_full_with_generated_certificates(kube, release):
    """No certificate was given: the chart generated them, and every member serves TLS with
    a certificate that passes verify-full for its pod DNS name against the generated CA."""
    import psycopg2
    secrets = kube.api.get(f"/api/v1/namespaces/{NS}/secrets")["items"]
    tls = next(s for s in secrets if s["metadata"]["name"] == f"{CLUSTER}-ssl-certs")
    assert set(tls["data"]) == {"ca.crt", "server.crt", "server.key"}
    ca = kube.state / "default-ca.crt"
    ca.write_bytes(base64.b64decode(tls["data"]["ca.crt"]))
    pw = kube.secret_data(NS, CLUSTER)["superuser-password"]
    kube.wait_leaders(NS, CLUSTER, GROUPS, 120)
    for pod in kube.pods(NS, f"cluster-name={CLUSTER},citus-group"):
        name, g = pod["metadata"]["name"], pod["metadata"]["labels"]["citus-group"]
        host = f"{name}.{CLUSTER}-{g}-hl.{NS}.svc.cluster.local"
        conn = psycopg2.connect(host=host, hostaddr=kube.addr(pod), port=5432, user="postgres",
                                password=pw, dbname="postgres", sslmode="verify-full",
                                sslrootcert=str(ca), connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert cur.fetchone() == (True,), name
                # the members replicate over TLS too
                cur.execute("SELECT count(*), bool_and(s.ssl) FROM pg_stat_replication r "
                            "JOIN pg_stat_ssl s USING (pid)")
                count, all_ssl = cur.fetchone()
                assert count == 0 or all_ssl, f"{name}: a replication connection without TLS"
                if g == "0":
                    cur.execute("SHOW citus.node_conninfo")
                    assert "sslmode=verify-full" in cur.fetchone()[0]
        finally:
            conn.close()


def test_application_role_distributes_a_table(kube, release):
    """The app role (app.username default) logs in with the generated app-password, over
    verify-full, at the coordinator service's name (it routes to the coordinator's primary),
    and creates and uses a distributed table; it is no superuser."""
    import psycopg2
    secret = kube.secret_data(NS, CLUSTER)
    pw = secret["app-password"]
    assert len(pw) >= 32
    ca = kube.state / "default-ca.crt"
    ca.write_bytes(base64.b64decode(kube.api.get(
        f"/api/v1/namespaces/{NS}/secrets/{CLUSTER}-ssl-certs")["data"]["ca.crt"]))
    service = f"{CLUSTER}-0.{NS}.svc.cluster.local"

    def connect():
        pod, ep = kube.leader(NS, CLUSTER, 0)
        # what the Service's DNS name leads to: the pod in its Endpoints (Patroni's lock)
        assert [a["ip"] for s in ep["subsets"] for a in s["addresses"]] == [pod["status"]["podIP"]]
        try:
            return psycopg2.connect(host=service, hostaddr=kube.addr(pod), port=5432, user="app",
                                    password=pw, dbname="citus", sslmode="verify-full",
                                    sslrootcert=str(ca), connect_timeout=5)
        except psycopg2.OperationalError as e:  # the role may not be there yet: retried
            raise OSError(str(e).strip()) from e
    conn = wait_for("the app role logging in", connect, 180, 3)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, s.ssl, r.rolsuper FROM pg_stat_ssl s, pg_roles r "
                        "WHERE s.pid = pg_backend_pid() AND r.rolname = current_user")
            assert cur.fetchone() == ("app", True, False)
            cur.execute("CREATE TABLE app_orders (id bigint PRIMARY KEY, item text NOT NULL)")
            cur.execute("SELECT create_distributed_table('app_orders', 'id')")
            cur.execute("INSERT INTO app_orders SELECT g, 'item ' || g FROM generate_series(1, 200) g")
            cur.execute("SELECT count(*) FROM app_orders")
            assert cur.fetchone() == (200,)
            cur.execute("SELECT count(DISTINCT p.groupid) FROM pg_dist_placement p "
                        "JOIN pg_dist_shard s USING (shardid) "
                        "WHERE s.logicalrelid = 'app_orders'::regclass")
            assert cur.fetchone()[0] == 2, "shards in both worker groups"
            cur.execute("DROP TABLE app_orders")
    finally:
        conn.close()


def _api_status(pod, method, path, body=None, password=None):
    """Status of a request to the pod's Patroni REST API (https with the default TLS, like the
    probes without a certificate check), with basic auth when password."""
    import json
    import ssl
    import urllib.error
    import urllib.request
    headers = {"Content-Type": "application/json"}
    if password is not None:
        headers["Authorization"] = rest.basic_auth("patroni", password)
    data = json.dumps(body).encode() if body is not None else None
    scheme = Kube.api_scheme(pod)
    req = urllib.request.Request(f"{scheme}://{Kube.addr(pod)}:8008{path}", data=data,
                                 method=method, headers=headers)
    ctx = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_restapi_needs_the_secrets_credentials(kube, release):
    """The chart's default: Patroni's REST API refuses changes without the credentials from
    the release's secret (restapi-password), takes them with it; probes (GET) stay open; no
    password of the secret appears in any pod's log."""
    secret = kube.secret_data(NS, CLUSTER)
    assert len(secret["restapi-password"]) >= 32
    pod, _ = kube.wait_leaders(NS, CLUSTER, [1], 120)[1]
    body = {"maximum_lag_on_failover": 1048576}  # the chart's value: changes nothing
    assert _api_status(pod, "PATCH", "/config", body) == 401
    assert _api_status(pod, "PATCH", "/config", body, "wrong") == 401
    assert _api_status(pod, "PATCH", "/config", body, secret["restapi-password"]) == 200
    assert _api_status(pod, "GET", "/readiness") == 200
    for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group"):
        log = kube.pod_log(NS, p["metadata"]["name"])
        assert log, p["metadata"]["name"]
        for key, pw in secret.items():
            assert pw not in log, f"{key} appears in {p['metadata']['name']}'s log"


def _start_ids(kube):
    return {p["metadata"]["name"]: (p["metadata"]["uid"],
                                    p["status"]["containerStatuses"][0]["restartCount"])
            for p in kube.pods(NS, f"cluster-name={CLUSTER},citus-group")}


def test_failover_of_coordinator_leader(kube, release):
    old, _ = kube.wait_leaders(NS, CLUSTER, [0], 120)[0]
    # With Citus, Patroni's quorum synchronous mode promotes only a synchronous standby: wait
    # for one (the test may run first, right after the install, while replicas still copy)
    def synchronous_standby():
        members = kube.patroni(old, "/cluster").get("members", [])
        return [m["name"] for m in members if m.get("role") in ("sync_standby", "quorum_standby")
                and m.get("state") == "streaming"]
    wait_for("a synchronous standby of the coordinator", synchronous_standby, 300, 2)
    old_name, old_uid = old["metadata"]["name"], old["metadata"]["uid"]
    kube.api.delete(f"/api/v1/namespaces/{NS}/pods/{old_name}")

    def new_leader():
        found = kube.leader(NS, CLUSTER, 0)
        return found if found and found[0]["metadata"]["name"] != old_name else None
    pod, _ = wait_for("a new coordinator leader", new_leader, 180, 2)
    assert pod["metadata"]["name"] != old_name
    # The StatefulSet recreates the pod (same name, new uid) and it rejoins as a replica.
    wait_for(f"{old_name} recreated", lambda: (lambda p: p and p["metadata"]["uid"] != old_uid
                                               and p["status"].get("podIP"))(
        kube.pod(NS, old_name)), 180, 2)

    def rejoined():
        st = kube.patroni(kube.pod(NS, old_name))
        return st.get("role") == "replica" and st.get("state") in ("running", "streaming")
    wait_for(f"{old_name} running as a replica", rejoined, 300, 2)


def _pid1_of(name):
    """Host PID of the pod's PID 1 (citus-init), found by its environment."""
    want = {f"POD_NAME={name}".encode(), f"POD_NAMESPACE={NS}".encode()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
            with open(f"/proc/{entry}/status") as f:
                nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
        except OSError:
            continue
        if want <= env and nspid[-1] == "1":
            return int(entry)
    return None


def test_container_restart_counted_and_member_rejoins(kube, release):
    name = f"{CLUSTER}-1-1"
    leader, _ = kube.wait_leaders(NS, CLUSTER, [1], 120)[1]
    if leader["metadata"]["name"] == name:
        name = f"{CLUSTER}-1-0"
    before = kube.pod(NS, name)
    pid = wait_for(f"PID 1 of {name}", lambda: _pid1_of(name), 30)
    os.kill(pid, signal.SIGKILL)
    wait_for(f"{name} restarted by the kubelet (restartPolicy Always)", lambda: kube.pod(
        NS, name)["status"]["containerStatuses"][0]["restartCount"] == 1, 60, 1)
    after = kube.pod(NS, name)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    # (the launcher's `unshare --fork` turns PID 1's SIGKILL into exit status 1, so the
    # stand-in reports 1 where a kubelet would report 137: only "failed" is checked)
    assert after["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] != 0

    def rejoined():
        st = kube.patroni(kube.pod(NS, name))
        return st.get("role") == "replica" and st.get("state") in ("running", "streaming")
    wait_for(f"{name} running as a replica again", rejoined, 180, 2)


def _token_for(kube, sa):
    res = kube.api.post(f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 600}})
    return res["status"]["token"]


def test_patroni_uses_the_charts_service_account(kube, release):
    pod = kube.pod(NS, f"{CLUSTER}-0-0")
    assert pod["spec"]["serviceAccountName"] == CLUSTER
    vol = [v for v in pod["spec"]["volumes"] if "projected" in v]
    assert vol, "no projected service-account token volume in the pod"
    # The token the pod sees is the chart's ServiceAccount's, bound to this pod.
    tok_file = next((kube.state / "kubelet" / "pods").glob(
        f"{NS}_{CLUSTER}-0-0_{pod['metadata']['uid'][:8]}/volumes/{vol[0]['name']}/token"))
    review = kube.api.post("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": tok_file.read_text()}})
    assert review["status"]["authenticated"], review["status"]
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{NS}:{CLUSTER}"
    # Patroni keeps renewing its leader lock with that identity alone.
    first = kube.endpoints(NS, f"{CLUSTER}-0")["metadata"]["annotations"]["renewTime"]
    wait_for("the leader lock renewed", lambda: kube.endpoints(NS, f"{CLUSTER}-0")[
        "metadata"]["annotations"]["renewTime"] != first, 60, 2)


# What Patroni does with each rule of the chart's Role (the operations are Patroni's own
# requests, made here with a ServiceAccount token; all of them are harmless: no-op patches,
# and a probe Endpoints object that the deletecollection removes again).
PROBE = "pck.test/rbac-probe"


def rule_key(rule):
    """A rule of the chart's Role by what it covers: (resource, limited to names?)."""
    return rule["resources"][0], "resourceNames" in rule


def _operations(api):
    """The Patroni operations each rule of the Role guards, keyed by rule_key."""
    ep = f"/api/v1/namespaces/{NS}/endpoints"
    labels = {"metadata": {"labels": {"cluster-name": CLUSTER}}}
    return {
        ("endpoints", False): [
            ("list the cluster's endpoints (DCS cache)",
             lambda: api.get(ep, labelSelector=f"cluster-name={CLUSTER}")),
            ("create an endpoints object (first lock / configuration)",
             lambda: _create_probe_endpoints(api)),
            ("deletecollection of labelled endpoints (patronictl remove)",
             lambda: api.request("DELETE", ep, params={"labelSelector": f"{PROBE}=1"}))],
        ("endpoints", True): [
            ("get the leader lock endpoints (leader race re-read)",
             lambda: api.get(f"{ep}/{CLUSTER}-0")),
            ("patch the leader lock endpoints (DCS write)",
             lambda: api.patch(f"{ep}/{CLUSTER}-0", labels)),
            ("patch a worker group's configuration endpoints (patronictl edit-config)",
             lambda: api.patch(f"{ep}/{CLUSTER}-2-config", labels))],
        ("pods", False): [
            ("list the cluster's pods (members)",
             lambda: api.get(f"/api/v1/namespaces/{NS}/pods",
                             labelSelector=f"cluster-name={CLUSTER}"))],
        ("pods", True): [
            ("patch the own pod's labels/annotations (role label, member status)",
             lambda: api.patch(f"/api/v1/namespaces/{NS}/pods/{CLUSTER}-0-0", labels))],
    }


# What the Role deliberately does not allow (Patroni does not need it with use_endpoints).
def _not_granted(api):
    return [
        ("list configmaps (Patroni's ConfigMap mode, unused)",
         lambda: api.get(f"/api/v1/namespaces/{NS}/configmaps",
                         labelSelector=f"cluster-name={CLUSTER}")),
        ("create the <scope>-config service (the chart creates it)",
         lambda: _create_config_service(api)),
        ("delete one endpoints object",
         lambda: api.request("DELETE", f"/api/v1/namespaces/{NS}/endpoints/{CLUSTER}-probe")),
        ("update (PUT) a pod",
         lambda: api.put(f"/api/v1/namespaces/{NS}/pods/{CLUSTER}-0-0", {})),
        ("patch a pod that is not a member (names outside the groups' replicas)",
         lambda: api.patch(f"/api/v1/namespaces/{NS}/pods/{CLUSTER}-0-99",
                           {"metadata": {"labels": {"cluster-name": CLUSTER}}})),
        ("get an endpoints object Patroni never uses by name",
         lambda: api.get(f"/api/v1/namespaces/{NS}/endpoints/{CLUSTER}-rbac-probe")),
        ("patch an endpoints object of another cluster",
         lambda: api.patch(f"/api/v1/namespaces/{NS}/endpoints/other-0",
                           {"metadata": {"labels": {"cluster-name": "other"}}})),
    ]


def _create_probe_endpoints(api):
    try:
        api.post(f"/api/v1/namespaces/{NS}/endpoints", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": f"{CLUSTER}-rbac-probe", "labels": {PROBE: "1"}}})
    except KubeError as e:
        if e.status != 409:  # left by an earlier attempt: authorized all the same
            raise


def _create_config_service(api):
    try:
        api.post(f"/api/v1/namespaces/{NS}/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{CLUSTER}-0-config", "labels": {"cluster-name": CLUSTER}},
            "spec": {"clusterIP": "None"}})
    except KubeError as e:
        if e.status != 409:  # it exists (the chart made it): authorized all the same
            raise


def _attempt(op, expect_ok, timeout=20):
    """Run op until its outcome is the expected one (new RBAC objects reach the authorizer
    within moments) or timeout; return "ok" or "HTTP <status>"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            op()
            got = "ok"
        except KubeError as e:
            got = f"HTTP {e.status}"
        if (got == "ok") == expect_ok or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_rbac_each_rule_guards_a_named_operation(kube, release):
    """For each rule of the chart's Role: a copy of the Role without that rule, bound to a
    fresh ServiceAccount, makes the named Patroni operation(s) fail with 403, and the whole
    Role allows them all but nothing Patroni does not use (ConfigMaps, creating Services,
    deleting single Endpoints, replacing pods, objects outside the names of the named rules)."""
    role = kube.api.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/{CLUSTER}")
    ca = kube.cp.certs / "ca.crt"
    by_rule = {rule_key(rule): i for i, rule in enumerate(role["rules"])}
    assert len(by_rule) == len(role["rules"]), role["rules"]
    assert set(by_rule) == {("endpoints", False), ("endpoints", True), ("pods", False),
                            ("pods", True)}, role["rules"]
    # With the whole Role (a copy bound to a fresh ServiceAccount) every operation works.
    names = {key: "no-%s%s" % (key[0], "-named" if key[1] else "") for key in by_rule}
    variants = {"all": role["rules"]}
    variants.update({names[key]: [x for j, x in enumerate(role["rules"]) if j != i]
                     for key, i in by_rule.items()})
    rb = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}"
    for name in variants:
        sa = f"rbac-probe-{name}"
        kube.api.post(f"/api/v1/namespaces/{NS}/serviceaccounts",
                      {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}})
        kube.api.post(f"{rb}/roles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                      "kind": "Role", "metadata": {"name": sa},
                                      "rules": variants[name]})
        kube.api.post(f"{rb}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": sa},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]})
    problems = []
    try:
        for name in variants:
            api = Api(ca, token=_token_for(kube, f"rbac-probe-{name}"))
            ops = _operations(api)
            for key, items in ops.items():
                for what, op in items:
                    expect_ok = name != names[key]

                    got = _attempt(op, expect_ok)
                    if expect_ok and got != "ok":
                        problems.append(f"with {name}, {what} gave {got}")
                    if not expect_ok and got != "HTTP 403":
                        problems.append(f"without the {key} rule, {what} gave {got}")
                    print(f"rbac {name}: {what}: {got}")
            if name == "all":
                for what, op in _not_granted(api):
                    got = _attempt(op, False)
                    if got != "HTTP 403":
                        problems.append(f"the Role should not allow: {what}, gave {got}")
                    print(f"rbac {name}: not granted: {what}: {got}")
    finally:
        for name in variants:
            sa = f"rbac-probe-{name}"
            kube.api.delete(f"{rb}/rolebindings/{sa}")
            kube.api.delete(f"{rb}/roles/{sa}")
            kube.api.delete(f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}")
        kube.api.delete(f"/api/v1/namespaces/{NS}/endpoints/{CLUSTER}-rbac-probe")
    assert not problems, "\n".join(problems)


def test_upgrade_keeps_passwords_and_adds_extension_without_restart(kube, release):
    before_pw = kube.secret_data(NS, CLUSTER)
    before = _start_ids(kube)
    kube.helm("upgrade", "citus", str(CHART), "-n", NS, "--timeout", "10m",
              "--set", "additionalExtensions.enabled=true",
              "--set", "additionalExtensions.extensions={hstore}")
    assert kube.secret_data(NS, CLUSTER) == before_pw, "helm upgrade changed the passwords"
    pw = before_pw["superuser-password"]
    pod, _ = kube.wait_leaders(NS, CLUSTER, [0], 120)[0]
    wait_for("extension hstore on the coordinator", lambda: kube.sql(
        kube.leader(NS, CLUSTER, 0)[0],
        "SELECT 1 FROM pg_extension WHERE extname = 'hstore'", pw), 180, 3)
    assert _start_ids(kube) == before, "a pod was recreated or restarted by the upgrade"
