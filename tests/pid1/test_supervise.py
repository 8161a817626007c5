"""`citus-init supervise -- CMD` as PID 1: exit status, signals, reaping, escalation."""
import json
import signal
import subprocess
import sys

import pytest

from conftest import BIN, base_env, wait_for

FORWARDED = ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"]


def sup(*cmd):
    return ["supervise", "--", *cmd]


@pytest.mark.parametrize("code", range(256))
def test_exit_code_passes_through(pid1, code):
    p = pid1(sup("sh", "-c", f"exit {code}"))
    assert p.wait() == code


@pytest.mark.parametrize("name", FORWARDED)
def test_signal_reaches_the_child(pid1, workdir, name):
    seen, ready = workdir / "seen", workdir / "ready"
    script = (f'trap \'echo {name} > {seen}; exit 0\' {name}; touch {ready}; '
              'while :; do sleep 0.05; done')
    p = pid1(sup("sh", "-c", script))
    wait_for(ready.exists, what="child ready")
    p.signal(getattr(signal, "SIG" + name))
    assert p.wait() == 0, p.stderr
    assert seen.read_text().strip() == name
    assert f"msg=\"signal forwarded\" signal={name}" in p.stderr


@pytest.mark.parametrize("name", FORWARDED)
def test_death_by_signal_gives_128_plus_signal(pid1, workdir, name):
    ready = workdir / "ready"
    p = pid1(sup("sh", "-c", f"touch {ready}; exec sleep 600"))
    wait_for(ready.exists, what="child ready")
    # exec may not have happened yet: either way the child dies of the signal.
    sig = getattr(signal, "SIG" + name)
    p.signal(sig)
    assert p.wait() == 128 + sig, p.stderr


def test_signals_go_to_the_main_child_only(pid1, workdir):
    ready, grand = workdir / "ready", workdir / "grandchild-got-term"
    # The grandchild shares the main child's process group; it must not see the TERM.
    script = (f"sh -c 'trap \"touch {grand}; exit 0\" TERM; "
              f"i=0; while [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done' & "
              f"trap 'exit 3' TERM; touch {ready}; while :; do sleep 0.05; done")
    p = pid1(sup("sh", "-c", script))
    wait_for(ready.exists, what="child ready")
    p.signal(signal.SIGTERM)
    assert p.wait() == 3
    assert not grand.exists()


ZOMBIE_CHECK = r"""
import json, os, time
def procs():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(d)] = (fields[0], int(fields[1]))
    return out
for _ in range(200):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            time.sleep(0.3)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
me = os.getpid()
orphans = sum(1 for p, (s, pp) in procs().items() if pp == 1 and p != me)
deadline = time.monotonic() + 15
while True:
    others = {p: s for p, (s, pp) in procs().items() if p not in (1, me)}
    zombies = sum(1 for s in others.values() if s == "Z")
    if not others or time.monotonic() > deadline:
        break
    time.sleep(0.05)
print(json.dumps({"orphans": orphans, "left": len(others), "zombies": zombies}))
"""


def test_orphans_are_reaped(pid1):
    p = pid1(sup(sys.executable, "-c", ZOMBIE_CHECK))
    assert p.wait() == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["orphans"] > 0  # they really were re-parented to PID 1
    assert result == {"orphans": result["orphans"], "left": 0, "zombies": 0}


def test_term_ignored_child_gets_quit_at_the_deadline(pid1, workdir):
    ready = workdir / "ready"
    env = base_env(SHUTDOWN_DEADLINE=1, TERMINATION_GRACE_PERIOD=30)
    p = pid1(sup("sh", "-c", f"trap '' TERM; touch {ready}; while :; do sleep 0.05; done"),
             env=env)
    wait_for(ready.exists, what="child ready")
    p.signal(signal.SIGTERM)
    assert p.wait() == 128 + signal.SIGQUIT, p.stderr
    assert "sending QUIT to remaining processes" in p.stderr


def test_child_ignoring_term_and_quit_is_killed_before_the_grace_period_ends(pid1, workdir):
    ready = workdir / "ready"
    env = base_env(SHUTDOWN_DEADLINE=1, TERMINATION_GRACE_PERIOD=3)
    p = pid1(sup("sh", "-c", f"trap '' TERM QUIT; touch {ready}; while :; do sleep 0.05; done"),
             env=env)
    wait_for(ready.exists, what="child ready")
    p.signal(signal.SIGTERM)
    assert p.wait() == 128 + signal.SIGKILL, p.stderr
    assert 'msg="killing remaining processes" signal=KILL' in p.stderr


FAKE_POSTMASTER = r"""
import os, signal, sys, time
pgdata, ready, pm_quit, main_quit = sys.argv[1:5]
def touch(path):
    open(path, "w").close()
if os.fork() == 0:
    # Like the postmaster: its own session, pid in PGDATA/postmaster.pid, QUIT = stop now.
    os.setsid()
    signal.signal(signal.SIGQUIT, lambda *a: (touch(pm_quit), os._exit(0)))
    with open(os.path.join(pgdata, "postmaster.pid"), "w") as f:
        f.write(f"{os.getpid()}\n{pgdata}\n")
    touch(ready)
    while True:
        time.sleep(0.05)
# Like a Patroni that does not stop: ignores TERM, notes a QUIT.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, lambda *a: touch(main_quit))
while True:
    time.sleep(0.05)
"""


