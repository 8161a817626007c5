"""Processes seen through /proc: liveness that survives PID reuse, descendants, zombies.

Everything here reads /proc only; signals are sent by the callers, always to a PID they
started (or its PID 1 child) after checking it is still the process they think it is.
"""
import os
import signal
import time
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str       # R, S, D, Z, T, ...
    comm: str
    start_ticks: int  # start time since boot, identifies the process across PID reuse


def read_proc(pid: int) -> Optional[Proc]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm is in parentheses and may itself contain spaces or parentheses
    lpar, rpar = data.index("("), data.rindex(")")
    fields = data[rpar + 2:].split()
    return Proc(pid=pid, ppid=int(fields[1]), state=fields[0], comm=data[lpar + 1:rpar],
                start_ticks=int(fields[19]))


def all_procs() -> list:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            p = read_proc(int(entry))
            if p is not None:
                procs.append(p)
    return procs


def children(pid: int) -> list:
    return [p for p in all_procs() if p.ppid == pid]


def descendants(pid: int) -> list:
    """Every process below pid (not pid itself), from one snapshot of /proc."""
    procs = all_procs()
    by_parent = {}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def cmdline(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def namespace_pids(pid: int) -> list:
    """The process's PID in each PID namespace it is in, outermost first (NSpid); [] when
    it is gone. [..., 1] is PID 1 of its innermost namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return []


def same_process(pid: int, start_ticks: int) -> bool:
    """True while pid is alive (not a zombie) and is the process that had start_ticks."""
    p = read_proc(pid)
    return p is not None and p.start_ticks == start_ticks and p.state != "Z"


def wait_gone(pid: int, start_ticks: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not same_process(pid, start_ticks):
            return True
        time.sleep(0.1)
    return not same_process(pid, start_ticks)


def signal_if_same(pid: int, start_ticks: int, sig: int) -> bool:
    if not same_process(pid, start_ticks):
        return False
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_process(pid: int, start_ticks: int, timeout: float, sig=signal.SIGTERM) -> None:
    """sig, wait up to timeout, then SIGKILL. Only ever touches that very process."""
    if signal_if_same(pid, start_ticks, sig) and not wait_gone(pid, start_ticks, timeout):
        signal_if_same(pid, start_ticks, signal.SIGKILL)
        wait_gone(pid, start_ticks, 5)


def in_namespace(ns: str) -> list:
    """Every process whose PID namespace is ns (e.g. 'pid:[4026532178]')."""
    found = []
    for p in all_procs():
        try:
            if os.readlink(f"/proc/{p.pid}/ns/pid") == ns:
                found.append(p)
        except OSError:
            continue
    return found
