"""PID 1 and the agent: PID 1 maps neither of citus-init's modules nor the libraries they link
(OpenSSL, libyaml, libcurl, libpq, cJSON) in any role; the leader duties run in
`citus-init agent` (citus-init-agent.so), which PID 1 restarts whenever it ends without the
supervised command noticing; a missing or broken module is named."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, POSTGRES, RESTAPI_PASSWORD, SUPERUSER_PASSWORD, wait_for

AGENT_MODULE = "citus-init-agent.so"
PREPARE_MODULE = "citus-init-prepare.so"
MODULES = (AGENT_MODULE, PREPARE_MODULE)
# Where the build compiles in the install location (meson: <prefix>/<libdir>/citus-init).
INSTALLED_MODULE_DIRS = [Path("/usr/local/lib/x86_64-linux-gnu/citus-init"),
                         Path("/usr/local/lib/citus-init")]
HEAVY_PREFIXES = ("libpq.", "libcurl.", "libcjson.", "libyaml", "libssl.", "libcrypto.")


def mapped_objects(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {Path(line.split()[-1]).name for line in f if ".so" in line.split()[-1]}


def heavy(objects):
    return sorted(o for o in objects if o in MODULES or o.startswith(HEAVY_PREFIXES))


def children(pid):
    try:
        return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def agent_of(pid1_pid):
    """The agent's PID (PID 1's child running `citus-init agent`), or None."""
    for k in children(pid1_pid):
        args = cmdline(k)
        if len(args) == 2 and args[1] == b"agent":
            return k
    return None


def sleep_of(pid1_pid):
    for k in children(pid1_pid):
        try:
            if Path(f"/proc/{k}/comm").read_text().strip() == "sleep":
                return k
        except OSError:
            pass
    return None


def agent_maps_module(pid):
    try:
        return AGENT_MODULE in mapped_objects(pid)
    except OSError:
        return False


def start_supervising(pid1, env):
    """citus-init run -- sleep 600 as PID 1; returns (Pid1, its host PID, sleep's, agent's)
    once the agent has loaded its module."""
    p = pid1(["run", "--", "sleep", "600"], env=env)
    pid = p.init_pid()
    sleeper = wait_for(lambda: sleep_of(pid), what="the supervised sleep")
    agent = wait_for(lambda: agent_of(pid), what="the agent")
    wait_for(lambda: agent_maps_module(agent), what="the agent's module")
    return p, pid, sleeper, agent


@pytest.mark.parametrize("role", [
    {},                                          # coordinator, no extensions
    {"EXTENSIONS": "postgis"},                   # coordinator with extensions
    {"CITUS_GROUP": "1", "EXTENSIONS": "postgis"},  # worker
    {"CITUS_ENABLED": "false", "EXTENSIONS": "postgis"},
], ids=["coordinator", "coordinator-extensions", "worker", "no-citus"])
def test_pid1_maps_no_module_the_agent_does(pid1, pod, role):
    p, pid, _, agent = start_supervising(pid1, dict(pod["env"], **role))
    assert not heavy(mapped_objects(pid)), mapped_objects(pid)
    found = heavy(mapped_objects(agent))
    assert AGENT_MODULE in found and any(o.startswith("libpq.") for o in found), found
    assert os.stat(f"/proc/{agent}").st_uid == POSTGRES.pw_uid
    p.kill()


def test_agent_gets_the_passwords_on_stdin_not_in_env(pid1, pod):
    p, pid, sleeper, agent = start_supervising(pid1, pod["env"])
    for proc in (pid, sleeper, agent):
        environ = Path(f"/proc/{proc}/environ").read_bytes()
        assert SUPERUSER_PASSWORD.encode() not in environ
        assert RESTAPI_PASSWORD.encode() not in environ
        assert b"PASSWORD=" not in environ
    p.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_agent_restarted_command_untouched(pid1, pod, sig):
    p, pid, sleeper, agent = start_supervising(pid1, pod["env"])
    os.kill(agent, sig)
    t0 = time.monotonic()
    new = wait_for(lambda: (a := agent_of(pid)) and a != agent and a, what="a new agent")
    back = time.monotonic() - t0
    assert back < 5, f"the agent took {back:.1f} s to come back"
    wait_for(lambda: agent_maps_module(new), what="the new agent's module")
    assert sleep_of(pid) == sleeper  # the supervised command never noticed
    p.kill()


def test_agent_end_is_logged_with_the_reason_and_backoff_grows(pid1, pod):
    p, pid, sleeper, agent = start_supervising(pid1, pod["env"])
    os.kill(agent, signal.SIGSEGV)
    second = wait_for(lambda: (a := agent_of(pid)) and a != agent and a, what="a new agent")
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: (a := agent_of(pid)) and a not in (agent, second), what="a third agent")
    p.signal(signal.SIGTERM)
    assert p.wait() == 143
    lines = [ln for ln in p.stderr.splitlines() if 'msg="agent ended; starting it again"' in ln]
    assert len(lines) == 2, p.stderr
    assert "signal=SEGV exit_status=139" in lines[0] and "restart_in_s=0.2" in lines[0]
    assert "signal=KILL exit_status=137" in lines[1] and "restart_in_s=0.4" in lines[1]
    assert "restarts=2" in lines[1]
    assert sleep_of(pid) is None


def test_term_stops_the_agent_before_the_command(pid1, pod):
    p, pid, sleeper, agent = start_supervising(pid1, pod["env"])
    p.signal(signal.SIGTERM)
    assert p.wait() == 143  # sleep ended by the forwarded TERM
    err = p.stderr
    stopped = err.index('msg="agent stopped"')
    forwarded = err.index('msg="signal forwarded" signal=TERM')
    assert stopped < forwarded, err
    assert 'msg="agent stopping" signal=TERM' in err  # the agent's own line
    assert "component=citus-init-agent" in err
    assert 'msg="agent ended' not in err  # a stop is not a crash: no restart


def test_command_exit_stops_the_agent(pid1, pod):
    p = pid1(["run", "--", "sh", "-c", "sleep 1"], env=pod["env"])
    assert p.wait() == 0, p.stderr
    assert 'msg="agent stopped"' in p.stderr
    assert 'msg="agent ended' not in p.stderr


def test_supervise_has_no_agent(pid1):
    p = pid1(["supervise", "--", "true"])
    assert p.wait() == 0
    assert "agent" not in p.stderr


@pytest.fixture
def lone_binary(pod):
    """citus-init copied to a directory without its modules; the compiled-in install
    directory must not hold them either (nothing is installed on a test machine)."""
    if any((d / m).exists() for d in INSTALLED_MODULE_DIRS for m in MODULES):
        pytest.skip("citus-init's modules are installed on this machine; the missing-module "
                    "cases cannot be produced")
    bindir = pod["dir"] / "bin"
    bindir.mkdir()
    shutil.copy2(BIN, bindir / "citus-init")
    return bindir


def with_module(bindir, name):
    shutil.copy2(Path(BIN).parent / name, bindir / name)


def run_lone(binary, args, env, timeout=60):
    """The copy as PID 1 of a new namespace; --kill-child ends everything with it."""
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                           str(binary), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_missing_prepare_module_stops_the_pod_before_anything_changes(pod, lone_binary):
    with_module(lone_binary, AGENT_MODULE)
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], pod["env"])
    assert r.returncode == 70, r.stderr
    assert 'msg="cannot load a module of citus-init"' in r.stderr
    assert f"/{PREPARE_MODULE}" in r.stderr and "No such file" in r.stderr
    assert not pod["pgdata"].exists() and not pod["run_dir"].exists()


def test_missing_agent_module_is_named_and_the_command_runs_on(pod, lone_binary):
    """The agent cannot start: each try is logged with the module's path, the backoff
    grows, the supervised command is never touched."""
    with_module(lone_binary, PREPARE_MODULE)
    r = run_lone(lone_binary / "citus-init", ["run", "--", "sleep", "1.5"], pod["env"])
    assert r.returncode == 0, r.stderr
    assert f"module={lone_binary.parent}" not in r.stderr
    assert f"/{AGENT_MODULE}" in r.stderr and 'needed_for="the leader duties' in r.stderr
    ended = [ln for ln in r.stderr.splitlines() if 'msg="agent ended; starting it again"' in ln]
    assert ended and "exit_status=70" in ended[0], r.stderr


def test_broken_module_next_to_the_binary(pod, lone_binary):
    (lone_binary / PREPARE_MODULE).write_bytes(b"not an ELF object\n")
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], pod["env"])
    assert r.returncode == 70, r.stderr
    assert f"module={lone_binary / PREPARE_MODULE} " in r.stderr, r.stderr


def test_extensions_job_without_module_is_an_internal_error(pod, lone_binary):
    with_module(lone_binary, PREPARE_MODULE)
    env = dict(pod["env"], COORDINATOR_HOST="127.0.77.3", EXTENSIONS="postgis")
    r = run_lone(lone_binary / "citus-init", ["extensions", "--wait"], env)
    assert r.returncode == 70, r.stderr
    assert 'msg="cannot load a module of citus-init"' in r.stderr
    assert f"/{AGENT_MODULE}" in r.stderr


def test_module_from_another_build_fails_at_load_not_mid_run(pod, lone_binary, tmp_path):
    """A module referring to a core function this executable does not have (a mismatched
    build) is refused when loaded, naming the symbol, instead of failing later."""
    src = tmp_path / "stale.c"
    src.write_text("void core_function_of_another_build(void);\n"
                   "void tls_check(void) { core_function_of_another_build(); }\n"
                   "char *render_patroni_yaml(void) { return 0; }\n")
    built = subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-z,now", "-o",
                            str(lone_binary / PREPARE_MODULE), str(src)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"no C compiler for the stale module: {built.stderr.strip()}")
    r = run_lone(lone_binary / "citus-init", ["run", "--", "true"], pod["env"])
    assert r.returncode == 70, r.stderr
    assert "core_function_of_another_build" in r.stderr, r.stderr
    assert not pod["pgdata"].exists()


def test_agent_refuses_a_terminal_and_bad_input(pod):
    """`citus-init agent` by hand: with stdin at EOF it runs on the environment alone;
    without the passwords (they come from PID 1, never from the secret volume) it names what
    is missing and exits 78."""
    env = dict(pod["env"])
    r = subprocess.run([BIN, "agent"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 78, r.stderr
    assert "SUPERUSER_PASSWORD" in r.stderr and 'msg="agent: configuration invalid"' in r.stderr
