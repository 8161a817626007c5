"""The leader module (citus-init-leader.so, libcurl + libpq): PID 1 maps it only when this
member can have extensions to create, and a pod that needs it but cannot load it stops with
70 before changing anything."""
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, wait_for

MODULE = "citus-init-leader.so"
# Where the build compiles in the install location (meson: <prefix>/<libdir>/citus-init).
INSTALLED_MODULE_DIRS = [Path("/usr/local/lib/x86_64-linux-gnu/citus-init"),
                         Path("/usr/local/lib/citus-init")]


def mapped_objects(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {Path(line.split()[-1]).name for line in f if ".so" in line.split()[-1]}


def objects_while_supervising(pid1, env):
    """Shared objects PID 1 maps once its child (`sleep`) runs."""
    p = pid1(["run", "--", "sleep", "600"], env=env)
    pid = p.init_pid()

    def child_is_sleep():
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return any(Path(f"/proc/{k}/comm").read_text().strip() == "sleep" for k in kids)
        except OSError:
            return False
    wait_for(child_is_sleep, what="the supervised sleep")
    objects = mapped_objects(pid)
    # PID 1 itself: after the privilege drop unshare's --kill-child no longer reaches it, and
    # the end of a namespace's PID 1 ends everything in it.
    os.kill(pid, signal.SIGKILL)
    p.proc.wait(timeout=10)
    return objects


def heavy(objects):
    return sorted(o for o in objects
                  if o == MODULE or o.startswith(("libpq.", "libcurl.", "libcjson.")))


def test_without_extensions_pid1_maps_no_module(pid1, pod):
    objects = objects_while_supervising(pid1, pod["env"])
    assert not heavy(objects), objects


def test_citus_worker_never_loads_the_module(pid1, pod):
    env = dict(pod["env"], CITUS_GROUP="1", EXTENSIONS="postgis")
    objects = objects_while_supervising(pid1, env)
    assert not heavy(objects), objects


def test_coordinator_with_extensions_loads_the_module(pid1, pod):
    env = dict(pod["env"], EXTENSIONS="postgis")
    objects = objects_while_supervising(pid1, env)
    found = heavy(objects)
    assert MODULE in found and any(o.startswith("libpq.") for o in found), objects


@pytest.fixture
def lone_binary(pod):
    """citus-init copied to a directory without the module; the compiled-in install
    directory must not hold one either (nothing is installed on a test machine)."""
    if any((d / MODULE).exists() for d in INSTALLED_MODULE_DIRS):
        pytest.skip(f"a {MODULE} is installed on this machine; the missing-module case "
                    "cannot be produced")
    bindir = pod["dir"] / "bin"
    bindir.mkdir()
    shutil.copy2(BIN, bindir / "citus-init")
    return bindir


def run_lone(binary, args, env):
    """The copy as PID 1 of a new namespace; --kill-child ends everything with it."""
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                           str(binary), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_missing_module_stops_the_pod_before_anything_changes(pod, lone_binary):
    env = dict(pod["env"], EXTENSIONS="postgis")
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], env)
    assert r.returncode == 70, r.stderr
    assert 'msg="cannot load the leader module; extensions cannot be created"' in r.stderr
    assert f"/{MODULE}" in r.stderr and "No such file" in r.stderr
    assert not pod["pgdata"].exists() and not pod["run_dir"].exists()


def test_missing_module_does_not_matter_without_extensions(pod, lone_binary):
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], pod["env"])
    assert r.returncode == 0, r.stderr
    assert "leader module" not in r.stderr


def test_broken_module_next_to_the_binary(pod, lone_binary):
    (lone_binary / MODULE).write_bytes(b"not an ELF object\n")
    env = dict(pod["env"], EXTENSIONS="postgis")
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], env)
    assert r.returncode == 70, r.stderr
    assert f"module={lone_binary / MODULE} " in r.stderr, r.stderr


def test_extensions_job_without_module_is_an_internal_error(pod, lone_binary):
    env = dict(pod["env"], COORDINATOR_HOST="127.0.77.3", EXTENSIONS="postgis")
    r = run_lone(lone_binary / "citus-init", ["extensions", "--wait"], env)
    assert r.returncode == 70, r.stderr
    assert 'msg="cannot load the leader module; extensions cannot be created"' in r.stderr


def test_module_from_another_build_fails_at_load_not_mid_run(pod, lone_binary, tmp_path):
    """A module referring to a core function this executable does not have (a mismatched
    build) is refused when loaded, naming the symbol, instead of ending PID 1 later."""
    src = tmp_path / "stale.c"
    src.write_text("void core_function_of_another_build(void);\n"
                   "void *leader_watch_start(void) { core_function_of_another_build(); return 0; }\n"
                   "void leader_watch_stop(void) {}\n"
                   "int extensions_oneshot(void) { return 0; }\n")
    built = subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-z,now", "-o",
                            str(lone_binary / MODULE), str(src)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"no C compiler for the stale module: {built.stderr.strip()}")
    env = dict(pod["env"], EXTENSIONS="postgis")
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], env)
    assert r.returncode == 70, r.stderr
    assert "core_function_of_another_build" in r.stderr, r.stderr
    assert not pod["pgdata"].exists()
