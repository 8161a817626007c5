"""cert-manager's part for the chart (test infrastructure, not cert-manager): the
Certificate and ClusterIssuer CRDs (cert-manager.io/v1) and a loop that issues every
Certificate whose issuerRef names a ClusterIssuer of this stand-in, as cert-manager's CA
issuer would: a new key and a certificate signed by the issuer's CA with the Certificate's
commonName, dnsNames, ipAddresses, usages and duration, written to spec.secretName (type
kubernetes.io/tls, keys ca.crt, tls.crt, tls.key).

Differences from cert-manager: a Certificate is issued once (no renewal, no status); the
certificates also name `extra_ips` (the pods' loopback addresses here, like the test
certificates of test_c_ssl_persistence: every pod listens on its own loopback address).
"""
import base64
import datetime
import ipaddress
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane import KubeError

GROUP = "cert-manager.io"


def _crd(kind, plural, scope):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": scope,
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": kind + "List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}}


CRDS = [_crd("Certificate", "certificates", "Namespaced"),
        _crd("ClusterIssuer", "clusterissuers", "Cluster")]


def _hours(duration, default=8760):
    """cert-manager durations as the chart writes them (`8760h`, `720h`)."""
    text = str(duration or "")
    return float(text[:-1]) if text.endswith("h") else default


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class CertManager:
    def __init__(self, api, extra_ips=()):
        self.api = api
        self.extra_ips = [ipaddress.ip_address(i) for i in extra_ips]
        self.issuers = {}   # ClusterIssuer name -> (CA key, CA certificate)
        self.issued = []    # (namespace, Certificate name)
        self.errors = []
        self._stop = threading.Event()
        self._thread = None

    # -- CRDs and issuers ------------------------------------------------------------------
    def install(self, timeout=60):
        for crd in CRDS:
            try:
                self.api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            except KubeError as e:
                if e.status != 409:
                    raise
        deadline = time.monotonic() + timeout
        for crd in CRDS:
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            while not any(c["type"] == "Established" and c["status"] == "True"
                          for c in (self.api.get(path).get("status") or {}).get("conditions") or []):
                if time.monotonic() > deadline:
                    raise AssertionError(f"CRD {crd['metadata']['name']} not established")
                time.sleep(0.5)

    def uninstall(self):
        for crd in CRDS:
            self.api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")

    def add_cluster_issuer(self, name):
        """A CA and the ClusterIssuer object naming it (a cert-manager CA issuer)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (test CA)")])
        now = datetime.datetime.now(datetime.timezone.utc)
        ca = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .sign(key, hashes.SHA256()))
        self.issuers[name] = (key, ca)
        try:
            self.api.post(f"/apis/{GROUP}/v1/clusterissuers", {
                "apiVersion": f"{GROUP}/v1", "kind": "ClusterIssuer", "metadata": {"name": name},
                "spec": {"ca": {"secretName": f"{name}-ca"}}})
        except KubeError as e:
            if e.status != 409:
                raise
        return _pem_cert(ca)

    # -- issuing ---------------------------------------------------------------------------
    def _sign(self, spec, issuer):
        ca_key, ca = issuer
        key = rsa.generate_private_key(public_exponent=65537,
                                       key_size=int((spec.get("privateKey") or {}).get("size", 2048)))
        cn = spec.get("commonName")
        sans = [x509.DNSName(n) for n in spec.get("dnsNames") or []]
        ips = [ipaddress.ip_address(i) for i in spec.get("ipAddresses") or []]
        sans += [x509.IPAddress(i) for i in ips + [i for i in self.extra_ips if i not in ips]]
        usages = set(spec.get("usages") or ["digital signature", "key encipherment"])
        ekus = [oid for u, oid in (("server auth", ExtendedKeyUsageOID.SERVER_AUTH),
                                   ("client auth", ExtendedKeyUsageOID.CLIENT_AUTH)) if u in usages]
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
             .issuer_name(ca.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(hours=_hours(spec.get("duration"))))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature="digital signature" in usages,
                                          key_encipherment="key encipherment" in usages,
                                          content_commitment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=not cn)
        if ekus:
            b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        return key_pem, _pem_cert(cert), _pem_cert(ca)

    def sync(self):
        for c in self.api.get(f"/apis/{GROUP}/v1/certificates")["items"]:
            m, spec = c["metadata"], c.get("spec") or {}
            ref = spec.get("issuerRef") or {}
            issuer = self.issuers.get(ref.get("name"))
            if ref.get("kind") != "ClusterIssuer" or issuer is None or m.get("deletionTimestamp"):
                continue
            ns, secret = m["namespace"], spec["secretName"]
            if self.api.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{secret}") is not None:
                continue
            key, crt, ca = self._sign(spec, issuer)
            b64 = lambda b: base64.b64encode(b).decode()
            try:
                self._create_secret(ns, secret, m["name"], ref["name"], b64(ca), b64(crt), b64(key))
            except KubeError as e:
                # 403: the namespace is being deleted (its Certificate goes too); 409: written
                # meanwhile; 404: the namespace is gone
                if e.status in (403, 404, 409):
                    continue
                raise
            self.issued.append((ns, m["name"]))

    def _create_secret(self, ns, secret, certificate, issuer, ca, crt, key):
        self.api.post(f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": secret, "annotations": {
                "cert-manager.io/certificate-name": certificate,
                "cert-manager.io/issuer-name": issuer, "cert-manager.io/issuer-kind": "ClusterIssuer"}},
            "data": {"ca.crt": ca, "tls.crt": crt, "tls.key": key}})

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - keep issuing, report at the end
                self.errors.append(repr(e))
            self._stop.wait(1)

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="cert-manager", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(10)
