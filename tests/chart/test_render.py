"""Rendered objects of helm/citus-cluster: names, labels, env and mounts per option, ..."""
import base64
import os
import re

import pytest
import yaml

from conftest import NAMESPACE, RELEASE, ROOT, render, render_error

C = "citusdemo"
GROUPS = ["0", "1", "2"]
CAPS_AS_ROOT = ["CHOWN", "FOWNER", "DAC_OVERRIDE", "SETUID", "SETGID"]


def pod_spec(obj):
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def container(obj, name=None):
    """The pod's only container; in a database pod (which may have the `exporter` beside it)
    the database container `postgres`, or the one named."""
    containers = pod_spec(obj)["containers"]
    if name is None and len(containers) > 1:
        name = "postgres"
    if name is None:
        assert len(containers) == 1
        return containers[0]
    found = [c for c in containers if c["name"] == name]
    assert len(found) == 1, "container %s: %s" % (name, [c["name"] for c in containers])
    return found[0]


def env(obj):
    out = {}
    for e in container(obj)["env"]:
        assert e["name"] not in out, "duplicate env %s" % e["name"]
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def mounts(obj):
    return {m["mountPath"]: m for m in container(obj).get("volumeMounts", [])}


def volumes(obj):
    return {v["name"]: v for v in pod_spec(obj).get("volumes", [])}


def mounted_volume(obj, path):
    m = mounts(obj)[path]
    return volumes(obj).get(m["name"])


# ---------------------------------------------------------------- names and labels

def test_statefulset_per_group_with_replicas(default):
    assert default.names("StatefulSet") == ["citusdemo-0", "citusdemo-1", "citusdemo-2"]
    replicas = {s["metadata"]["name"]: s["spec"]["replicas"] for s in default.all("StatefulSet")}
    assert replicas == {"citusdemo-0": 3, "citusdemo-1": 2, "citusdemo-2": 2}
    for g in GROUPS:
        sts = default.get("StatefulSet", "%s-%s" % (C, g))
        assert sts["spec"]["serviceName"] == "%s-%s-hl" % (C, g)
        assert sts["spec"]["podManagementPolicy"] == "Parallel"
        assert sts["metadata"]["namespace"] == NAMESPACE