def test_deadline_asks_only_the_postmaster_for_an_immediate_shutdown(pid1, workdir):
    """With PGDATA known, SIGQUIT goes to the pid in postmaster.pid, not to Patroni."""
    pgdata = workdir / "pgdata"
    pgdata.mkdir()
    ready, pm_quit, main_quit = workdir / "ready", workdir / "pm-quit", workdir / "main-quit"
    env = base_env(SHUTDOWN_DEADLINE=1, TERMINATION_GRACE_PERIOD=3, PGDATA=pgdata)
    p = pid1(sup(sys.executable, "-c", FAKE_POSTMASTER, str(pgdata), str(ready), str(pm_quit),
                 str(main_quit)), env=env)
    wait_for(ready.exists, what="fake postmaster ready")
    p.signal(signal.SIGTERM)
    assert p.wait() == 128 + signal.SIGKILL, p.stderr
    assert pm_quit.exists()
    assert not main_quit.exists()
    assert "asking PostgreSQL for an immediate shutdown" in p.stderr


def test_grandchild_in_its_own_session_is_waited_for(pid1, workdir):
    done = workdir / "done"
    p = pid1(sup("sh", "-c", f"setsid sh -c 'sleep 1; touch {done}' & exit 5"))
    assert p.wait() == 5
    assert done.exists()  # citus-init did not exit (and kill it) before it finished


def test_lingering_grandchild_is_ended_after_the_drain(pid1, workdir):
    ready = workdir / "ready"
    stubborn = f"trap '' TERM QUIT; touch {ready}; while :; do sleep 0.05; done"
    env = base_env(SHUTDOWN_DEADLINE=1, TERMINATION_GRACE_PERIOD=3)
    p = pid1(sup("sh", "-c", f"setsid sh -c \"{stubborn}\" & "
                 f"while [ ! -e {ready} ]; do sleep 0.02; done; exit 4"), env=env)
    assert p.wait() == 4, p.stderr
    assert 'msg="killing remaining processes"' in p.stderr


def test_command_not_found_is_127(pid1):
    p = pid1(sup("no-such-command-xyz", "arg"))
    assert p.wait() == 127
    assert 'msg="command not found" command=no-such-command-xyz' in p.stderr


def test_command_not_executable_is_126(pid1, workdir):
    script = workdir / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    p = pid1(sup(str(script)))
    assert p.wait() == 126
    assert f'msg="command cannot be executed" command={script}' in p.stderr
    assert 'error="Permission denied"' in p.stderr


def test_child_gets_default_dispositions_and_empty_mask(pid1):
    p = pid1(sup("grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"))
    assert p.wait() == 0
    assert "SigBlk:\t0000000000000000" in p.stdout
    assert "SigIgn:\t0000000000000000" in p.stdout


def test_json_logs(pid1):
    p = pid1(sup("true"), env=base_env(LOG_FORMAT="json"))
    assert p.wait() == 0
    events = [json.loads(line) for line in p.stderr.splitlines()]
    assert {"child started", "child exited"} <= {e["msg"] for e in events}
    assert all(e["component"] == "citus-init" for e in events)


@pytest.mark.parametrize("args", [["supervise"], ["supervise", "--"], ["run", "sh"], ["nope"]])
def test_usage_errors(pid1, args):
    p = pid1(args)
    assert p.wait() == 64
    assert "usage: citus-init" in p.stderr


@pytest.mark.parametrize("env,says", [
    ({"SHUTDOWN_DEADLINE": "soon"}, 'SHUTDOWN_DEADLINE: \\"soon\\" is not a number'),
    ({"SHUTDOWN_DEADLINE": "+1"}, 'SHUTDOWN_DEADLINE: \\"+1\\" is not a plain decimal number'),
    ({"TERMINATION_GRACE_PERIOD": "030"},
     'TERMINATION_GRACE_PERIOD: \\"030\\" is not a plain decimal number'),
    ({"SHUTDOWN_DEADLINE": "40"}, "SHUTDOWN_DEADLINE: 40 is not below TERMINATION_GRACE_PERIOD 30"),
])
def test_bad_deadline_is_a_configuration_error(pid1, env, says):
    """`supervise` reads its two settings by the pod configuration's rules."""
    p = pid1(sup("true"), env=base_env(**env))
    assert p.wait() == 78
    assert says in p.stderr, p.stderr


def test_not_pid1_is_a_subreaper(workdir):
    """Outside a PID namespace orphans still come back to citus-init and are reaped."""
    orphan = workdir / "orphan"
    script = (f"sh -c 'sleep 1 & echo $! > {orphan}'; "
              f"grep '^PPid:' /proc/$(cat {orphan})/status")
    p = subprocess.Popen([BIN, "supervise", "--", "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=base_env(LOG_LEVEL="debug"))
    try:
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert out.split() == ["PPid:", str(p.pid)]
    assert f'msg="process reaped" pid={orphan.read_text().strip()}' in err
