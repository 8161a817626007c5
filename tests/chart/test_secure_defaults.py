"""Secure by default (issue #14): TLS with verify-full and certificates the chart generates,
an application role with its own generated password, and the GitOps guard that refuses an
upgrade rendered without cluster access. Keeping the certificates across real upgrades
(lookup) is checked against a live API server in test_live_api.py."""
import base64
import os
import subprocess
import tempfile

import pytest

from conftest import NAMESPACE, render, render_error, render_notes

C = "citusdemo"


def secret(r, name):
    return {k: base64.b64decode(v) for k, v in r.get("Secret", name)["data"].items()}


def sts_env(sts):
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


def pod_specs(r):
    for d in r.docs:
        if d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]
        elif d["kind"] in ("StatefulSet", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


class Pem:
    """The PEM files of one secret in a temporary directory, checked with openssl."""

    def __init__(self, files):
        self.dir = tempfile.mkdtemp(prefix="chart-tls-")
        for name, data in files.items():
            with open(os.path.join(self.dir, name), "wb") as f:
                f.write(data)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=self.dir)

    def verify(self, cert, ca="ca.crt"):
        res = self.openssl("verify", "-CAfile", ca, cert)
        return res.returncode == 0 and res.stdout.strip().endswith(": OK")

    def matches_host(self, cert, host):
        out = self.openssl("x509", "-in", cert, "-noout", "-checkhost", host).stdout
        return "does match certificate" in out

    def matches_ip(self, cert, ip):
        out = self.openssl("x509", "-in", cert, "-noout", "-checkip", ip).stdout
        return "does match certificate" in out

    def text(self, cert):
        return self.openssl("x509", "-in", cert, "-noout", "-text").stdout

    def key_matches(self, cert, key):
        a = self.openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
        b = self.openssl("pkey", "-in", key, "-pubout").stdout
        return a and a == b


def member_names(cluster, ns, groups, domain="cluster.local"):
    """Every name a member or client dials: each pod's DNS name and every service spelling."""
    names = []
    for g, replicas in groups.items():
        for i in range(replicas):
            names.append("%s-%s-%d.%s-%s-hl.%s.svc.%s" % (cluster, g, i, cluster, g, ns, domain))
        for svc in ("%s-%s" % (cluster, g), "%s-%s-hl" % (cluster, g)):
            names += [svc, "%s.%s" % (svc, ns), "%s.%s.svc" % (svc, ns), "%s.%s.svc.%s" % (svc, ns, domain)]
    w = "%s-workers" % cluster
    names += [w, "%s.%s.svc.%s" % (w, ns, domain), "localhost"]
    return names


# ---------------------------------------------------------------- TLS on by default

def test_tls_on_by_default_with_verify_full(default):
    for g in ("0", "1", "2"):
        e = sts_env(default.get("StatefulSet", "%s-%s" % (C, g)))
        assert e["SSL_ENABLED"] == "true" and e["SSL_MODE"] == "verify-full"
        assert e["PGSSLMODE"] == "verify-full" and e["RESTAPI_TLS"] == "true"
    for name in ("%s-test" % C,):
        e = {x["name"]: x.get("value") for x in default.get("Pod", name)["spec"]["containers"][0]["env"]}
        assert e["PGSSLMODE"] == "verify-full"


def test_generated_secret_holds_a_ca_and_a_member_certificate(default):
    tls = secret(default, "%s-ssl-certs" % C)
    assert set(tls) == {"ca.crt", "server.crt", "server.key"}, "exactly what citus-init reads"
    pem = Pem(tls)
    assert pem.verify("server.crt"), "server.crt is signed by ca.crt"
    assert pem.key_matches("server.crt", "server.key")
    assert b"PRIVATE KEY" not in tls["ca.crt"] + tls["server.crt"]
    text = pem.text("server.crt")
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text, \
        "members also present it as client certificate (ssl.clientCert)"
    ca = secret(default, "%s-ssl-ca" % C)
    assert set(ca) == {"ca.crt", "ca.key"} and ca["ca.crt"] == tls["ca.crt"]
    assert "CA:TRUE" in Pem(ca).text("ca.crt")