def test_services(default):
    expected = ["citusdemo-workers"]
    for g in GROUPS:
        expected += ["citusdemo-%s" % g, "citusdemo-%s-config" % g, "citusdemo-%s-hl" % g]
    assert default.names("Service") == sorted(expected)
    for g in GROUPS:
        primary = default.get("Service", "citusdemo-%s" % g)
        assert "selector" not in primary["spec"], "Patroni owns the Endpoints of the primary service"
        # citus-init renders kubernetes.ports [{name: postgresql, port: 5432}] (src/render.c);
        # the Service's port must carry the same name for the Endpoints to be used.
        assert primary["spec"]["ports"] == [{"name": "postgresql", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]
        config = default.get("Service", "citusdemo-%s-config" % g)
        assert config["spec"] == {"clusterIP": "None"}
        hl = default.get("Service", "citusdemo-%s-hl" % g)
        assert hl["spec"]["clusterIP"] == "None"
        assert hl["spec"]["publishNotReadyAddresses"] is True
        sts = default.get("StatefulSet", "citusdemo-%s" % g)
        assert hl["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    workers = default.get("Service", "citusdemo-workers")
    sel = workers["spec"]["selector"]
    assert sel["citus-type"] == "worker" and sel["role"] == "primary" and sel["cluster-name"] == C


def test_labels_on_every_object(default):
    for d in default.docs:
        labels = d["metadata"]["labels"]
        assert labels["cluster-name"] == C, d["metadata"]["name"]
        assert labels["app.kubernetes.io/name"] == "citus-cluster"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert "app.kubernetes.io/version" in labels and "helm.sh/chart" in labels


def test_group_labels_and_selectors(default):
    for g in GROUPS:
        sts = default.get("StatefulSet", "citusdemo-%s" % g)
        kind = "coordinator" if g == "0" else "worker"
        tmpl = sts["spec"]["template"]["metadata"]["labels"]
        assert tmpl["citus-group"] == g and tmpl["citus-type"] == kind
        assert tmpl["app.kubernetes.io/component"] == kind
        sel = sts["spec"]["selector"]["matchLabels"]
        assert set(sel.items()) <= set(tmpl.items())
        # selectors are immutable: nothing that changes with a chart upgrade
        assert set(sel) == {"app.kubernetes.io/name", "app.kubernetes.io/instance", "cluster-name", "citus-group"}
        assert "role" not in tmpl, "the role label belongs to Patroni"


def test_worker_groups_from_values():
    r = render({"workers": [{"citusGroup": 1, "citusType": "worker", "replicas": 3},
                            {"citusGroup": "5", "replicas": 1},
                            {"citusGroup": 7, "citusType": "worker", "replicas": 4}],
                "coordinator": {"replicas": 1}})
    replicas = {s["metadata"]["name"]: s["spec"]["replicas"] for s in r.all("StatefulSet")}
    assert replicas == {"citusdemo-0": 1, "citusdemo-1": 3, "citusdemo-5": 1, "citusdemo-7": 4}
    assert env(r.get("StatefulSet", "citusdemo-5"))["CITUS_GROUP"] == "5"
    assert r.get("StatefulSet", "citusdemo-7")["spec"]["template"]["metadata"]["labels"]["citus-group"] == "7"
    assert r.names("PodDisruptionBudget") == ["citusdemo-0", "citusdemo-1", "citusdemo-5", "citusdemo-7"]


def test_cluster_name_changes_every_name():
    r = render({"clusterName": "shop"})
    assert r.names("StatefulSet") == ["shop-0", "shop-1", "shop-2"]
    assert "shop-workers" in r.names("Service")
    assert env(r.get("StatefulSet", "shop-1"))["CLUSTER_NAME"] == "shop"
    assert env(r.get("StatefulSet", "shop-1"))["KUBERNETES_LABELS"] == "cluster-name=shop"


def test_secret_names_follow_cluster_name():
    r = render({"clusterName": "shop", "ssl": {"enabled": True}})
    assert r.names("Secret") == ["shop", "shop-ssl-ca", "shop-ssl-certs"]
    for sts in r.all("StatefulSet"):
        assert mounted_volume(sts, "/etc/patroni/secrets")["secret"]["secretName"] == "shop"
        assert mounted_volume(sts, "/etc/ssl/certs/postgresql")["secret"]["secretName"] == "shop-ssl-certs"
    r = render({"clusterName": "shop", "ssl": {"enabled": True, "certManager": {
        "enabled": True, "issuerRef": {"name": "ca"}}}})
    assert r.get("Certificate", "shop-tls")["spec"]["secretName"] == "shop-ssl-certs"
    assert r.names("Secret") == ["shop"]


def test_seed_secret_names_accepted_when_set():
    """The original chart's names, set explicitly, are used as given whatever clusterName."""
    r = render({"clusterName": "shop", "secret": {"name": "citusdemo"},
                "ssl": {"enabled": True, "secretName": "citusdemo-ssl-certs"}})
    assert r.names("Secret") == ["citusdemo"]
    sts = r.get("StatefulSet", "shop-0")
    assert mounted_volume(sts, "/etc/patroni/secrets")["secret"]["secretName"] == "citusdemo"
    assert mounted_volume(sts, "/etc/ssl/certs/postgresql")["secret"]["secretName"] == "citusdemo-ssl-certs"


# Every optional object on: what a release can create.
EVERYTHING = {"ssl": {"enabled": True, "clientCert": True,
                      "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}},
              "patroni": {"bypassApiService": True},
              "additionalExtensions": {"enabled": True, "extensions": ["postgis"]}}


def object_keys(r):
    """(kind, namespace, name) of every object; cluster-scoped objects have namespace None."""
    return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in r.docs}


def test_two_releases_in_one_namespace_never_share_a_name():
    a = render(dict(EVERYTHING, clusterName="shop"), release="shop")
    b = render(dict(EVERYTHING, clusterName="billing"), release="billing")
    kinds = {k for k, _, _ in object_keys(a)}
    for kind in ("Secret", "Certificate", "ClusterRole", "RoleBinding", "Job", "Pod", "StatefulSet"):
        assert kind in kinds, kind
    assert object_keys(a) & object_keys(b) == set()
    # the secrets they mount (the TLS secret is not rendered: it is named, not created)
    mounted = lambda r: {v["secret"]["secretName"] for s in r.all("StatefulSet")
                         for v in pod_spec(s)["volumes"] if "secret" in v}
    assert mounted(a) and mounted(a) & mounted(b) == set()


def test_coordinator_disabled():
    r = render({"coordinator": {"enabled": False, "replicas": 3}})
    assert r.names("StatefulSet") == ["citusdemo-1", "citusdemo-2"]
    assert r.all("Pod") == [] and r.names("ConfigMap") == ["citusdemo-metrics-queries"]


# ---------------------------------------------------------------- the pod contract

def test_pod_env_contract(default):
    for g in GROUPS:
        e = env(default.get("StatefulSet", "citusdemo-%s" % g))
        assert e["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert e["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert e["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert e["CLUSTER_NAME"] == C
        assert e["CITUS_GROUP"] == g
        assert e["CITUS_DATABASE"] == "citus"
        assert e["DCS_TYPE"] == "kubernetes"
        assert e["KUBERNETES_LABELS"] == "cluster-name=citusdemo"
        assert e["POD_DNS_DOMAIN"] == "citusdemo-%s-hl.%s.svc.cluster.local" % (g, NAMESPACE)
        assert e["SECRETS_DIR"] == "/etc/patroni/secrets"
        assert e["SUPERUSER_PASSWORD_KEY"] == "superuser-password"
        assert e["REPLICATION_PASSWORD_KEY"] == "replication-password"
        assert e["RESTAPI_AUTH"] == "true"
        assert e["RESTAPI_TLS"] == "true", "TLS is on by default, the REST API too"
        c = container(default.get("StatefulSet", "citusdemo-%s" % g))
        assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
        assert e["RESTAPI_USERNAME"] == "patroni"
        assert e["RESTAPI_PASSWORD_KEY"] == "restapi-password"
        assert "RESTAPI_PASSWORD" not in e, "the password comes from the mounted secret only"
        assert e["PGDATA"] == "/home/postgres/pgdata/pgroot/data"
        assert e["RUN_DIR"] == "/run/citus-init"
        assert e["PATRONICTL_CONFIG_FILE"] == "/run/citus-init/patroni.yml"
        assert e["SSL_ENABLED"] == "true" and e["SSL_MODE"] == "verify-full"
        assert e["PGSSLMODE"] == "verify-full" and e["PGSSLROOTCERT"] == "/etc/ssl/certs/postgresql/ca.crt"
        assert e["SSL_CERT_DIR"] == "/etc/ssl/certs/postgresql" and e["SSL_CLIENT_CERT"] == "false"
        assert e["APP_USERNAME"] == "app" and e["APP_PASSWORD_KEY"] == "app-password"
        assert "APP_PASSWORD" not in e, "the password comes from the mounted secret only"
        assert e["PATRONI_KUBERNETES_USE_ENDPOINTS"] == "true"
        assert e["PATRONI_KUBERNETES_ROLE_LABEL"] == "role"
        assert e["PATRONI_KUBERNETES_LEADER_LABEL_VALUE"] == "primary"
        assert e["TERMINATION_GRACE_PERIOD"] == "30"
        assert int(e["SHUTDOWN_DEADLINE"]) < int(e["TERMINATION_GRACE_PERIOD"])
        assert ("EXTENSIONS_FILE" in e) == (g == "0"), "extension list only on coordinator pods"
        assert "command" not in container(default.get("StatefulSet", "citusdemo-%s" % g)), \
            "the image's entrypoint (citus-init) must run as PID 1"


def contract_variables():
    with open(os.path.join(ROOT, "docs", "citus-init.md")) as f:
        return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", f.read(), re.M))


def test_every_variable_is_in_the_contract():
    """The chart speaks only docs/citus-init.md (plus Patroni's own PATRONI_* and libpq's
    PG* client settings, which the contract passes through)."""
    documented = contract_variables() | {"PATRONICTL_CONFIG_FILE"}
    r = render(files=[os.path.join(ROOT, "examples", "production-values.yaml")])
    for obj in r.all("StatefulSet") + r.all("Job"):
        for name in env(obj):
            if name.startswith("PATRONI_") or name in ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
                continue
            assert name in documented, "%s sets %s, which docs/citus-init.md does not define" % (
                obj["metadata"]["name"], name)


def test_shutdown_deadline_follows_grace_period():
    r = render({"terminationGracePeriodSeconds": 90})
    sts = r.get("StatefulSet", "citusdemo-1")
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90
    e = env(sts)
    assert e["TERMINATION_GRACE_PERIOD"] == "90" and e["SHUTDOWN_DEADLINE"] == "85"


def test_cluster_domain():
    e = env(render({"clusterDomain": "k8s.example"}).get("StatefulSet", "citusdemo-2"))
    assert e["POD_DNS_DOMAIN"] == "citusdemo-2-hl.%s.svc.k8s.example" % NAMESPACE


def test_default_mounts(default):
    for g in GROUPS:
        sts = default.get("StatefulSet", "citusdemo-%s" % g)
        assert mounted_volume(sts, "/home/postgres/pgdata") == {"name": "pgdata", "emptyDir": {"sizeLimit": "5Gi"}}
        run = mounted_volume(sts, "/run/citus-init")
        assert run["emptyDir"]["medium"] == "Memory"
        shm = mounted_volume(sts, "/dev/shm")
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}
        sec = mounted_volume(sts, "/etc/patroni/secrets")["secret"]
        assert sec["secretName"] == "citusdemo"
        assert sec["defaultMode"] == 0o440
        assert sec["items"] == [{"key": "superuser-password", "path": "superuser-password"},
                                {"key": "replication-password", "path": "replication-password"},
                                {"key": "restapi-password", "path": "restapi-password"},
                                {"key": "app-password", "path": "app-password"}]
        assert mounts(sts)["/etc/patroni/secrets"]["readOnly"] is True
        # the generated TLS secret, all three files (it holds nothing else; the CA key is
        # in citusdemo-ssl-ca, which no pod mounts)
        tls = mounted_volume(sts, "/etc/ssl/certs/postgresql")["secret"]
        assert tls == {"secretName": "citusdemo-ssl-certs", "defaultMode": 0o440}
        assert mounts(sts)["/etc/ssl/certs/postgresql"]["readOnly"] is True
        if g == "0":
            ext = mounts(sts)["/etc/citus-init/extensions"]
            assert "subPath" not in ext, "a subPath mount never sees ConfigMap updates"
            assert mounted_volume(sts, "/etc/citus-init/extensions")["configMap"]["name"] == "citusdemo-extensions"
            assert env(sts)["EXTENSIONS_FILE"].startswith("/etc/citus-init/extensions/")
        else:
            assert "/etc/citus-init/extensions" not in mounts(sts)


def test_default_resources(default):
    """Requests on every database container, no limit unless asked for; the Job and the test
    pod have their own small requests and a memory limit."""
    for sts in default.all("StatefulSet"):
        assert container(sts)["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}}
    r = render({"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("Job") + r.all("Pod"):
        res = container(obj)["resources"]
        assert res["requests"] == {"cpu": "50m", "memory": "32Mi"} and res["limits"] == {"memory": "128Mi"}, \
            obj["metadata"]["name"]
    r = render({"resources": {"limits": {"memory": "4Gi"}},
                "additionalExtensions": {"enabled": True, "extensions": ["postgis"],
                                         "resources": {"requests": {"cpu": "10m"}}},
                "helmTest": {"resources": {"limits": {"memory": "1Gi"}}}})
    assert container(r.get("StatefulSet", "citusdemo-1"))["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}}
    assert container(r.get("Job", "citusdemo-extensions-setup"))["resources"]["requests"]["cpu"] == "10m"
    assert container(r.get("Pod", "citusdemo-test"))["resources"]["limits"] == {"memory": "1Gi"}


def test_empty_dir_size_limit():
    sts = render({"storage": {"emptyDir": {"sizeLimit": "20Gi"}}}).get("StatefulSet", "citusdemo-0")
    assert mounted_volume(sts, "/home/postgres/pgdata") == {"name": "pgdata", "emptyDir": {"sizeLimit": "20Gi"}}
    # every other emptyDir is memory-backed and bounded too
    for name, vol in volumes(sts).items():
        if "emptyDir" in vol:
            assert vol["emptyDir"].get("sizeLimit"), name


def test_shm_size():
    sts = render({"storage": {"persistentVolume": {"enabled": False, "size": "5Gi"}, "shmSizeLimit": "2Gi"}}) \
        .get("StatefulSet", "citusdemo-0")
    assert mounted_volume(sts, "/dev/shm")["emptyDir"]["sizeLimit"] == "2Gi"


def test_persistent_volumes():
    r = render({"storage": {"persistentVolume": {"enabled": True, "size": "20Gi", "storageClass": "fast",
                                                 "annotations": {"a": "b"}}},
                "workers": [{"citusGroup": 1, "replicas": 2, "storage": {"size": "50Gi"}}]})
    for name, size in (("citusdemo-0", "20Gi"), ("citusdemo-1", "50Gi")):
        sts = r.get("StatefulSet", name)
        assert "pgdata" not in volumes(sts)
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "pgdata"
        assert claim["metadata"]["annotations"] == {"a": "b"}
        assert claim["metadata"]["labels"] == sts["spec"]["selector"]["matchLabels"]
        assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                                 "resources": {"requests": {"storage": size}}}
        assert mounts(sts)["/home/postgres/pgdata"]["name"] == "pgdata"


def test_ssl_enabled():
    r = render({"ssl": {"enabled": True, "mode": "verify-full", "secretName": "my-certs", "clientCert": True},
                "additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("StatefulSet") + r.all("Job") + r.all("Pod"):
        e = env(obj)
        assert e["PGSSLMODE"] == "verify-full"
        assert e["PGSSLROOTCERT"] == "/etc/ssl/certs/postgresql/ca.crt"
        vol = mounted_volume(obj, "/etc/ssl/certs/postgresql")
        assert vol["secret"]["secretName"] == "my-certs" and vol["secret"]["defaultMode"] == 0o440
        if obj["kind"] == "StatefulSet":
            assert "items" not in vol["secret"]
        else:  # clients: the CA only (test_clients_never_get_the_server_key)
            assert vol["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        if obj["kind"] != "Pod":
            assert e["SSL_ENABLED"] == "true" and e["SSL_MODE"] == "verify-full"
            assert e["SSL_CLIENT_CERT"] == ("true" if obj["kind"] == "StatefulSet" else "false")
            assert e["SSL_CERT_DIR"] == "/etc/ssl/certs/postgresql"


def test_restapi_https_follows_ssl():
    """With TLS on, Patroni's REST API serves https (citus-init: RESTAPI_TLS) and the kubelet
    probes it over https; patroni.restapi.tls=false keeps it on http."""
    for tls, scheme in ((None, "HTTPS"), (True, "HTTPS"), (False, "HTTP")):
        values = {"ssl": {"enabled": True}}
        if tls is not None:
            values["patroni"] = {"restapi": {"tls": tls}}
        r = render(values)
        for sts in r.all("StatefulSet"):
            assert env(sts)["RESTAPI_TLS"] == ("true" if scheme == "HTTPS" else "false")
            c = container(sts)
            assert c["readinessProbe"]["httpGet"]["scheme"] == scheme
            assert c["livenessProbe"]["httpGet"]["scheme"] == scheme
    # not a boolean: refused by the schema
    assert "tls" in render_error({"patroni": {"restapi": {"tls": "yes"}}})


def test_cert_manager_certificate():
    r = render({"ssl": {"enabled": True, "mode": "verify-full", "secretName": "tls",
                        "certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}})
    cert = r.get("Certificate", "citusdemo-tls")
    assert cert["spec"]["secretName"] == "tls"
    assert cert["spec"]["issuerRef"]["name"] == "ca" and cert["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    names = set(cert["spec"]["dnsNames"])
    for g in GROUPS:
        assert "*.citusdemo-%s-hl.%s.svc.cluster.local" % (g, NAMESPACE) in names
        assert "citusdemo-%s" % g in names
        assert "citusdemo-%s.%s.svc.cluster.local" % (g, NAMESPACE) in names
    assert "citusdemo-workers.%s.svc.cluster.local" % NAMESPACE in names
    # cert-manager writes tls.crt/tls.key; the pods must see server.crt/server.key
    vol = mounted_volume(r.get("StatefulSet", "citusdemo-0"), "/etc/ssl/certs/postgresql")
    assert {i["path"]: i["key"] for i in vol["secret"]["items"]} == {
        "ca.crt": "ca.crt", "server.crt": "tls.crt", "server.key": "tls.key"}


def test_probes(default):
    for sts in default.all("StatefulSet"):
        c = container(sts)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"postgresql": 5432, "patroni": 8008, "metrics-agent": 9188}
        assert c["readinessProbe"]["httpGet"]["path"] == "/readiness"
        assert c["livenessProbe"]["httpGet"]["path"] == "/liveness"
        for probe in (c["readinessProbe"], c["livenessProbe"]):
            assert ports[probe["httpGet"]["port"]] == 8008
            assert probe["timeoutSeconds"] < probe["periodSeconds"]
        # liveness must tolerate more than a readiness blip before restarting a member
        live, ready = c["livenessProbe"], c["readinessProbe"]
        assert live["failureThreshold"] * live["periodSeconds"] > ready["failureThreshold"] * ready["periodSeconds"]


# ---------------------------------------------------------------- security

def test_security_context_root_mode(default):
    for sts in default.all("StatefulSet"):
        psc = pod_spec(sts)["securityContext"]
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert psc["fsGroup"] == 999 and psc["fsGroupChangePolicy"] == "OnRootMismatch"
        sc = container(sts)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sorted(sc["capabilities"]["add"]) == sorted(CAPS_AS_ROOT)
        assert sc.get("privileged") is False


def test_security_context_non_root():
    r = render({"securityContext": {"runAsNonRoot": True}})
    for sts in r.all("StatefulSet"):
        psc = pod_spec(sts)["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 999 and psc["runAsGroup"] == 999
        assert psc["fsGroup"] == 999 and psc["fsGroupChangePolicy"] == "OnRootMismatch"
        sc = container(sts)["securityContext"]
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("runAsUser") != 0
        # citus-init cannot chown as non-root: RUN_DIR is a directory it creates itself
        # inside the root-owned emptyDir (docs/citus-init.md, non-root).
        e = env(sts)
        assert os.path.dirname(e["RUN_DIR"]) == "/run/citus-init"
        assert mounts(sts)["/run/citus-init"]["name"] == "run"
        assert e["PATRONICTL_CONFIG_FILE"] == e["RUN_DIR"] + "/patroni.yml"


def test_job_and_test_pod_never_root():
    r = render({"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("Job") + r.all("Pod"):
        sc = container(obj)["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert pod_spec(obj)["automountServiceAccountToken"] is False


def test_rbac_exact_rules(default):
    role = default.get("Role", C)
    rules = {(tuple(r["resources"]), tuple(r.get("resourceNames", ()))): r["verbs"] for r in role["rules"]}
    # exactly the verbs Patroni's Kubernetes DCS uses with use_endpoints (see rbac.yaml), by
    # name wherever Kubernetes can check a name (not for list/watch/create/deletecollection);
    # no configmaps, no services (the chart creates the -config Services itself)
    objects = tuple("citusdemo-%s%s" % (g, suffix) for g in GROUPS for suffix in ("", "-config", "-failover", "-sync"))
    members = ("citusdemo-0-0", "citusdemo-0-1", "citusdemo-0-2", "citusdemo-1-0", "citusdemo-1-1",
               "citusdemo-2-0", "citusdemo-2-1")
    assert rules == {(("endpoints",), ()): ["list", "watch", "create", "deletecollection"],
                     (("endpoints",), objects): ["get", "patch"],
                     (("pods",), ()): ["list", "watch"],
                     (("pods",), members): ["patch"]}
    for r in role["rules"]:
        if "resourceNames" not in r:
            assert set(r["verbs"]) <= {"list", "watch", "create", "deletecollection"}, \
                "%s could be limited by name" % r["verbs"]
    assert not any("update" in r["verbs"] or "delete" in r["verbs"] or "*" in r["verbs"] for r in role["rules"])
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    rb = default.get("RoleBinding", C)
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": C}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": C, "namespace": NAMESPACE}]
    assert default.all("ClusterRole") == [] and default.all("ClusterRoleBinding") == []
    for sts in default.all("StatefulSet"):
        assert pod_spec(sts)["serviceAccountName"] == C
    assert default.names("ServiceAccount") == [C]


def test_rbac_names_follow_groups_and_replicas():
    r = render({"clusterName": "shop", "coordinator": {"replicas": 1},
                "workers": [{"citusGroup": 4, "replicas": 3}]})
    rules = {(r_["resources"][0], "resourceNames" in r_): r_ for r_ in r.get("Role", "shop")["rules"]}
    assert rules[("pods", True)]["resourceNames"] == ["shop-0-0", "shop-4-0", "shop-4-1", "shop-4-2"]
    assert rules[("endpoints", True)]["resourceNames"] == [
        "shop-0", "shop-0-config", "shop-0-failover", "shop-0-sync",
        "shop-4", "shop-4-config", "shop-4-failover", "shop-4-sync"]
    # the pods the StatefulSets create are exactly the named ones
    pods = sorted("%s-%d" % (s["metadata"]["name"], i) for s in r.all("StatefulSet") for i in range(s["spec"]["replicas"]))
    assert pods == rules[("pods", True)]["resourceNames"]


def test_bypass_api_service_cluster_role_is_release_unique():
    a = render({"patroni": {"bypassApiService": True}})
    (cr,) = a.all("ClusterRole")
    assert cr["rules"] == [{"apiGroups": [""], "resources": ["endpoints"], "resourceNames": ["kubernetes"], "verbs": ["get"]}]
    assert RELEASE in cr["metadata"]["name"] and NAMESPACE in cr["metadata"]["name"]
    binding = [b for b in a.all("RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
    assert len(binding) == 1 and binding[0]["metadata"]["namespace"] == "default"
    assert binding[0]["roleRef"]["name"] == cr["metadata"]["name"]
    assert env(a.get("StatefulSet", "citusdemo-0"))["PATRONI_KUBERNETES_BYPASS_API_SERVICE"] == "true"
    other = render({"patroni": {"bypassApiService": True}, "clusterName": "other"})
    assert other.all("ClusterRole")[0]["metadata"]["name"] != cr["metadata"]["name"]


def test_namespace_value_is_unused():
    a, b = render(), render({"namespace": "elsewhere"})
    assert a.docs[0]["metadata"]["namespace"] == NAMESPACE
    strip = lambda r: [d for d in r.docs if d["kind"] != "Secret"]  # random passwords differ
    assert strip(a) == strip(b)


# ---------------------------------------------------------------- secrets

def secret_values(r, name=C):
    return {k: base64.b64decode(v).decode() for k, v in r.get("Secret", name)["data"].items()}


def test_generated_passwords_are_strong(default):
    pw = secret_values(default)
    assert set(pw) == {"superuser-password", "replication-password", "restapi-password", "app-password"}
    for v in pw.values():
        assert len(v) >= 32 and v.isalnum()
        assert len(set(v)) > 10
    assert len(set(pw.values())) == 4, "each password is generated on its own"
    assert secret_values(render()) != pw, "each fresh install gets new random passwords"


def test_explicit_passwords_win():
    r = render({"patroni": {"superuser": {"username": "postgres", "password": "s3cret:'\"x"},
                            "replication": {"username": "replicator", "password": "rep-pass"},
                            "restapi": {"authentication": {"enabled": True, "username": "patroni",
                                                           "password": "api:pw"}}},
                "app": {"username": "app", "password": "app pw"}})
    assert secret_values(r) == {"superuser-password": "s3cret:'\"x", "replication-password": "rep-pass",
                                "restapi-password": "api:pw", "app-password": "app pw"}


def test_custom_secret_keys():
    r = render({"secret": {"create": True, "name": "pw", "keys": {"superuserPassword": "su", "replicationPassword": "rep",
                                                                  "restapiPassword": "api", "appPassword": "ap"}}})
    assert set(secret_values(r, "pw")) == {"su", "rep", "api", "ap"}
    e = env(r.get("StatefulSet", "citusdemo-0"))
    assert e["SUPERUSER_PASSWORD_KEY"] == "su" and e["REPLICATION_PASSWORD_KEY"] == "rep"
    assert e["RESTAPI_PASSWORD_KEY"] == "api" and e["APP_PASSWORD_KEY"] == "ap"


def test_existing_secret():
    r = render({"secret": {"create": False, "name": "mine",
                           "keys": {"superuserPassword": "postgres-password", "replicationPassword": "standby-password",
                                    "restapiPassword": "api-password", "appPassword": "application"}}})
    assert r.names("Secret") == ["citusdemo-ssl-ca", "citusdemo-ssl-certs"], "only the generated TLS"
    for sts in r.all("StatefulSet"):
        sec = mounted_volume(sts, "/etc/patroni/secrets")["secret"]
        assert sec["secretName"] == "mine"
        assert [i["key"] for i in sec["items"]] == ["postgres-password", "standby-password", "api-password",
                                                    "application"]
    r = render({"secret": {"create": False, "name": "mine"}, "ssl": {"secretName": "my-tls"}})
    assert r.all("Secret") == [], "nothing generated: the user's secrets"


def test_restapi_authentication_can_be_switched_off():
    """Off: citus-init is told so, and an existing secret without the key still mounts."""
    r = render({"patroni": {"restapi": {"authentication": {"enabled": False, "username": "patroni"}}}})
    for sts in r.all("StatefulSet"):
        e = env(sts)
        assert e["RESTAPI_AUTH"] == "false"
        assert "RESTAPI_USERNAME" not in e and "RESTAPI_PASSWORD_KEY" not in e
        sec = mounted_volume(sts, "/etc/patroni/secrets")["secret"]
        assert [i["key"] for i in sec["items"]] == ["superuser-password", "replication-password", "app-password"]
    # the generated secret keeps the key, so switching it on later needs no new password
    assert "restapi-password" in secret_values(r)
    e = env(render({"patroni": {"restapi": {"authentication": {"enabled": True, "username": "ops"}}}})
            .get("StatefulSet", "citusdemo-1"))
    assert e["RESTAPI_AUTH"] == "true" and e["RESTAPI_USERNAME"] == "ops"


def test_clients_see_only_the_superuser_password():
    r = render({"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("Job") + r.all("Pod"):
        sec = mounted_volume(obj, "/etc/patroni/secrets")["secret"]
        assert [i["key"] for i in sec["items"]] == ["superuser-password"]
        assert "REPLICATION_PASSWORD_KEY" not in env(obj)
        assert not any(name.startswith("RESTAPI_") for name in env(obj)), "clients talk only SQL"


def test_client_certificate_for_clients():
    """ssl.clientCert: the members present their server certificate; the Job and the test pod
    the client certificate of ssl.clientSecretName (default <c>-client-tls)."""
    r = render({"ssl": {"enabled": True, "clientCert": True},
                "additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("Job") + r.all("Pod"):
        e = env(obj)
        assert e["PGSSLCERT"] == "/etc/ssl/certs/postgresql-client/tls.crt"
        assert e["PGSSLKEY"] == "/etc/ssl/certs/postgresql-client/tls.key"
        vol = mounted_volume(obj, "/etc/ssl/certs/postgresql-client")["secret"]
        assert vol["secretName"] == "citusdemo-client-tls" and vol["defaultMode"] == 0o440
        assert vol["items"] == [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]
    for sts in r.all("StatefulSet"):
        assert env(sts)["PGSSLCERT"] == "/etc/ssl/certs/postgresql/server.crt"
        assert "/etc/ssl/certs/postgresql-client" not in mounts(sts)
    pod = render({"ssl": {"enabled": True, "clientCert": True, "clientSecretName": "mine"}}).get("Pod", "citusdemo-test")
    assert mounted_volume(pod, "/etc/ssl/certs/postgresql-client")["secret"]["secretName"] == "mine"
    pod = render({"ssl": {"enabled": True}}).get("Pod", "citusdemo-test")
    assert "PGSSLCERT" not in env(pod) and "/etc/ssl/certs/postgresql-client" not in mounts(pod)


def projected_secret_keys(obj):
    """(secret name, key) of every secret entry the pod can read: an items list projects
    those keys, a secret volume without items every key (None)."""
    out = set()
    for v in pod_spec(obj).get("volumes", []):
        if "secret" in v:
            items = v["secret"].get("items")
            name = v["secret"]["secretName"]
            out |= {(name, i["key"]) for i in items} if items else {(name, None)}
        for src in (v.get("projected") or {}).get("sources", []):
            if "secret" in src:
                items = src["secret"].get("items")
                name = src["secret"]["name"]
                out |= {(name, i["key"]) for i in items} if items else {(name, None)}
    return out


@pytest.mark.parametrize("ssl", [{"enabled": True}, {"enabled": True, "clientCert": True},
                                 {"enabled": True, "clientCert": True, "certManager": {
                                     "enabled": True, "issuerRef": {"name": "ca"}}}],
                         ids=["ssl", "ssl+clientCert", "ssl+clientCert+cert-manager"])
def test_clients_never_get_the_server_key(ssl):
    """The extensions Job and the helm test pod read the CA (and the client certificate when
    configured) from the TLS secrets, never the members' server key or certificate, and of
    the password secret only the superuser password."""
    r = render({"ssl": ssl, "additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    clients = r.all("Job") + r.all("Pod")
    assert len(clients) == 2
    allowed = {("citusdemo", "superuser-password"), ("citusdemo-ssl-certs", "ca.crt")}
    if ssl.get("clientCert"):
        allowed |= {("citusdemo-client-tls", "tls.crt"), ("citusdemo-client-tls", "tls.key")}
    for obj in clients:
        assert projected_secret_keys(obj) == allowed, obj["metadata"]["name"]
    # the members do get the server pair
    sts = r.get("StatefulSet", "citusdemo-0")
    assert ("citusdemo-ssl-certs", "tls.key" if ssl.get("certManager") else None) in projected_secret_keys(sts)


def test_cert_manager_issues_the_client_certificate():
    r = render({"ssl": {"enabled": True, "clientCert": True,
                        "certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}})
    cert = r.get("Certificate", "citusdemo-client-tls")["spec"]
    assert cert["secretName"] == "citusdemo-client-tls" and cert["commonName"] == "postgres"
    assert cert["usages"] == ["client auth", "digital signature", "key encipherment"]
    assert "dnsNames" not in cert
    assert cert["issuerRef"] == {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert r.names("Certificate") == ["citusdemo-client-tls", "citusdemo-tls"]
    no_client = render({"ssl": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}})
    assert no_client.names("Certificate") == ["citusdemo-tls"]


def test_helm_test_image_is_documented_as_trusted():
    with open(os.path.join(ROOT, "helm", "citus-cluster", "values.yaml")) as f:
        text = f.read()
    doc = text.split("helmTest:", 1)[1].split("image:", 1)[0]
    assert "Trusted" in doc and "superuser password" in doc


# ---------------------------------------------------------------- extensions

def test_extensions_disabled_by_default(default):
    assert default.all("Job") == []
    text = default.get("ConfigMap", "citusdemo-extensions")["data"]["extensions"]
    assert [l for l in text.splitlines() if l.strip() and not l.startswith("#")] == []


def test_extensions_job_and_list():
    r = render({"additionalExtensions": {"enabled": True, "maxAttempts": 7, "retryDelaySeconds": 3, "backoffLimit": 2,
                                         "extensions": ["postgis", "pg_partman:partman"]}})
    text = r.get("ConfigMap", "citusdemo-extensions")["data"]["extensions"]
    assert [l for l in text.splitlines() if l.strip() and not l.startswith("#")] == ["postgis", "pg_partman:partman"]
    job = r.get("Job", "citusdemo-extensions-setup")
    assert job["metadata"]["labels"]["job-type"] == "extensions-setup"
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "post-install,post-upgrade"
    assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert job["spec"]["backoffLimit"] == 2
    c = container(job)
    assert c["command"] == ["citus-init", "extensions", "--wait"]
    e = env(job)
    assert e["COORDINATOR_HOST"] == "citusdemo-0"
    assert e["EXTENSIONS_MAX_ATTEMPTS"] == "7" and e["EXTENSIONS_RETRY_DELAY"] == "3"
    assert e["EXTENSIONS_FILE"].startswith("/etc/citus-init/extensions/")
    assert mounted_volume(job, "/etc/citus-init/extensions")["configMap"]["name"] == "citusdemo-extensions"
    assert mounted_volume(job, "/etc/patroni/secrets")["secret"]["secretName"] == C
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_enabling_extensions_does_not_restart_pods():
    """Only the ConfigMap changes: citus-init watches the mounted file."""
    a, b = render(), render({"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for name in ("citusdemo-0", "citusdemo-1"):
        assert a.get("StatefulSet", name) == b.get("StatefulSet", name)


# ---------------------------------------------------------------- helm test

def test_helm_test_pod(default):
    pod = default.get("Pod", "citusdemo-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    e = env(pod)
    assert e["PGHOST"] == "citusdemo-0" and e["PGDATABASE"] == "citus" and e["PGUSER"] == "postgres"
    script = container(pod)["args"][0]
    assert "citus_get_active_worker_nodes()" in script
    assert '[ "$workers" = "2" ]' in script, "one active worker per worker group"
    assert "create_distributed_table" in script and "DROP TABLE IF EXISTS" in script
    assert "pg_extension" not in script
    r = render({"additionalExtensions": {"enabled": True, "extensions": ["postgis", "pg_partman:partman"]},
                "workers": [{"citusGroup": i, "replicas": 1} for i in (1, 2, 3)]})
    script = container(r.get("Pod", "citusdemo-test"))["args"][0]
    assert '[ "$workers" = "3" ]' in script
    assert "for entry in postgis pg_partman:partman" in script and "pg_extension" in script


# ---------------------------------------------------------------- scheduling and extras

def test_pdb_per_group(default):
    for g in GROUPS:
        pdb = default.get("PodDisruptionBudget", "citusdemo-%s" % g)
        assert pdb["spec"]["maxUnavailable"] == 1
        sts = default.get("StatefulSet", "citusdemo-%s" % g)
        assert pdb["spec"]["selector"] == sts["spec"]["selector"]
    assert render({"podDisruptionBudget": {"enabled": False}}).all("PodDisruptionBudget") == []


def test_anti_affinity(default):
    sts = default.get("StatefulSet", "citusdemo-1")
    (term,) = pod_spec(sts)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    hard = pod_spec(render({"podAntiAffinity": "hard"}).get("StatefulSet", "citusdemo-1"))
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["affinity"]["podAntiAffinity"]
    assert "affinity" not in pod_spec(render({"podAntiAffinity": "none"}).get("StatefulSet", "citusdemo-1"))


def test_per_group_overrides():
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["db"]}]}]}}}
    r = render({"resources": {"requests": {"cpu": "1"}}, "nodeSelector": {"pool": "all"},
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "workers": [{"citusGroup": 1, "replicas": 1, "resources": {"requests": {"cpu": "3"}},
                             "nodeSelector": {"pool": "big"}, "affinity": mine,
                             "tolerations": [{"key": "b", "operator": "Exists"}]},
                            {"citusGroup": 2, "replicas": 1}]})
    g1, g2 = r.get("StatefulSet", "citusdemo-1"), r.get("StatefulSet", "citusdemo-2")
    assert container(g1)["resources"] == {"requests": {"cpu": "3"}}
    # values merge with the defaults: the default memory request stays
    assert container(g2)["resources"] == {"requests": {"cpu": "1", "memory": "512Mi"}}
    assert pod_spec(g1)["nodeSelector"] == {"pool": "big"} and pod_spec(g2)["nodeSelector"] == {"pool": "all"}
    assert pod_spec(g1)["affinity"] == mine
    assert pod_spec(g1)["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert pod_spec(g2)["tolerations"] == [{"key": "a", "operator": "Exists"}]


def test_extras():
    r = render({"extraEnv": [{"name": "LOG_FORMAT", "value": "json"}],
                "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
                "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                "podAnnotations": {"example.com/a": "1"}, "podLabels": {"team": "db"},
                "priorityClassName": "high",
                "imagePullSecrets": [{"name": "regcred"}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]})
    sts = r.get("StatefulSet", "citusdemo-2")
    assert env(sts)["LOG_FORMAT"] == "json"
    assert mounted_volume(sts, "/scratch") == {"name": "scratch", "emptyDir": {}}
    tmpl = sts["spec"]["template"]
    assert tmpl["metadata"]["annotations"] == {"example.com/a": "1", "kubectl.kubernetes.io/default-container": "postgres"}
    assert tmpl["metadata"]["labels"]["team"] == "db"
    spec = tmpl["spec"]
    assert spec["priorityClassName"] == "high" and spec["imagePullSecrets"] == [{"name": "regcred"}]
    (tsc,) = spec["topologySpreadConstraints"]
    assert tsc["labelSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


def app_version():
    with open(os.path.join(ROOT, "helm", "citus-cluster", "Chart.yaml")) as f:
        return yaml.safe_load(f)["appVersion"]


def test_image_defaults_to_app_version(default):
    """Never `latest`: the default tag is the chart's appVersion, so an upgrade of the chart
    is what changes the image."""
    version = app_version()
    assert version and version != "latest"
    r = render({"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("StatefulSet") + r.all("Job") + r.all("Pod"):
        assert container(obj)["image"] == "patroni-citus-k8s:%s" % version, obj["metadata"]["name"]


def test_image_digest():
    digest = "sha256:" + "ab12" * 16
    r = render({"image": {"repository": "reg.example/citus", "tag": "1.2", "digest": digest},
                "additionalExtensions": {"enabled": True, "extensions": ["postgis"]}})
    for obj in r.all("StatefulSet") + r.all("Job") + r.all("Pod"):
        assert container(obj)["image"] == "reg.example/citus@" + digest, obj["metadata"]["name"]
    # helmTest.image still wins for the test pod
    pod = render({"image": {"digest": digest}, "helmTest": {"image": "psql:16"}}).get("Pod", "citusdemo-test")
    assert container(pod)["image"] == "psql:16"


def test_image():
    r = render({"image": {"repository": "reg.example/citus", "tag": "1.2", "pullPolicy": "Always"}})
    for obj in r.all("StatefulSet") + r.all("Pod"):
        c = container(obj)
        assert c["image"] == "reg.example/citus:1.2" and c["imagePullPolicy"] == "Always"


# ---------------------------------------------------------------- NOTES.txt

from conftest import render_notes  # noqa: E402


def test_notes_never_print_a_password(notes_chart):
    notes, r = render_notes(notes_chart)
    for pw in secret_values(r).values():
        assert pw not in notes
    notes, r = render_notes(notes_chart, {"patroni": {"superuser": {"username": "postgres", "password": "Expl1citPw"}}})
    assert "Expl1citPw" not in notes
    assert "kubectl get secret -n %s citusdemo -o jsonpath='{.data.superuser-password}' | base64 -d" % NAMESPACE in notes


def test_notes_content(notes_chart):
    notes, _ = render_notes(notes_chart)
    assert "WARNING: DATA IS ON emptyDir" in notes
    assert "kubectl exec -n %s -it citusdemo-0-0 -- patronictl list" % NAMESPACE in notes
    assert "psql -U postgres -d citus" in notes and "citus_get_active_worker_nodes()" in notes
    assert "helm test -n %s %s" % (NAMESPACE, RELEASE) in notes
    assert 'NetworkPolicy "citusdemo" lets only this release\'s pods connect' in notes
    notes, _ = render_notes(notes_chart, {"networkPolicy": {"allowExternal": True}})
    assert "NetworkPolicy" not in notes
    notes, _ = render_notes(notes_chart, {"storage": {"persistentVolume": {"enabled": True, "size": "1Gi"}},
                                          "additionalExtensions": {"enabled": True, "enableOnWorkers": True,
                                                                   "extensions": ["postgis"]}})
    assert "emptyDir" not in notes
    assert "job/citusdemo-extensions-setup" in notes
    assert "enableOnWorkers is deprecated" in notes


def test_coordinator_only():
    r = render({"workers": []})
    assert r.names("StatefulSet") == ["citusdemo-0"]
    assert "citusdemo-workers" not in r.names("Service")
    assert '[ "$workers" = "0" ]' in container(r.get("Pod", "citusdemo-test"))["args"][0]


def test_notes_without_coordinator(notes_chart):
    notes, _ = render_notes(notes_chart, {"coordinator": {"enabled": False, "replicas": 1}})
    assert "citusdemo-0-0" not in notes and "helm test" not in notes
    assert "No coordinator" in notes
