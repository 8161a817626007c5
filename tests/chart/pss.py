"""Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
as checks on a rendered pod spec: the `baseline` and `restricted` rules for every field a pod
spec can carry, as the PodSecurity admission plugin evaluates them (policy version latest).

    violations(pod_spec, annotations, "baseline")  -> ["<rule>: <what>", ...]

An empty list means the pod passes the level. `restricted` includes `baseline`.
"""

LEVELS = ("baseline", "restricted")

# Baseline: capabilities a container may add.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
# Baseline: the "safe" sysctls.
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted: the only volume types allowed.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
VOLUME_META = {"name"}


def _containers(spec):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield "%s %s" % (field, c.get("name")), c


def _baseline(spec, annotations):
    out = []
    psc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    # HostProcess
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("hostProcess: pod windowsOptions.hostProcess")
    for where, c in containers:
        if ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess"):
            out.append("hostProcess: %s" % where)
    # Host namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append("host namespaces: %s=true" % field)
    # Privileged containers
    for where, c in containers:
        if (c.get("securityContext") or {}).get("privileged"):
            out.append("privileged: %s" % where)
    # Capabilities
    for where, c in containers:
        added = set(((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            out.append("capabilities: %s adds %s" % (where, sorted(added - BASELINE_CAPABILITIES)))
    # HostPath volumes
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            out.append("hostPath volumes: %s" % v["name"])
    # Host ports
    for where, c in containers:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append("host ports: %s hostPort %s" % (where, p["hostPort"]))
    # AppArmor
    profiles = [("pod", psc.get("appArmorProfile"))] + [
        (w, (c.get("securityContext") or {}).get("appArmorProfile")) for w, c in containers]
    for where, prof in profiles:
        if prof and prof.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append("AppArmor: %s type %s" % (where, prof.get("type")))
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                value != "runtime/default" and not value.startswith("localhost/"):
            out.append("AppArmor: annotation %s=%s" % (key, value))
    # SELinux
    selinux = [("pod", psc.get("seLinuxOptions"))] + [
        (w, (c.get("securityContext") or {}).get("seLinuxOptions")) for w, c in containers]
    for where, opt in selinux:
        if not opt:
            continue
        if opt.get("type", "") not in SELINUX_TYPES:
            out.append("SELinux: %s type %s" % (where, opt.get("type")))
        if opt.get("user") or opt.get("role"):
            out.append("SELinux: %s sets user or role" % where)
    # /proc mount type
    for where, c in containers:
        pm = (c.get("securityContext") or {}).get("procMount")
        if pm not in (None, "Default"):
            out.append("procMount: %s %s" % (where, pm))
    # Seccomp: never Unconfined
    seccomp = [("pod", psc.get("seccompProfile"))] + [
        (w, (c.get("securityContext") or {}).get("seccompProfile")) for w, c in containers]
    for where, prof in seccomp:
        if prof and prof.get("type") == "Unconfined":
            out.append("seccomp: %s Unconfined" % where)
    # Sysctls
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            out.append("sysctls: %s" % s.get("name"))
    return out


def _restricted(spec):
    out = []
    psc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    # Volume types
    for v in spec.get("volumes") or []:
        kinds = set(v) - VOLUME_META
        if not kinds <= RESTRICTED_VOLUMES:
            out.append("volume types: %s is %s" % (v["name"], sorted(kinds - RESTRICTED_VOLUMES)))
    for where, c in containers:
        sc = c.get("securityContext") or {}
        # Privilege escalation: must be set to false
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append("allowPrivilegeEscalation: %s does not set false" % where)
        # Running as non-root: the container's setting, else the pod's, must be true
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append("runAsNonRoot: %s is not true" % where)
        # Running as non-root user: uid 0 is refused wherever it is set
        if sc.get("runAsUser") == 0:
            out.append("runAsUser: %s runs as uid 0" % where)
        # Seccomp: RuntimeDefault or Localhost, on the container or else the pod
        prof = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if prof.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append("seccomp: %s has no RuntimeDefault/Localhost profile" % where)
        # Capabilities: drop ALL, add at most NET_BIND_SERVICE
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append("capabilities: %s does not drop ALL" % where)
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append("capabilities: %s adds %s" % (where, sorted(set(caps["add"]) - {"NET_BIND_SERVICE"})))
    if psc.get("runAsUser") == 0:
        out.append("runAsUser: the pod runs as uid 0")
    return out


def violations(spec, annotations=None, level="baseline"):
    assert level in LEVELS, level
    out = _baseline(spec, annotations)
    if level == "restricted":
        out += _restricted(spec)
    return out


def pod_templates(rendered):
    """(description, pod spec, pod annotations) of every pod a rendered release creates: the
    StatefulSets' and Jobs' templates, bare Pods (the helm test)."""
    for d in rendered.docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Pod":
            yield "Pod %s" % name, d["spec"], d["metadata"].get("annotations")
        elif kind in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"):
            t = d["spec"]["template"]
            spec = dict(t["spec"])
            # claims of volumeClaimTemplates reach the pod as persistentVolumeClaim volumes
            spec["volumes"] = list(spec.get("volumes") or []) + [
                {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
                for c in d["spec"].get("volumeClaimTemplates") or []]
            yield "%s %s" % (kind, name), spec, (t.get("metadata") or {}).get("annotations")
