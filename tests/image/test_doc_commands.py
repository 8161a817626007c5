"""The commands in docs/SSL_SETUP.md and docs/operations.md are ones that work.

Local ones (scripts/generate-ssl-certs.sh, openssl) are run as written. Kubernetes ones
cannot run here, so each is held against what they act on: helm commands must render the
chart (`helm template` with the same --set values); every pod, StatefulSet, Job, Secret and
label a kubectl command names must exist in the rendered chart; patronictl options must exist
in the pinned patronictl; citus-init subcommands in its contract.
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "SSL_SETUP.md", ROOT / "docs" / "operations.md"]
SCRIPT = ROOT / "scripts" / "generate-ssl-certs.sh"
CHART = ROOT / "helm" / "citus-cluster"
HELM = os.environ.get("HELM") or shutil.which("helm")
PATRONICTL = ROOT / ".venv" / "bin" / "patronictl"
# <placeholders> the docs use, and the sample values the checks put in.
PLACEHOLDERS = {"<nodename>": "citusdemo-3-0.citusdemo-3-hl.default.svc.cluster.local",
                "<new-tag>": "1.2.3", "<pod>": "citusdemo-0-0",
                "<coordinator-primary>": "citusdemo-0-0"}
# The release and values file names the docs use for the user's own.
USER_VALUES = "my-values.yaml"
EXAMPLE_WORKERS = [{"citusGroup": str(g), "citusType": "worker", "replicas": 2} for g in (1, 2, 3)]


def fill(text):
    for k, v in PLACEHOLDERS.items():
        text = text.replace(k, v)
    left = re.findall(r"<[a-z][a-z-]*>", text)
    assert not left, f"placeholder {left} in a documented command has no sample value in this test"
    return text


def documented_commands():
    """(doc, command words) of every command in ```bash blocks and of inline `kubectl ...`
    spans; pipelines are split into their commands."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split(" #")[0].strip()
                if line and not line.startswith("#"):
                    for part in line.split(" | "):
                        out.append((doc.name, shlex.split(fill(part))))
        flat = re.sub(r"\s+", " ", text)
        for span in re.findall(r"`(kubectl (?:exec|logs|delete|rollout|get|describe) [^`…]+)`", flat):
            words = shlex.split(fill(span))
            if ">" in words:
                words = words[:words.index(">")]
            out.append((doc.name, words))
    return out


COMMANDS = documented_commands()


def by_program(*names):
    return [pytest.param(words, id=f"{doc}: {' '.join(words)[:70]}")
            for doc, words in COMMANDS if words[0] in names]


# ---- local commands: run them ------------------------------------------------------------

@pytest.fixture
def workdir(tmp_path):
    """A directory where `scripts/generate-ssl-certs.sh` (defaults) has already run."""
    d = tmp_path / "generated"
    d.mkdir()
    subprocess.run([str(SCRIPT)], cwd=d, check=True, capture_output=True)
    return d


@pytest.mark.parametrize("words", by_program("scripts/generate-ssl-certs.sh"))
def test_generate_command_runs(words, tmp_path, workdir):
    cwd = workdir if "--reuse-ca" in words else tmp_path
    r = subprocess.run([str(SCRIPT), *words[1:]], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = words[words.index("--out") + 1] if "--out" in words else "certs"
    assert subprocess.run(["openssl", "verify", "-CAfile", f"{out}/ca.crt", f"{out}/server.crt"],
                          cwd=cwd, capture_output=True).returncode == 0


@pytest.mark.parametrize("words", by_program("openssl"))
def test_openssl_command_runs(words, workdir):
    r = subprocess.run(words, cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---- the chart as the kubectl and helm commands see it ----------------------------------

def helm_template(extra, values=None, tmp=None):
    args = [HELM, "template", "my-citus-cluster", str(CHART), *extra]
    if values is not None:
        path = tmp / f"values-{len(list(tmp.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    return r


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    """Every object the documented configurations render: defaults, and with TLS, extensions,
    persistent volumes and the docs' third worker group."""
    if not HELM:
        pytest.skip("helm is not available (tests/image/run builds it like the chart suite)")
    tmp = tmp_path_factory.mktemp("doc-chart")
    docs = []
    for values in (None, {"ssl": {"enabled": True}, "additionalExtensions": {"enabled": True},
                          "storage": {"persistentVolume": {"enabled": True}},
                          "workers": EXAMPLE_WORKERS}):
        r = helm_template([], values, tmp)
        assert r.returncode == 0, r.stderr
        docs += [d for d in yaml.safe_load_all(r.stdout) if d]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return docs, defaults


def objects(chart, kind):
    return {d["metadata"]["name"]: d for d in chart[0] if d["kind"] == kind}


def pods(chart):
    names = {}
    for name, sts in objects(chart, "StatefulSet").items():
        for i in range(sts["spec"]["replicas"]):
            names[f"{name}-{i}"] = sts["spec"]["template"]["metadata"]["labels"]
    return names


def selector_matches(selector, label_sets):
    want = dict(kv.split("=", 1) for kv in selector.split(","))
    return any(all(labels.get(k) == v for k, v in want.items()) for labels in label_sets)


def patronictl_options(sub):
    r = subprocess.run([str(PATRONICTL), sub, "--help"], capture_output=True, text=True)
    assert r.returncode == 0, f"patronictl has no command {sub!r}"
    return set(re.findall(r"(--[a-z-]+)", r.stdout))


def check_in_pod(chart, words):
    program, args = words[0], words[1:]
    defaults = chart[1]
    if program == "patronictl":
        known = patronictl_options(args[0])
        for w in args[1:]:
            if w.startswith("--"):
                assert w in known, f"patronictl {args[0]} has no option {w}"
    elif program in ("psql", "pg_dump"):
        user = args[args.index("-U") + 1]
        db = args[args.index("-d") + 1]
        assert user == defaults["patroni"]["superuser"]["username"], user
        assert db == defaults["citus"]["database"], db
    elif program == "citus-init":
        contract = (ROOT / "docs" / "citus-init.md").read_text()
        assert f"`citus-init {args[0]}" in contract, f"citus-init has no command {args[0]}"
    elif program == "openssl":
        for w in args:
            if w.startswith("/etc/ssl/certs/postgresql/"):
                assert Path(w).name in ("ca.crt", "server.crt", "server.key"), w
    else:
        raise AssertionError(f"no check for `{program}` run in a pod")


@pytest.mark.parametrize("words", by_program("kubectl"))
def test_kubectl_command_names_what_the_chart_makes(words, chart):
    verb = words[1]
    rest = words[2:]
    pod_names = pods(chart)
    if verb == "exec":
        i = rest.index("--")
        pod = [w for w in rest[:i] if not w.startswith("-")][0]
        assert pod in pod_names, f"no pod {pod} in the chart ({sorted(pod_names)})"
        check_in_pod(chart, rest[i + 1:])
        return
    if "-l" in rest:
        selector = rest[rest.index("-l") + 1]
        kind = rest[0]
        if kind == "pods":
            assert selector_matches(selector, pod_names.values()), selector
        elif kind == "pvc":
            claims = [t["metadata"].get("labels", {}) for s in objects(chart, "StatefulSet").values()
                      for t in s["spec"].get("volumeClaimTemplates", [])]
            assert selector_matches(selector, claims), selector
        else:  # objects Patroni creates itself carry the labels Patroni is given, and
            # with Citus the group's (its kubernetes.group_label, citus-group)
            assert re.fullmatch(rf"cluster-name={chart[1]['clusterName']}(,citus-group=\d+)?",
                                selector), selector
        return
    if verb == "apply":
        assert rest == ["-f", "-"], rest  # the secret update: `create --dry-run ... | apply`
        return
    if verb == "port-forward":
        kind, name = rest[0].split("/")
        remote = int(rest[1].split(":")[-1])
        assert kind == "pod" and name in pod_names, rest[0]
        sts = objects(chart, "StatefulSet")[name.rsplit("-", 1)[0]]
        ports = [p["containerPort"] for c in sts["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])]
        assert remote in ports, f"{name} has no container port {remote} ({ports})"
        return
    if verb == "get" and rest[0] == "secret" and rest[1] == secret_name(chart[1]):
        secret = objects(chart, "Secret")[rest[1]]  # the release's password secret
        key = re.fullmatch(r"jsonpath=\{\.data\.([-._a-zA-Z0-9]+)\}", rest[rest.index("-o") + 1])
        assert key and key.group(1) in secret["data"], f"no key {rest} in the chart's secret"
        return
    target = next(w for w in rest if not w.startswith("-") and w not in ("restart", "status", "generic"))
    if verb == "rollout":
        kind, name = target.split("/")
        assert kind == "statefulset" and name in objects(chart, "StatefulSet"), target
    elif verb == "logs":
        if target.startswith("job/"):
            assert target[4:] in objects(chart, "Job"), target
        else:
            assert target in pod_names, target
    elif verb == "describe":
        assert rest[0] == "pod" and rest[1] in pod_names, rest
    elif verb in ("create", "get") and rest[0] == "secret":
        name = rest[2] if verb == "create" else rest[1]
        tls, client = ssl_secret_names(chart[1])
        assert name in (tls, client), f"secret {name} is neither the TLS nor the client secret"
        if verb == "create":
            keys = {w.split("=", 1)[1].split("=")[0] for w in rest if w.startswith("--from-file=")}
            if name == tls:
                assert keys == {"ca.crt", "server.crt", "server.key"}, keys
            else:  # kubectl create secret tls NAME --cert … --key …
                assert rest[1] == "tls" and "--cert" in " ".join(rest), rest
    else:
        raise AssertionError(f"no check for `kubectl {verb}`")


def secret_name(values):
    """The password secret's name as the chart derives it (_helpers.tpl citus.secretName)."""
    return values["secret"].get("name") or values["clusterName"]


def ssl_secret_names(values):
    """(TLS secret, client certificate secret) as the chart derives them (_helpers.tpl)."""
    ssl = values["ssl"]
    return (ssl.get("secretName") or f"{values['clusterName']}-ssl-certs",
            ssl.get("clientSecretName") or f"{values['clusterName']}-client-tls")


@pytest.mark.parametrize("words", by_program("helm"))
def test_helm_command_renders(words, chart, tmp_path):
    verb = words[1]
    if verb == "uninstall":
        return
    assert verb in ("install", "upgrade"), words
    release, chart_path = words[2], words[3]
    assert (ROOT / chart_path).resolve() == CHART, chart_path
    extra, values = [], None
    it = iter(words[4:])
    for w in it:
        if w == "--reuse-values":
            continue
        if w == "-f":
            assert next(it) == USER_VALUES
            values = {"workers": EXAMPLE_WORKERS}  # the docs' example values file
        elif w == "--set":
            extra += ["--set", next(it)]
        else:
            raise AssertionError(f"helm option {w} not understood by this test")
    r = helm_template(extra, values, tmp_path)
    assert r.returncode == 0, f"{' '.join(words)} would fail:\n{r.stderr}"


@pytest.mark.parametrize("words", by_program("curl"))
def test_curl_calls_an_existing_patroni_endpoint(words):
    """curl against a forwarded Patroni REST API: the method and path exist in the pinned
    Patroni (its handler's do_<METHOD>_<path>), and changes send the chart's user."""
    api = (ROOT / ".venv").glob("lib/python3*/site-packages/patroni/api.py")
    api = next(api, None)
    if api is None:
        pytest.skip("no Patroni in .venv")
    url = next(w for w in words[1:] if ":8008/" in w and not w.startswith("-"))
    if url.startswith("https://"):
        # the chart's TLS: the certificate is checked against the CA, for the pod's DNS name
        # that --resolve sends to the forwarded port
        host = url[len("https://"):].split(":")[0]
        assert "--cacert" in words, "https without the CA: the certificate is not checked"
        assert words[words.index("--resolve") + 1] == f"{host}:8008:127.0.0.1", words
        assert host.endswith(".svc.cluster.local"), "the certificate names the pod's DNS name"
    else:
        assert url.startswith("localhost:8008/"), url
    method = words[words.index("-X") + 1] if "-X" in words else "GET"
    endpoint = url.split(":8008/", 1)[1].split("/")[0].split("?")[0]
    assert f"def do_{method}_{endpoint}(" in api.read_text(), f"Patroni has no {method} /{endpoint}"
    if method != "GET":
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())
        user = defaults["patroni"]["restapi"]["authentication"]["username"]
        assert words[words.index("-u") + 1] == user, "a change needs the REST API user"


@pytest.mark.parametrize("words", by_program("docker"))
def test_docker_build_uses_the_dockerfile_and_chart_image(words, chart):
    assert words[1] == "build" and words[words.index("-f") + 1] == "Dockerfile.citus"
    repo = words[words.index("-t") + 1].split(":")[0]
    assert repo == chart[1]["image"]["repository"], repo


def test_every_documented_command_is_checked():
    known = {"scripts/generate-ssl-certs.sh", "openssl", "kubectl", "helm", "docker", "curl"}
    # decoding a secret value read by the kubectl before it in the pipeline
    known_filters = {("base64", "-d")}
    COMMANDS_ = [(d, w) for d, w in COMMANDS
                 if tuple(w) not in known_filters
                 and not (tuple(w[:2]) in known_filters and len(w) == 4 and w[2] == ">")]
    unchecked = [(doc, " ".join(w)) for doc, w in COMMANDS_ if w[0] not in known]
    assert not unchecked, f"commands no test looks at: {unchecked}"
    assert len(by_program("kubectl")) > 20 and by_program("helm"), "docs not parsed?"


def anchors(path):
    """GitHub-style anchors of a Markdown file's headings."""
    out = set()
    for line in path.read_text().splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_relative_links_resolve():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            assert path.exists(), f"{doc.name}: link to missing {target}"
            if anchor:
                assert anchor in anchors(path), f"{doc.name}: no heading for #{anchor} in {path.name}"
