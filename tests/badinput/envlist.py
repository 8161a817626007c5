"""envlist.py NAME=VALUE... -- CMD [ARGS...]: exec CMD with this environment plus the given
entries appended as they are, so a name can be present twice (a dict-based exec cannot)."""
import ctypes
import os
import sys

sep = sys.argv.index("--")
extra = [os.fsencode(a) for a in sys.argv[1:sep]]
cmd = [os.fsencode(a) for a in sys.argv[sep + 1:]]
entries = [k + b"=" + v for k, v in os.environb.items()] + extra


def array(items):
    arr = (ctypes.c_char_p * (len(items) + 1))(*items)
    arr[len(items)] = None
    return arr


libc = ctypes.CDLL(None, use_errno=True)
libc.execve(cmd[0], array(cmd), array(entries))
sys.exit(f"envlist: cannot execute {cmd[0]!r}: {os.strerror(ctypes.get_errno())}")
