"""Fixtures for tests/extensions: one etcd per session, pods per module, all stopped by PID."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import cluster  # noqa: E402


@pytest.fixture(scope="session")
def workdir():
    d = cluster.make_tempdir("pck-ext-")
    yield d
    if os.environ.get("KEEP_TEST_DIR") != "1":
        cluster.cleanup_dir(d)
    else:
        print(f"test directory kept: {d}")


@pytest.fixture(scope="session")
def net():
    return cluster.Net.pick()


@pytest.fixture(scope="session")
def etcd(net, workdir):
    e = cluster.Etcd(net, tmp=workdir, n=1)
    try:
        e.start()
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="session")
def citus_init():
    binary = cluster.paths.citus_init_binary()
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it first (scripts/lib/common.sh ensure_build)")
    return binary


class PodSet:
    """Pods started by one test or module; stop_all() stops each by PID."""

    def __init__(self, net, etcd, workdir):
        self.net, self.etcd, self.workdir = net, etcd, workdir
        self.pods = []
        self.next_ip = 10

    def new(self, name, env=None, passwords=None, start=True, args=()):
        pod = cluster.Pod(name, self.net.ip(self.next_ip), self.etcd, self.workdir, env=env,
                          passwords=passwords)
        self.next_ip += 1
        self.pods.append(pod)
        if start:
            pod.start(args)
        return pod

    def stop_all(self):
        for pod in reversed(self.pods):
            try:
                pod.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {pod.name}: {exc}")


@pytest.fixture
def pods(net, etcd, workdir, citus_init):
    ps = PodSet(net, etcd, workdir)
    try:
        yield ps
    finally:
        ps.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every pod's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for value in item.funcargs.values():
        if isinstance(value, PodSet):
            for pod in value.pods:
                rep.sections.append((f"pod {pod.name} log (tail)", pod.log()[-8000:]))


# ---------------------------------------------------------------- helpers for the test modules

LEADER_TIMEOUT = 90  # bootstrap: initdb + Patroni's first loop on a shared 2-core machine


def wait_leader(pod, timeout=LEADER_TIMEOUT):
    def leading():
        pod.check_running()
        return pod.is_leader()
    return cluster.wait_for(leading, timeout, what=f"{pod.name} to lead")


def assert_no_secrets(pod, *texts):
    for name, secret in pod.passwords.items():
        for text in (pod.log(), *texts):
            assert secret not in text, f"the {name} password appears in {pod.name}'s output"


def start_citus_pair(pods, name, env):
    """A Citus coordinator (group 0) and one worker (group 1) sharing one set of passwords,
    both leading their group. env: the pods' common environment besides the Citus basics."""
    pw = cluster.new_passwords()
    base = dict({"CLUSTER_NAME": name, "CITUS_ENABLED": "true", "CITUS_DATABASE": "citus"}, **env)
    coord = pods.new(f"{name}-0-0", env=dict(base, CITUS_GROUP="0"), passwords=pw)
    worker = pods.new(f"{name}-1-0", env=dict(base, CITUS_GROUP="1"), passwords=pw)
    wait_leader(coord)
    wait_leader(worker)
    return coord, worker
