#!/usr/bin/env python3
"""The kubelet's part for this chart, on this machine (test infrastructure, not a kubelet).

    kubelet.py --pki DIR --state DIR [--node NAME] [--subnet 127.0.31]

One loop, once a second:
- registers Node NAME (Ready) and binds every unscheduled Pod to it (there is no scheduler);
- runs each container of a Pod (the database pod's `postgres` and `exporter`) through
  scripts/lib/localcluster/pod-launcher: PID 1 of its own new PID and mount namespace, the
  Pod's volumes bind-mounted at its mount paths, the Pod's loopback address; restarts each by
  restartPolicy (containerStatuses count); runAsUser, runAsGroup and fsGroup through
  setpriv; the first container decides a Job pod's phase (the chart's Job has one);
- resolves env: value, fieldRef (metadata.name/namespace/uid/labels['k'], status.podIP,
  spec.nodeName, spec.serviceAccountName), secretKeyRef, configMapKeyRef, $(VAR) expansion;
  KUBERNETES_SERVICE_HOST/PORT name the loopback API server. No service links, so no
  ClusterIP ever reaches a pod;
- volumes: secret and configMap (kept up to date by an atomic `..data` symlink swap like the
  kubelet), projected (serviceAccountToken from the TokenRequest API, configMap, secret,
  downwardAPI), emptyDir (a directory kept across container restarts), PVC (a directory
  per claim that outlives the Pod);
- readiness from each container's httpGet probe; the Pod is Ready when all are (no liveness);
- deletion: SIGTERM to PID 1, SIGKILL after the grace period, then removes the Pod object;
- Job pods: the container's exit status gives phase Succeeded/Failed;
- an unreachable API server (tests/k8s/test_e_api_outage.py) leaves every container running,
  its volumes as they are; the status is sent again once the API server answers.

Addresses. The API server refuses loopback addresses in Endpoints (ValidateEndpointIP), and
Patroni writes its pod IP into its leader Endpoints, so a pod has two addresses here: its
pod IP, a number from POD_IP_NET (198.18.0.0/15, reserved for benchmarks, never routed)
that only ever appears in objects (status.podIP, POD_IP, Endpoints), and its loopback
address LOOPBACK_SUBNET.N where it really listens (annotation LOOPBACK_ANNOTATION; its pod
IP is 198.18.31.N). Nothing here sends traffic to a pod IP: names resolve to loopback
addresses.

Differences from a real node, because every pod shares the host's network namespace:
LISTEN_ADDRESS is set to the pod's loopback address when the container does not set it, and
an argument `--...listen-address=:PORT` (every address: the exporter's) gets that address too;
/etc/hosts in each pod maps `<pod>.<service>.<ns>.svc.<domain>` of headless Services to
loopback addresses and the names of selector-less Services (`<svc>`, `<svc>.<ns>`,
`<svc>.<ns>.svc...`) to the loopback address of the first pod IP in their Endpoints (what
kube-proxy + DNS would route to), and holds the lines of STATE/extra-hosts (a server a test
runs outside the cluster, e.g. S3); each container gets a private /var/run/postgresql (the
image's own file system), owned by the uid it runs as when that is not root, unless a volume
is mounted there (the chart's `sockets`, shared by postgres and the exporter); the containers
after the first log to logs/<ns>_<pod>_<container>.log; a container
running as a uid this host does not know (the image's postgres, 999) sees /etc/passwd and
/etc/group with `postgres` as that uid, as in the image. NetworkPolicies are not enforced, nor readOnlyRootFilesystem or capabilities. The image's ENTRYPOINT is citus-init (build/citus-init); Patroni
and psql come from the venv / Debian. A container killed by SIGKILL is reported with exit
code 1, not 137 (util-linux 2.38 `unshare --fork` exits 1 then).
"""
import argparse
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from controlplane import API_IP, API_PORT, CLUSTER_DOMAIN, Api, KubeError  # noqa: E402
from localcluster import paths, procs  # noqa: E402