@pytest.mark.parametrize("values,groups,ns_domain", [
    ({}, {"0": 3, "1": 2, "2": 2}, "cluster.local"),
    ({"clusterName": "shop", "clusterDomain": "k8s.example", "coordinator": {"replicas": 2},
      "workers": [{"citusGroup": 1, "replicas": 3}, {"citusGroup": "7", "replicas": 2},
                  {"citusGroup": 12, "replicas": 1}]},
     {"0": 2, "1": 3, "7": 2, "12": 1}, "k8s.example"),
], ids=["defaults", "other-cluster-groups-domain"])
def test_certificate_names_every_member_and_service(values, groups, ns_domain):
    """openssl's own host name check (as libpq's verify-full): every member's pod DNS name,
    every spelling of every service; not a name of another group, namespace or domain."""
    r = render(values)
    cluster = values.get("clusterName", C)
    pem = Pem(secret(r, "%s-ssl-certs" % cluster))
    missing = [n for n in member_names(cluster, NAMESPACE, groups, ns_domain) if not pem.matches_host("server.crt", n)]
    assert missing == []
    for ip in ("127.0.0.1", "::1"):
        assert pem.matches_ip("server.crt", ip)
    for other in ("%s-3-0.%s-3-hl.%s.svc.%s" % (cluster, cluster, NAMESPACE, ns_domain),
                  "%s-0-0.%s-0-hl.otherns.svc.%s" % (cluster, cluster, ns_domain),
                  "%s-0-0.%s-0-hl.%s.svc.evil.example" % (cluster, cluster, NAMESPACE),
                  "a.b.%s-0-hl.%s.svc.%s" % (cluster, NAMESPACE, ns_domain)):
        assert not pem.matches_host("server.crt", other), other
    # each pod's own env names a host the certificate covers (citus-init checks that too)
    for g in groups:
        e = sts_env(r.get("StatefulSet", "%s-%s" % (cluster, g)))
        assert pem.matches_host("server.crt", "%s-%s-0.%s" % (cluster, g, e["POD_DNS_DOMAIN"]))


def test_extra_names_in_generated_and_cert_manager_certificates():
    values = {"ssl": {"extraDnsNames": ["db.example.org"], "extraIpAddresses": ["203.0.113.7"]}}
    pem = Pem(secret(render(values), "%s-ssl-certs" % C))
    assert pem.matches_host("server.crt", "db.example.org") and pem.matches_ip("server.crt", "203.0.113.7")
    cm = render({"ssl": dict(values["ssl"], certManager={"enabled": True, "issuerRef": {"name": "ca"}})})
    spec = cm.get("Certificate", "%s-tls" % C)["spec"]
    assert "db.example.org" in spec["dnsNames"] and "203.0.113.7" in spec["ipAddresses"]
    assert "*.%s-1-hl.%s.svc.cluster.local" % (C, NAMESPACE) in spec["dnsNames"]


def test_no_pod_mounts_the_ca_key(default):
    for name, spec in pod_specs(default):
        for v in spec.get("volumes", []):
            assert (v.get("secret") or {}).get("secretName") != "%s-ssl-ca" % C, name


def test_generated_client_certificate_with_client_cert():
    r = render({"ssl": {"clientCert": True}})
    client = secret(r, "%s-client-tls" % C)
    assert r.get("Secret", "%s-client-tls" % C)["type"] == "kubernetes.io/tls"
    pem = Pem(client)
    assert pem.verify("tls.crt") and pem.key_matches("tls.crt", "tls.key")
    assert client["ca.crt"] == secret(r, "%s-ssl-certs" % C)["ca.crt"]
    text = pem.text("tls.crt")
    assert "Subject: CN = postgres" in text and "TLS Web Client Authentication" in text
    # the Job and test pod mount it, never the member key
    pod = r.get("Pod", "%s-test" % C)["spec"]
    secrets = {v["secret"]["secretName"]: v["secret"].get("items") for v in pod["volumes"] if "secret" in v}
    assert "%s-client-tls" % C in secrets
    assert secrets["%s-ssl-certs" % C] == [{"key": "ca.crt", "path": "ca.crt"}]


