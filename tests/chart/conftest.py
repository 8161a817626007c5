"""Fixtures of the chart suite: render the chart with helm and parse the documents."""
import os
import shutil
import subprocess
import tempfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "helm", "citus-cluster")
EXAMPLES = sorted(os.path.join(ROOT, "examples", f)
                  for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".yaml"))
HELM = os.environ.get("HELM", "helm")
KUBEVALIDATE = os.environ.get("KUBEVALIDATE", "kubevalidate")
RELEASE, NAMESPACE = "rel", "dbns"


class Rendered:
    """The objects of one `helm template` run, with look-ups by kind and name."""

    def __init__(self, text):
        self.text = text
        self.docs = [d for d in yaml.safe_load_all(text) if d]

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name):
        found = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, "%s/%s rendered %d times; rendered: %s" % (
            kind, name, len(found), sorted("%s/%s" % (d["kind"], d["metadata"]["name"]) for d in self.docs))
        return found[0]

    def names(self, kind):
        return sorted(d["metadata"]["name"] for d in self.all(kind))


def _write_values(tmpdir, values):
    path = os.path.join(tmpdir, "values-%d.yaml" % len(os.listdir(tmpdir)))
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return path


def helm(args, check=True):
    res = subprocess.run([HELM] + args, capture_output=True, text=True, cwd=ROOT)
    if check and res.returncode != 0:
        raise AssertionError("helm %s failed (%d):\n%s" % (" ".join(args), res.returncode, res.stderr))
    return res


def template_args(values=None, files=(), sets=(), chart=CHART, release=RELEASE, extra=()):
    tmpdir = tempfile.mkdtemp(prefix="chart-values-")
    args = ["template", release, chart, "--namespace", NAMESPACE] + list(extra)
    for f in files:
        args += ["-f", f]
    if values is not None:
        args += ["-f", _write_values(tmpdir, values)]
    for s in sets:
        args += ["--set", s]
    return args, tmpdir


def render(values=None, files=(), sets=(), chart=CHART, release=RELEASE, extra=()):
    args, tmpdir = template_args(values, files, sets, chart, release, extra)
    try:
        return Rendered(helm(args).stdout)
    finally:
        shutil.rmtree(tmpdir)


def render_error(values=None, files=(), sets=(), extra=()):
    """Render expecting failure; returns helm's error output."""
    args, tmpdir = template_args(values, files, sets, extra=extra)
    try:
        res = helm(args, check=False)
    finally:
        shutil.rmtree(tmpdir)
    assert res.returncode != 0, "helm template accepted values it should reject: %r %r" % (values, sets)
    return res.stderr


@pytest.fixture(scope="session")
def default():
    return render()


@pytest.fixture(scope="session")
def notes_chart():
    """A copy of the chart whose NOTES.txt is also rendered as a ConfigMap: `helm template`
    never renders NOTES.txt and `helm install --dry-run` needs a cluster."""
    tmp = tempfile.mkdtemp(prefix="chart-notes-")
    chart = os.path.join(tmp, "citus-cluster")
    shutil.copytree(CHART, chart)
    with open(os.path.join(CHART, "templates", "NOTES.txt")) as f:
        notes = f.read()
    with open(os.path.join(chart, "templates", "_notes_under_test.tpl"), "w") as f:
        f.write('{{- define "test.notes" -}}\n' + notes + "\n{{- end -}}\n")
    with open(os.path.join(chart, "templates", "zz-notes-under-test.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\n"
                'data:\n  notes: {{ include "test.notes" . | toJson }}\n')
    yield chart
    shutil.rmtree(tmp)


def render_notes(chart, values=None, sets=()):
    r = render(values=values, sets=sets, chart=chart)
    return r.get("ConfigMap", "notes-under-test")["data"]["notes"], r