IMAGE_ENTRYPOINT = ["citus-init"]
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOOPBACK_ANNOTATION = "pck.test/loopback-address"
POD_IP_NET = "198.18"
LOOPBACK_SUBNET = "127.0.31"   # pods listen on LOOPBACK_SUBNET.2 .. .249


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg):
    print(f"{now()} kubelet: {msg}", flush=True)


class Kubelet:
    def __init__(self, api, state, node, subnet):
        self.api = api
        self.state = Path(state)
        self.node = node
        self.subnet = subnet
        self.runners = {}            # pod uid -> PodRunner
        self.free_ips = [f"{subnet}.{n}" for n in range(2, 250)]
        self.lock = threading.Lock()
        self.hosts_file = self.state / "hosts"
        self.bin = self.state / "bin"
        self.stopping = False

    # -- node ----------------------------------------------------------------------------
    def register(self):
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o755)
        self.bin.mkdir(exist_ok=True)
        link = self.bin / "citus-init"
        if not link.exists():
            link.symlink_to(paths.citus_init_binary())
        self.hosts_file.write_text("127.0.0.1 localhost\n")
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": {
                    "kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux"}}}
        if self.api.get_or_none(f"/api/v1/nodes/{self.node}") is None:
            self.api.post("/api/v1/nodes", node)
        self.api.patch(f"/api/v1/nodes/{self.node}/status", {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet stand-in", "lastHeartbeatTime": now(),
                            "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": API_IP},
                          {"type": "Hostname", "address": self.node}],
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"}}}, kind="strategic-merge")

    def pod_ip(self, loopback):
        """The pod IP number of a loopback address (same last two octets)."""
        return POD_IP_NET + "." + ".".join(loopback.split(".")[2:])

    def loopback_of(self, pod_ip):
        """The loopback address behind a pod IP of this node, or None."""
        if not pod_ip.startswith(POD_IP_NET + "."):
            return None
        lo = "127.0." + ".".join(pod_ip.split(".")[2:])
        return lo if lo.startswith(self.subnet + ".") else None

    def take_ip(self):
        with self.lock:
            return self.free_ips.pop(0)

    def give_ip(self, ip):
        with self.lock:
            self.free_ips.append(ip)

    # -- loop ----------------------------------------------------------------------------
    def sync(self):
        pods = self.api.get("/api/v1/pods")["items"]
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            if not spec.get("nodeName"):
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    self.api.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                                  "/binding", {"apiVersion": "v1", "kind": "Binding",
                                               "metadata": {"name": meta["name"]},
                                               "target": {"kind": "Node", "name": self.node}})
                    log(f"bound {meta['namespace']}/{meta['name']}")
                except KubeError as e:
                    log(f"binding {meta['name']} failed: {e}")
                continue
            if spec["nodeName"] != self.node:
                continue
            uid = meta["uid"]
            seen.add(uid)
            runner = self.runners.get(uid)
            if runner is None:
                if meta.get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
                        "Succeeded", "Failed"):
                    if meta.get("deletionTimestamp"):
                        self._force_delete(pod)
                    continue
                runner = PodRunner(self, pod)
                self.runners[uid] = runner
                runner.start()
            else:
                runner.update(pod)
        for uid, runner in list(self.runners.items()):
            if uid not in seen:
                runner.request_stop(grace=0, delete_object=False)
            if runner.finished():
                del self.runners[uid]
        self.write_hosts(pods)

    def _force_delete(self, pod):
        m = pod["metadata"]
        self.api.delete(f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}",
                        {"gracePeriodSeconds": 0, "preconditions": {"uid": m["uid"]}})

    def write_hosts(self, pods):
        """Pod DNS names of headless services and service names -> loopback addresses."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        services = self.api.get("/api/v1/services")["items"]
        for svc in services:
            m, spec = svc["metadata"], svc["spec"]
            ns, name = m["namespace"], m["name"]
            fqdn = f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"
            if spec.get("clusterIP") == "None" and spec.get("selector"):
                sel = spec["selector"]
                for pod in pods:
                    pm = pod["metadata"]
                    ip = (pm.get("annotations") or {}).get(LOOPBACK_ANNOTATION)
                    if (pm["namespace"] == ns and ip and pod["spec"].get("subdomain") == name
                            and all(pm.get("labels", {}).get(k) == v for k, v in sel.items())):
                        host = pod["spec"].get("hostname", pm["name"])
                        lines.append(f"{ip} {host}.{fqdn} {host}.{name}.{ns}.svc")
            elif not spec.get("selector") and spec.get("clusterIP") != "None":
                ep = self.api.get_or_none(f"/api/v1/namespaces/{ns}/endpoints/{name}")
                addrs = [self.loopback_of(a["ip"]) for s in (ep or {}).get("subsets") or []
                         for a in s.get("addresses") or []]
                addrs = [a for a in addrs if a]
                if addrs:
                    lines.append(f"{addrs[0]} {name} {name}.{ns} {name}.{ns}.svc {fqdn}")
        # names of services outside the cluster a test started (its S3 server): STATE/extra-hosts
        extra = self.state / "extra-hosts"
        if extra.exists():
            lines += [line for line in extra.read_text().splitlines() if line.strip()]
        text = "\n".join(lines) + "\n"
        try:
            if self.hosts_file.read_text() == text:
                return
        except FileNotFoundError:
            pass
        # Rewritten in place: the pods bind-mount this very inode.
        with open(self.hosts_file, "r+" if self.hosts_file.exists() else "w") as f:
            f.write(text)
            f.truncate()

    def run(self):
        self.register()
        log(f"node {self.node} registered; pods get {self.subnet}.x")
        while not self.stopping:
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - keep the node up, say what went wrong
                log("sync failed:\n" + traceback.format_exc())
            for _ in range(10):
                if self.stopping:
                    break
                time.sleep(0.1)
        log("stopping all pods")
        for r in self.runners.values():
            r.request_stop(grace=None, delete_object=False)
        for r in self.runners.values():
            r.thread.join(timeout=60)


class PodRunner:
    """One pod: volumes, its containers (ContainerRunner: each run and re-run on its own),
    status, deletion. The first container decides a Job pod's phase (the chart's Jobs and
    test pod have one container)."""

    def __init__(self, kubelet, pod):
        self.k = kubelet
        self.api = kubelet.api
        self.pod = pod
        m = pod["metadata"]
        self.ns, self.name, self.uid = m["namespace"], m["name"], m["uid"]
        self.dir = kubelet.state / "pods" / f"{self.ns}_{self.name}_{self.uid[:8]}"
        self.ip = kubelet.take_ip()               # loopback: where the pod listens
        self.pod_ip = kubelet.pod_ip(self.ip)     # only a number in objects
        self.containers = [ContainerRunner(self, c, i) for i, c in enumerate(pod["spec"]["containers"])]
        self.phase = "Pending"
        self.stop_event = threading.Event()
        self.stop_grace = None
        self.delete_object = True
        self.done = False
        self.status_pending = False
        self.vol_lock = threading.Lock()      # the containers' threads share the volumes
        self.status_lock = threading.Lock()   # ... and the status they send
        self.thread = threading.Thread(target=self._main, name=self.name, daemon=True)

    def start(self):
        self.thread.start()

    def finished(self):
        return self.done

    def update(self, pod):
        self.pod = pod
        dt = pod["metadata"].get("deletionTimestamp")
        if dt and not self.stop_event.is_set():
            self.request_stop(grace=pod["metadata"].get("deletionGracePeriodSeconds"),
                              delete_object=True)

    def request_stop(self, grace, delete_object):
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.stop_grace = grace
        self.delete_object = delete_object
        self.stop_event.set()

    # -- main ----------------------------------------------------------------------------
    def _main(self):
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o755)
            (self.k.state / "logs").mkdir(parents=True, exist_ok=True)
            log(f"{self.ns}/{self.name}: starting on {self.ip} (pod IP {self.pod_ip})")
            self.api.patch(f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                           {"metadata": {"uid": self.uid,
                                         "annotations": {LOOPBACK_ANNOTATION: self.ip}}})
            self._status()
            sidecars = [threading.Thread(target=c.run, name=f"{self.name}/{c.name}", daemon=True)
                        for c in self.containers[1:]]
            for t in sidecars:
                t.start()
            self.containers[0].run()  # returns once the pod is to stop (the others stop too)
            for t in sidecars:
                t.join()
        except Exception:  # noqa: BLE001
            log(f"{self.ns}/{self.name}: runner failed:\n{traceback.format_exc()}")
            for c in self.containers:
                c.kill_now()
        finally:
            if self.delete_object:
                try:
                    self.k._force_delete(self.pod)
                    log(f"{self.ns}/{self.name}: deleted")
                except Exception as e:  # noqa: BLE001
                    log(f"{self.ns}/{self.name}: delete failed: {e}")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.k.give_ip(self.ip)
            self.done = True

    # -- status ----------------------------------------------------------------------------
    def _status(self):
        with self.status_lock:
            self._send_status()

    def _send_status(self):
        t = now()
        ready = "True" if all(c.ready for c in self.containers) else "False"
        status = {"phase": self.phase, "hostIP": API_IP, "podIP": self.pod_ip,
                  "podIPs": [{"ip": self.pod_ip}], "startTime": t,
                  "conditions": [
                      {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                      {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                      {"type": "ContainersReady", "status": ready, "lastTransitionTime": t},
                      {"type": "Ready", "status": ready, "lastTransitionTime": t}],
                  "containerStatuses": [c.status() for c in self.containers]}
        try:
            self.api.patch(f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status",
                           {"metadata": {"uid": self.uid}, "status": status})
        except KubeError as e:
            if e.status not in (404, 409):
                log(f"{self.ns}/{self.name}: status update failed: {e}")
        except OSError as e:
            # API server unreachable: a kubelet keeps the containers running and reports the
            # status once it is back (the next change or refresh sends the whole status again)
            self.status_pending = True
            log(f"{self.ns}/{self.name}: status update failed (API server unreachable): {e}")
        else:
            self.status_pending = False

    # -- lookups ---------------------------------------------------------------------------
    def _field(self, path):
        m, spec = self.pod["metadata"], self.pod["spec"]
        simple = {"metadata.name": m["name"], "metadata.namespace": m["namespace"],
                  "metadata.uid": m["uid"], "status.podIP": self.pod_ip, "status.hostIP": API_IP,
                  "spec.nodeName": spec.get("nodeName", ""),
                  "spec.serviceAccountName": spec.get("serviceAccountName", "")}
        if path in simple:
            return simple[path]
        for kind in ("labels", "annotations"):
            pre = f"metadata.{kind}['"
            if path.startswith(pre) and path.endswith("']"):
                return m.get(kind, {}).get(path[len(pre):-2], "")
        raise ValueError(f"fieldRef {path!r} is not supported by the kubelet stand-in")

    def _object_key(self, kind, ref):
        obj = self.api.get_or_none(f"/api/v1/namespaces/{self.ns}/{kind}/{ref['name']}")
        if obj is None:
            if ref.get("optional"):
                return None
            raise ValueError(f"{kind[:-1]} {ref['name']!r} not found")
        data = obj.get("data") or {}
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ValueError(f"key {ref['key']!r} not found in {kind[:-1]} {ref['name']!r}")
        v = data[ref["key"]]
        return base64.b64decode(v).decode() if kind == "secrets" else v

    # -- volumes -------------------------------------------------------------------------
    def _vol_dir(self, name):
        return self.dir / "volumes" / name

    def _fs_group(self):
        return (self.pod["spec"].get("securityContext") or {}).get("fsGroup")

    def prepare_volumes(self, refresh=False):
        with self.vol_lock:
            self._prepare_volumes(refresh)

    def _prepare_volumes(self, refresh=False):
        for v in self.pod["spec"].get("volumes", []):
            name = v["name"]
            d = self._vol_dir(name)
            if "emptyDir" in v:
                if not refresh and not d.exists():
                    d.mkdir(parents=True)
                    os.chmod(d, 0o777)
            elif "persistentVolumeClaim" in v:
                pass  # a host directory per claim, see _mounts
            elif "secret" in v:
                s = v["secret"]
                self._atomic_dir(d, self._items("secrets", s["secretName"], s.get("items"),
                                                s.get("optional")),
                                 s.get("defaultMode", 0o644))
            elif "configMap" in v:
                c = v["configMap"]
                self._atomic_dir(d, self._items("configmaps", c["name"], c.get("items"),
                                                c.get("optional")),
                                 c.get("defaultMode", 0o644))
            elif "projected" in v:
                p = v["projected"]
                if refresh and (d / "..data").exists():
                    continue  # the token is valid for an hour: longer than any test here
                files = {}
                for src in p.get("sources", []):
                    files.update(self._projected(src))
                self._atomic_dir(d, files, p.get("defaultMode", 0o644))
            elif not refresh:
                raise ValueError(f"volume {name}: kind {sorted(v)} not supported by the stand-in")

    def _items(self, kind, name, items, optional):
        obj = self.api.get_or_none(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
        if obj is None:
            if optional:
                return {}
            raise ValueError(f"{kind[:-1]} {name!r} not found")
        data = {k: (base64.b64decode(v) if kind == "secrets" else v.encode())
                for k, v in (obj.get("data") or {}).items()}
        if kind == "configmaps":
            data.update({k: base64.b64decode(v) for k, v in
                         (obj.get("binaryData") or {}).items()})
        if not items:
            return {k: (v, None) for k, v in data.items()}
        out = {}
        for it in items:
            if it["key"] not in data:
                if optional:
                    continue
                raise ValueError(f"key {it['key']!r} not found in {kind[:-1]} {name!r}")
            out[it["path"]] = (data[it["key"]], it.get("mode"))
        return out

    def _projected(self, src):
        if "serviceAccountToken" in src:
            t = src["serviceAccountToken"]
            sa = self.pod["spec"].get("serviceAccountName", "default")
            req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": max(t.get("expirationSeconds", 3607), 3600),
                            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                               "name": self.name, "uid": self.uid}}}
            if t.get("audience"):
                req["spec"]["audiences"] = [t["audience"]]
            res = self.api.post(f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token", req)
            return {t["path"]: (res["status"]["token"].encode(), None)}
        if "configMap" in src:
            c = src["configMap"]
            return self._items("configmaps", c["name"], c.get("items"), c.get("optional"))
        if "secret" in src:
            s = src["secret"]
            return self._items("secrets", s["name"], s.get("items"), s.get("optional"))
        if "downwardAPI" in src:
            return {i["path"]: (self._field(i["fieldRef"]["fieldPath"]).encode(), i.get("mode"))
                    for i in src["downwardAPI"].get("items", [])}
        raise ValueError(f"projected source {sorted(src)} not supported by the stand-in")

    def _atomic_dir(self, d, files, default_mode):
        """The kubelet's atomic writer: files live in ..<timestamp>/, `..data` points at it,
        every visible name is a symlink through ..data; an update swaps ..data by rename."""
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755 if self._fs_group() is None else 0o2775)
        current = d / "..data"
        if current.exists():
            old = current.resolve()
            same = sorted(p.name for p in old.iterdir()) == sorted(files) and all(
                (old / k).read_bytes() == v for k, (v, _) in files.items())
            if same:
                return
        else:
            old = None
        ts = d / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
        ts.mkdir()
        gid = self._fs_group()
        for path, (content, mode) in files.items():
            f = ts / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(content)
            os.chmod(f, mode if mode is not None else default_mode)
            if gid is not None:
                os.chown(f, 0, gid)
        tmp = d / "..data_tmp"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(ts.name)
        os.rename(tmp, current)
        for path in files:
            top = path.split("/")[0]
            link = d / top
            if not link.is_symlink():
                link.symlink_to(f"..data/{top}")
        for entry in d.iterdir():  # names that left the data
            if not entry.name.startswith("..") and entry.name not in {
                    p.split("/")[0] for p in files}:
                entry.unlink()
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


class ContainerRunner:
    """One container of a pod: its own process (PID 1 of its own PID and mount namespace),
    env, mounts, user, readiness, restarts by the pod's restartPolicy, status."""

    def __init__(self, pod_runner, spec, index):
        self.p = pod_runner
        self.c = spec
        self.name = spec["name"]
        self.index = index
        pod = f"{pod_runner.ns}_{pod_runner.name}"
        # the launcher's env and mounts files; the first container's log keeps the pod's name
        self.dir = pod_runner.dir / "containers" / self.name
        self.log_path = pod_runner.k.state / "logs" / (
            f"{pod}.log" if index == 0 else f"{pod}_{self.name}.log")
        self.what = f"{pod_runner.ns}/{pod_runner.name}" + ("" if index == 0 else f"/{self.name}")
        self.popen = None
        self.pid1 = None
        self.restarts = 0
        self.ready = False
        self.started_at = None
        self.last_state = {}
        self.state = {"waiting": {"reason": "ContainerCreating"}}

    def status(self):
        cs = {"name": self.name, "image": self.c.get("image", ""),
              "imageID": "", "ready": self.ready, "restartCount": self.restarts,
              "started": "running" in self.state, "state": self.state}
        if self.last_state:
            cs["lastState"] = self.last_state
        if "running" in self.state:
            cs["containerID"] = f"standin://{self.p.uid[:8]}-{self.index}-{self.restarts}"
        return cs

    # -- run ---------------------------------------------------------------------------------
    def run(self):
        p = self.p
        policy = p.pod["spec"].get("restartPolicy", "Always")
        backoff = 1
        while not p.stop_event.is_set():
            try:
                p.prepare_volumes()
                env = self._env()
                cmd = self._command(env)
            except (KubeError, ValueError, OSError) as e:
                # like CreateContainerConfigError: retried until the thing exists (or the
                # API server answers again)
                self.state = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": str(e)[:300]}}
                p._status()
                p.stop_event.wait(3)
                continue
            rc = self._run_container(env, cmd)
            if p.stop_event.is_set():
                break
            failed = rc != 0
            if policy == "Always" or (policy == "OnFailure" and failed):
                self.restarts += 1
                p._status()
                p.stop_event.wait(min(backoff, 10))
                backoff *= 2
                continue
            if self.index == 0:
                p.phase = "Failed" if failed else "Succeeded"
                p._status()
                # A finished pod stays until somebody deletes it; wait for that.
                p.stop_event.wait()
            return

    def _run_container(self, env, cmd):
        p = self.p
        mounts = self._mounts()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        (self.dir / "mounts").write_text("".join(f"{' '.join(m)}\n" for m in mounts))
        with open(self.log_path, "ab") as out:
            out.write(f"--- {now()} container {self.name} start "
                      f"(restart {self.restarts})\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--",
                 str(paths.LAUNCHER), str(self.dir), *cmd],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env={"PATH": BASE_PATH})
        self.pid1 = None
        self.started_at = now()
        self.state = {"running": {"startedAt": self.started_at}}
        if self.index == 0 or p.phase == "Pending":
            p.phase = "Running"
        self.ready = False
        p._status()
        probe = self.c.get("readinessProbe")
        start = time.monotonic()
        next_probe = start + (probe or {}).get("initialDelaySeconds", 0)
        failures = 0
        next_refresh = time.monotonic() + 5
        while self.popen.poll() is None:
            if p.stop_event.is_set():
                self._terminate(p.stop_grace)
                break
            t = time.monotonic()
            if probe is None and not self.ready:
                self._set_ready(True)
            elif probe is not None and t >= next_probe:
                next_probe = t + probe.get("periodSeconds", 10)
                if self._probe(probe):
                    failures = 0
                    self._set_ready(True)
                else:
                    failures += 1
                    if failures >= probe.get("failureThreshold", 3) or not self.ready:
                        self._set_ready(False)
            if t >= next_refresh and self.index == 0:  # the pod's volumes, refreshed once
                next_refresh = t + 5
                try:
                    p.prepare_volumes(refresh=True)
                except (KubeError, OSError) as e:
                    # API server away: the volumes stay as they are, like a kubelet's
                    log(f"{self.what}: volume refresh: {e}")
                if p.status_pending:
                    p._status()
            p.stop_event.wait(0.5)
        rc = self.popen.wait()
        rc = 128 - rc if rc < 0 else rc
        self.ready = False
        term = {"exitCode": rc, "reason": "Completed" if rc == 0 else "Error",
                "startedAt": self.started_at, "finishedAt": now()}
        self.last_state = {"terminated": term}
        self.state = {"terminated": term}
        log(f"{self.what}: container exited with {rc}")
        p._status()
        return rc

    def _find_pid1(self):
        if self.pid1 and procs.same_process(*self.pid1):
            return self.pid1
        if self.popen is None or self.popen.poll() is not None:
            return None
        own = os.readlink("/proc/self/ns/pid")
        for child in procs.children(self.popen.pid):
            try:
                if os.readlink(f"/proc/{child.pid}/ns/pid") != own:
                    self.pid1 = (child.pid, child.start_ticks)
                    return self.pid1
            except OSError:
                continue
        return None

    def _signal(self, sig):
        p = self._find_pid1()
        if p:
            procs.signal_if_same(*p, sig)
        elif self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)  # not yet in its namespace: the launcher itself

    def _terminate(self, grace):
        log(f"{self.what}: SIGTERM to PID 1 (grace {grace}s)")
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=max(grace, 0) or 0.01)
        except subprocess.TimeoutExpired:
            log(f"{self.what}: grace period over, SIGKILL")
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    def kill_now(self):
        if self.popen and self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    # -- probes ------------------------------------------------------------------------------
    def _port(self, port):
        if isinstance(port, int):
            return port
        for p in self.c.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise ValueError(f"probe port {port!r} is not a container port")

    def _probe(self, probe):
        hg = probe.get("httpGet")
        if not hg:
            return True
        url = (f"{hg.get('scheme', 'HTTP').lower()}://{self.p.ip}:{self._port(hg['port'])}"
               f"{hg.get('path', '/')}")
        try:
            import ssl
            ctx = ssl._create_unverified_context()  # the kubelet does not verify probes
            with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1),
                                        context=ctx) as r:
                return 200 <= r.status < 400
        except OSError:
            return False

    def _set_ready(self, ready):
        if ready != self.ready:
            self.ready = ready
            self.p._status()

    # -- env and command ---------------------------------------------------------------------
    def _env(self):
        p = self.p
        env = {"PATH": f"{p.k.bin}:{paths.VENV}/bin:{BASE_PATH}",
               "HOSTNAME": p.pod["spec"].get("hostname", p.name),
               "KUBERNETES_SERVICE_HOST": API_IP, "KUBERNETES_SERVICE_PORT": str(API_PORT),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(API_PORT), "LANG": "C.UTF-8"}
        for e in self.c.get("env", []):
            if "value" in e:
                val = expand(e["value"], env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    val = p._field(vf["fieldRef"]["fieldPath"])
                elif "secretKeyRef" in vf:
                    val = p._object_key("secrets", vf["secretKeyRef"])
                elif "configMapKeyRef" in vf:
                    val = p._object_key("configmaps", vf["configMapKeyRef"])
                else:
                    raise ValueError(f"env {e['name']}: unsupported valueFrom {list(vf)}")
                if val is None:
                    continue
            else:
                val = ""
            env[e["name"]] = val
        # Every pod shares the host's network namespace: listen on the pod's own address.
        env.setdefault("LISTEN_ADDRESS", p.ip)
        return env

    def _command(self, env):
        c = self.c
        cmd = [expand(a, env) for a in (c.get("command") or IMAGE_ENTRYPOINT)]
        # Every pod shares the host's network namespace: a listen address without a host
        # (`--web.listen-address=:9187`, "every address of the pod") is the pod's own.
        cmd += [re.sub(r"^(--[a-z][a-z.-]*listen-address=):", rf"\g<1>{self.p.ip}:", expand(a, env))
                for a in c.get("args", [])]
        if cmd[0] == "citus-init":
            cmd[0] = str(paths.citus_init_binary())
        run_as = self._run_as()
        if run_as:
            uid, gid = run_as
            groups = ",".join(str(g) for g in [gid, self.p._fs_group()] if g is not None)
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={groups}",
                   "--", *cmd]
        return cmd

    def _run_as(self):
        """(uid, gid) the container runs as when that is not root (runAsUser/runAsGroup of
        the container, else of the pod), else None."""
        sc = dict(self.p.pod["spec"].get("securityContext") or {})
        sc.update({k: v for k, v in (self.c.get("securityContext") or {}).items()
                   if k in ("runAsUser", "runAsGroup")})
        uid = sc.get("runAsUser")
        if uid in (None, 0):
            return None
        return uid, sc.get("runAsGroup", uid)

    def _image_users(self, uid, gid):
        """/etc/passwd and /etc/group as the image has them for a container started as
        uid:gid: the image's `postgres` user is that uid (Dockerfile.citus: 999), which this
        host does not know (its postgres is another uid). Without an entry initdb cannot look
        up its own user. Written into the container's directory; None when the host knows the
        uid (e.g. nobody, 65534)."""
        import pwd
        try:
            pwd.getpwuid(uid)
            return None
        except KeyError:
            pass
        passwd = [l for l in Path("/etc/passwd").read_text().splitlines()
                  if l and not l.startswith("postgres:")]
        passwd.append(f"postgres:x:{uid}:{gid}:PostgreSQL (the image's user):/home/postgres:/bin/sh")
        group = [l for l in Path("/etc/group").read_text().splitlines()
                 if l and not l.startswith("postgres:") and l.split(":")[2:3] != [str(gid)]]
        group.append(f"postgres:x:{gid}:")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "passwd").write_text("\n".join(passwd) + "\n")
        (self.dir / "group").write_text("\n".join(group) + "\n")
        return self.dir / "passwd", self.dir / "group"

    def _mounts(self):
        p = self.p
        vols = {v["name"]: v for v in p.pod["spec"].get("volumes", [])}
        mounts = []
        for vm in self.c.get("volumeMounts", []):
            v = vols[vm["name"]]
            if "persistentVolumeClaim" in v:
                src = p.k.state / "pvc" / p.ns / v["persistentVolumeClaim"]["claimName"]
                if not src.exists():
                    src.mkdir(parents=True)
                    os.chmod(src, 0o777)
            else:
                src = p._vol_dir(vm["name"])
            if vm.get("subPath"):
                src = src / vm["subPath"]
            mounts.append(("bind", str(src), vm["mountPath"], "ro" if vm.get("readOnly") else ""))
        # The image's own file system: private per container, unless a volume is mounted
        # there (the chart's `sockets` emptyDir, shared with the exporter). The socket
        # directory belongs to the image's postgres user: the host's postgres when the
        # container starts as root (citus-init drops to it), else the uid the container runs
        # as (the image's postgres).
        run_as = self._run_as()
        if not any(vm["mountPath"].rstrip("/") == "/var/run/postgresql"
                   for vm in self.c.get("volumeMounts", [])):
            owner = "uid=%d,gid=%d" % run_as if run_as else "uid=postgres,gid=postgres"
            mounts.append(("tmpfs", "-", "/var/run/postgresql", f"mode=2775,{owner},size=16m"))
        mounts.append(("bind", str(p.k.hosts_file), "/etc/hosts", "ro"))
        users = self._image_users(*run_as) if run_as else None
        if users:
            mounts.append(("bind", str(users[0]), "/etc/passwd", "ro"))
            mounts.append(("bind", str(users[1]), "/etc/group", "ro"))
        return mounts


def expand(s, env):
    """Kubernetes $(VAR) expansion: known names are replaced, $$ escapes, others stay."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("$$", i):
            out.append("$")
            i += 2
        elif s.startswith("$(", i) and ")" in s[i:]:
            j = s.index(")", i)
            name = s[i + 2:j]
            out.append(env[name] if name in env else s[i:j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pki", required=True, help="directory with ca.crt, admin.crt, admin.key")
    ap.add_argument("--state", required=True)
    ap.add_argument("--node", default="pck-node")
    ap.add_argument("--subnet", default=LOOPBACK_SUBNET, help="loopback /24 of the pods")
    a = ap.parse_args()
    pki = Path(a.pki)
    api = Api(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
    k = Kubelet(api, a.state, a.node, a.subnet)

    def on_term(signum, frame):
        k.stopping = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    k.run()


if __name__ == "__main__":
    main()
