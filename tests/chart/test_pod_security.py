"""Pod Security Standards of the rendered pods (tests/chart/pss.py): the defaults pass
`baseline`, `securityContext.runAsNonRoot=true` and the non-root example pass `restricted`
(README "Pod Security Standards")."""
import os

import pytest

from conftest import EXAMPLES, render
from pss import pod_templates, violations

NONROOT_EXAMPLE = [e for e in EXAMPLES if os.path.basename(e) == "nonroot-certmanager-values.yaml"]
# every pod the chart can create: database pods, the extensions Job, the helm test pod
WITH_JOB = {"additionalExtensions": {"enabled": True, "extensions": ["postgis"]}}


def check(rendered, level):
    problems = []
    pods = list(pod_templates(rendered))
    assert pods, "nothing rendered a pod"
    for what, spec, annotations in pods:
        problems += ["%s: %s" % (what, v) for v in violations(spec, annotations, level)]
    return pods, problems


@pytest.mark.parametrize("values", [{}, WITH_JOB, dict(WITH_JOB, ssl={"enabled": True, "clientCert": True},
                                                       storage={"persistentVolume": {"enabled": True}})],
                         ids=["defaults", "extensions", "ssl+pvc+extensions"])
def test_defaults_pass_baseline(values):
    pods, problems = check(render(values), "baseline")
    assert not problems, "\n".join(problems)
    assert any(w.startswith("Job ") for w, _, _ in pods) == bool(values)


def test_defaults_are_baseline_not_restricted():
    """What keeps the default (root) mode out of `restricted`, as the README says: citus-init
    starts as root with five capabilities. The Job and the test pod pass `restricted` anyway."""
    r = render(WITH_JOB)
    for what, spec, annotations in pod_templates(r):
        found = violations(spec, annotations, "restricted")
        if what.startswith("StatefulSet "):
            assert sorted({v.split(":")[0] for v in found}) == ["capabilities", "runAsNonRoot", "runAsUser"], found
        else:
            assert found == [], (what, found)


@pytest.mark.parametrize("files,values", [
    (NONROOT_EXAMPLE, {}), (NONROOT_EXAMPLE, WITH_JOB),
    ((), {"securityContext": {"runAsNonRoot": True}}),
    ((), dict(WITH_JOB, securityContext={"runAsNonRoot": True}, storage={"persistentVolume": {"enabled": True}})),
    ((), {"securityContext": {"runAsNonRoot": True}, "restore": {"fromCluster": "old", "target": "latest"},
          "backup": {"enabled": True, "s3": {"endpoint": "s3.example.com", "bucket": "citus", "existingSecret": "k",
                                             "caConfigMap": {"name": "ca", "key": "ca.crt"}}}}),
    ((), {"securityContext": {"runAsNonRoot": True}, "backup": {"enabled": True, "repo": {"type": "posix"}}})],
    ids=["nonroot example", "nonroot example+extensions", "runAsNonRoot", "runAsNonRoot+pvc+extensions",
         "runAsNonRoot+s3 backups+restore", "runAsNonRoot+posix backups"])
def test_non_root_passes_restricted(files, values):
    assert NONROOT_EXAMPLE, "examples/nonroot-certmanager-values.yaml is missing"
    pods, problems = check(render(values, files=files), "restricted")
    assert not problems, "\n".join(problems)
    assert any(w.startswith("Pod ") for w, _, _ in pods), "the helm test pod is checked too"


GOOD = {"securityContext": {"runAsNonRoot": True, "runAsUser": 999, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                          "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "d", "emptyDir": {}}]}


def spec_with(**changes):
    import copy
    spec = copy.deepcopy(GOOD)
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        node[keys[-1]] = value
    return spec


BAD = [
    ("baseline", spec_with(hostNetwork=True), "host namespaces"),
    ("baseline", spec_with(hostPID=True), "host namespaces"),
    ("baseline", spec_with(hostIPC=True), "host namespaces"),
    ("baseline", spec_with(containers__0__securityContext__privileged=True), "privileged"),
    ("baseline", spec_with(containers__0__securityContext__capabilities={"add": ["SYS_ADMIN"], "drop": ["ALL"]}),
     "capabilities"),
    ("baseline", spec_with(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
    ("baseline", spec_with(containers__0__ports=[{"containerPort": 5432, "hostPort": 5432}]), "host ports"),
    ("baseline", spec_with(containers__0__securityContext__procMount="Unmasked"), "procMount"),
    ("baseline", spec_with(securityContext__sysctls=[{"name": "kernel.msgmax", "value": "1"}]), "sysctls"),
    ("baseline", spec_with(securityContext__seccompProfile={"type": "Unconfined"}), "seccomp"),
    ("baseline", spec_with(securityContext__seLinuxOptions={"type": "spc_t"}), "SELinux"),
    ("baseline", spec_with(containers__0__securityContext__appArmorProfile={"type": "Unconfined"}), "AppArmor"),
    ("baseline", spec_with(securityContext__windowsOptions={"hostProcess": True}), "hostProcess"),
    ("restricted", spec_with(containers__0__securityContext__capabilities={"add": ["CHOWN"], "drop": ["ALL"]}),
     "capabilities"),
    ("restricted", spec_with(containers__0__securityContext__capabilities={}), "does not drop ALL"),
    ("restricted", spec_with(containers__0__securityContext__allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    ("restricted", spec_with(securityContext__runAsNonRoot=False), "runAsNonRoot"),
    ("restricted", spec_with(containers__0__securityContext__runAsUser=0), "runAsUser"),
    ("restricted", spec_with(securityContext__seccompProfile=None), "seccomp"),
    ("restricted", spec_with(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "volume types"),
]


@pytest.mark.parametrize("level,spec,rule", BAD, ids=["%s-%d-%s" % (b[0], i, b[2]) for i, b in enumerate(BAD)])
def test_checker_catches(level, spec, rule):
    assert violations(GOOD, None, "restricted") == []
    found = violations(spec, None, level)
    assert any(rule in v for v in found), found
    if level == "restricted":
        assert violations(spec, None, "baseline") == [], "a restricted-only rule leaked into baseline"
