"""The header commands of every examples/*.yaml (tests/chart/example_headers.py): what they
create is what the rendered pods read. tests/k8s/test_d_examples.py runs the same commands
against a real API server."""
import os

import pytest

from conftest import EXAMPLES, render
from example_headers import commands, created_secrets, helm_installs, namespaces

# Files citus-init reads from a TLS secret mounted without items (docs/SSL_SETUP.md).
SSL_FILES = {"ca.crt", "server.crt", "server.key"}


def secrets_read(rendered):
    """{(workload, secret name): set of keys} every pod of the release reads: items of secret
    volumes (all SSL_FILES for a TLS volume without items), projected secrets, secretKeyRef."""
    out = {}
    for d in rendered.docs:
        if d["kind"] not in ("StatefulSet", "Job", "Pod"):
            continue
        spec = d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"]
        what = "%s %s" % (d["kind"], d["metadata"]["name"])
        for v in spec.get("volumes") or []:
            sources = [v["secret"] | {"name": v["secret"]["secretName"]}] if "secret" in v else [
                s["secret"] for s in (v.get("projected") or {}).get("sources", []) if "secret" in s]
            for src in sources:
                if src.get("optional"):
                    continue
                keys = {i["key"] for i in src["items"]} if src.get("items") else SSL_FILES
                out.setdefault((what, src["name"]), set()).update(keys)
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    out.setdefault((what, ref["name"]), set()).add(ref["key"])
    return out


def chart_made(rendered):
    """Secrets the release itself provides: its Secret objects and cert-manager's."""
    return {d["metadata"]["name"] for d in rendered.all("Secret")} | {
        d["spec"]["secretName"] for d in rendered.all("Certificate")}


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_header_creates_every_key_the_pods_read(example):
    """Every key a rendered pod projects from a secret the chart does not create is created by
    the example's header commands: a missing key keeps the pods in ContainerCreating."""
    r = render(files=[example])
    made, header = chart_made(r), created_secrets(example)
    missing = []
    for (what, name), keys in sorted(secrets_read(r).items()):
        if name in made:
            continue
        lacking = keys - header.get(name, set())
        if lacking:
            missing.append("%s reads %s from secret %s, which the header does not create" % (
                what, sorted(lacking), name))
    assert not missing, "\n".join(missing)


def test_production_header_creates_the_rest_api_password():
    """The case that stranded users: REST API auth is on by default, its key must be there."""
    (prod,) = [e for e in EXAMPLES if e.endswith("production-values.yaml")]
    assert created_secrets(prod)["citus-passwords"] == {"postgres-password", "standby-password", "restapi-password",
                                                 "app-password"}


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_header_installs_this_example_in_one_namespace(example):
    cmds = commands(example)
    assert cmds, "%s has no header commands" % example
    installs = helm_installs(example)
    assert len(installs) == 1, installs
    rel = os.path.relpath(example, os.path.dirname(os.path.dirname(example)))
    assert "./helm/citus-cluster" in installs[0] and rel in installs[0], installs[0]
    assert ["helm", "test"] in [c[:2] for c in cmds], "the header ends with helm test"
    ns = namespaces(example)
    assert ns and None not in ns and len(set(ns)) == 1, ns


@pytest.mark.parametrize("key", ["restapi-password", "app-password"])
def test_checker_sees_a_missing_key(tmp_path, key):
    """The check itself: a header without the REST API or the application password is caught."""
    (prod,) = [e for e in EXAMPLES if e.endswith("production-values.yaml")]
    with open(prod) as f:
        text = f.read()
    line = ' \\\n#     --from-literal=%s="$(openssl rand -base64 32)"' % key
    assert line in text
    broken = tmp_path / "production-values.yaml"
    broken.write_text(text.replace(line, ""))
    assert key not in created_secrets(str(broken))["citus-passwords"]
    r = render(files=[str(broken)])
    lacking = {k for (w, n), keys in secrets_read(r).items() if n == "citus-passwords"
               for k in keys - created_secrets(str(broken))["citus-passwords"]}
    assert lacking == {key}


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_header_commands_run_unattended(example):
    """The header's commands are run as written (tests/k8s/test_d_examples.py): nothing that
    waits for a terminal. Commands shown for reading only are written `#  $ ...`."""
    for words in commands(example):
        assert words[:2] != ["kubectl", "exec"] and words[0] not in ("psql", "sh", "export"), words
        assert "-it" not in words, words