@pytest.mark.parametrize("values", [
    {"ssl": {"secretName": "my-tls"}},
    {"ssl": {"certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}},
    {"ssl": {"enabled": False}},
], ids=["own secret", "cert-manager", "ssl off"])
def test_nothing_generated_with_own_certificates_or_without_tls(values):
    r = render(values)
    assert r.names("Secret") == [C], "only the password secret"
    sts = r.get("StatefulSet", "%s-1" % C)
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    if values["ssl"].get("enabled", True):
        want = values["ssl"].get("secretName", "%s-ssl-certs" % C)
        assert vols["ssl-certs"]["secret"]["secretName"] == want
    else:
        e = sts_env(sts)
        assert "ssl-certs" not in vols and e["SSL_ENABLED"] == "false" and e["PGSSLMODE"] == "prefer"
        probe = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        assert probe["scheme"] == "HTTP"


def test_each_render_without_cluster_makes_a_new_ca():
    """What lookup protects against: without the stored secret every render is a new CA (the
    live API test shows an upgrade keeps the stored one)."""
    a, b = render(), render()
    assert secret(a, "%s-ssl-ca" % C)["ca.crt"] != secret(b, "%s-ssl-ca" % C)["ca.crt"]


@pytest.mark.parametrize("values,message", [
    ({"ssl": {"generated": {"caDays": 3650, "days": 30, "renewBeforeDays": 30}}},
     "ssl.generated.renewBeforeDays (30) must be less than ssl.generated.days (30)"),
    ({"app": {"username": "postgres"}}, 'app.username "postgres" is also the superuser or the replication user'),
    ({"app": {"username": "replicator"}}, 'app.username "replicator" is also the superuser or the replication user'),
    ({"secret": {"keys": {"appPassword": "superuser-password"}}},
     'secret.keys.superuserPassword and secret.keys.appPassword are both "superuser-password"'),
    ({"app": {"username": "App-User"}}, "/app/username"),
    ({"ssl": {"extraIpAddresses": ["not-an-ip"]}}, "/ssl/extraIpAddresses/0"),
    ({"ssl": {"extraDnsNames": ["Bad Name"]}}, "/ssl/extraDnsNames/0"),
])
def test_refused_values(values, message):
    assert message in render_error(values)


# ---------------------------------------------------------------- the application role

def test_application_role_by_default(default):
    pw = secret(default, C)["app-password"].decode()
    assert len(pw) >= 32 and pw.isalnum()
    for g in ("0", "1", "2"):
        sts = default.get("StatefulSet", "%s-%s" % (C, g))
        e = sts_env(sts)
        assert e["APP_USERNAME"] == "app" and e["APP_PASSWORD_KEY"] == "app-password"
        vol = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "patroni-secrets"][0]
        assert {"key": "app-password", "path": "app-password"} in vol["secret"]["items"]
    # clients of the chart (Job, test pod) never get it
    pod = default.get("Pod", "%s-test" % C)["spec"]
    vol = [v for v in pod["volumes"] if v["name"] == "patroni-secrets"][0]
    assert [i["key"] for i in vol["secret"]["items"]] == ["superuser-password"]


def test_application_role_disabled():
    r = render({"app": {"username": ""}})
    for sts in r.all("StatefulSet"):
        e = sts_env(sts)
        assert e["APP_USERNAME"] == "" and "APP_PASSWORD_KEY" not in e
        vol = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "patroni-secrets"][0]
        assert "app-password" not in [i["key"] for i in vol["secret"]["items"]]
    # the password stays in the secret: enabling the role later meets the same password
    assert "app-password" in secret(r, C)


def test_application_role_with_custom_name_and_key():
    r = render({"app": {"username": "shop_rw"}, "secret": {"keys": {"appPassword": "shop-pw"}}})
    e = sts_env(r.get("StatefulSet", "%s-0" % C))
    assert e["APP_USERNAME"] == "shop_rw" and e["APP_PASSWORD_KEY"] == "shop-pw"
    assert "shop-pw" in secret(r, C)


def test_notes_show_the_application_role(notes_chart):
    notes, _ = render_notes(notes_chart)
    assert ("psql \"host=citusdemo-0.%s.svc.cluster.local dbname=citus user=app sslmode=verify-full "
            "sslrootcert=ca.crt\"" % NAMESPACE) in notes
    assert "jsonpath='{.data.app-password}'" in notes
    assert "jsonpath='{.data.ca\\.crt}'" in notes
    assert "PGPASSWORD=$(cat /etc/patroni/secrets/app-password) exec psql -h citusdemo-0 -U app -d citus" in notes
    assert "TLS is OFF" not in notes
    notes, _ = render_notes(notes_chart, {"app": {"username": ""}})
    assert "user=app" not in notes and "app.username is empty" in notes
    notes, _ = render_notes(notes_chart, {"ssl": {"enabled": False}})
    assert "TLS is OFF" in notes and "sslmode" not in notes.split("Administration")[0]


# ---------------------------------------------------------------- GitOps guard

def test_upgrade_rendered_without_cluster_access_fails_clearly():
    """`helm template --is-upgrade` is what a renderer without cluster access does on an
    upgrade: lookup finds nothing, so generated passwords and certificates would change."""
    err = render_error(extra=["--is-upgrade"])
    assert 'helm upgrade found no secret "citusdemo"' in err
    assert "secret.create=false" in err and "ssl.secretName" in err and "GitOps" in err
    # TLS generated while the passwords are the user's: still refused
    err = render_error({"secret": {"create": False}}, extra=["--is-upgrade"])
    assert "helm upgrade found no secret" in err


def test_upgrade_render_with_nothing_generated_passes():
    """With every secret the user's (what the README tells GitOps users), rendering without
    the cluster is fine: nothing would change between renders."""
    values = {"secret": {"create": False}, "ssl": {"secretName": "my-tls"}}
    a = render(values, extra=["--is-upgrade"])
    b = render(values, extra=["--is-upgrade"])
    assert a.all("Secret") == [] and a.text == b.text
    render({"secret": {"create": False}, "ssl": {"enabled": False}}, extra=["--is-upgrade"])
