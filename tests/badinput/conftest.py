"""The pod tree every bad-input case starts from, and one citus-init run as PID 1.

A tree is a fresh 0755 directory under /tmp holding everything the pod reads or writes:
secrets, certificates, PG_BIN_DIR, EXTENSIONS_FILE, PGDATA, RUN_DIR and runroot/, which is
bind-mounted over /run inside citus-init's own mount namespace (unshare makes one), so the
socket directory /var/run/postgresql is runroot/postgresql and part of the tree. As root the
tree is one a start WOULD change (PGDATA, RUN_DIR and the socket directory of another uid,
mode 0755): a bad input that still got as far as the changes shows in the snapshot.
"""
import os
import pwd
import resource
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("CITUS_INIT_BIN", str(ROOT / "build" / "citus-init"))
SANITIZED = os.environ.get("BADINPUT_SANITIZED") == "1"
POSTGRES = pwd.getpwnam("postgres")
OTHER_UID = 12345
HERE = Path(__file__).resolve().parent

SUPERUSER_PASSWORD = 'Sup3r"S3cret:pw'
REPLICATION_PASSWORD = "R3pl-S3cret-pw"
RESTAPI_PASSWORD = "Ap1-S3cret-pw"
ENV_PASSWORD = "Env-S3cret-pw"  # what cases put into *_PASSWORD variables
SECRETS = (SUPERUSER_PASSWORD, REPLICATION_PASSWORD, RESTAPI_PASSWORD, ENV_PASSWORD)

POD_IP = "127.0.88.1"


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.fixture(scope="session")
def cert_source():
    """One CA, a server certificate for POD_IP and its key, another key; made once."""
    d = Path(tempfile.mkdtemp(prefix="badinput-certs-", dir="/tmp"))
    sh = f"""set -e; cd {d}
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=badinput-ca -keyout ca.key -out ca.crt 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=bi-0-0 -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:{POD_IP}\\n' > san.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile san.ext -out server.crt 2>/dev/null
      openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out other.key 2>/dev/null"""
    subprocess.run(["sh", "-c", sh], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Tree:
    """One pod's files. p(name) is a path inside; env the valid environment for it."""

    def __init__(self, root, certs_from, user):
        self.root = root
        self.user = user
        p = self.p
        pg = (POSTGRES.pw_uid, POSTGRES.pw_gid)
        nonroot = user == "postgres"
        os.chmod(root, 0o755)
        p("secrets").mkdir()
        for name, pw in (("superuser-password", SUPERUSER_PASSWORD + "\n"),
                         ("replication-password", REPLICATION_PASSWORD),
                         ("restapi-password", RESTAPI_PASSWORD + "\r\n")):
            p("secrets", name).write_text(pw)
            os.chmod(p("secrets", name), 0o644)
        p("certs").mkdir()
        for name in ("ca.crt", "server.crt", "server.key", "other.key"):
            shutil.copy(certs_from / name, p("certs", name))
            os.chmod(p("certs", name), 0o644)
        p("bin").mkdir()
        p("bin", "postgres").write_text("#!/bin/sh\nexit 0\n")
        os.chmod(p("bin", "postgres"), 0o755)
        p("extensions.txt").write_text("# extra\nhstore\npg_trgm:public\n")
        data = p("pgroot", "data")
        data.mkdir(parents=True)
        p("pgroot", "data", "PG_VERSION").write_text("15\n")
        p("run").mkdir()
        p("runroot", "postgresql").mkdir(parents=True)
        if nonroot:
            for d in (p("pgroot"), data, p("run")):
                os.chown(d, *pg)
                os.chmod(d, 0o700)
            os.chown(p("pgroot", "data", "PG_VERSION"), *pg)
            os.chown(p("runroot", "postgresql"), *pg)
            os.chmod(p("runroot", "postgresql"), 0o2775)
        else:
            for d in (data, p("run"), p("runroot", "postgresql")):
                os.chown(d, OTHER_UID, OTHER_UID)
                os.chmod(d, 0o755)
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
            "POD_NAME": "bi-0-0", "POD_IP": POD_IP, "CLUSTER_NAME": "bi", "CITUS_GROUP": "0",
            "ETCD_HOSTS": "127.0.88.2:2379", "PGDATA": str(data), "RUN_DIR": str(p("run")),
            "SECRETS_DIR": str(p("secrets")), "PG_BIN_DIR": str(p("bin")),
            "LISTEN_ADDRESS": POD_IP, "EXTENSIONS_FILE": str(p("extensions.txt")),
            "EXTENSIONS": "postgis", "SSL_ENABLED": "true", "SSL_CERT_DIR": str(p("certs")),
        }

    def p(self, *parts):
        return self.root.joinpath(*parts)

    def fmt(self, text):
        """{tree} and {socket} in a case's strings."""
        return text.format(tree=self.root, socket="/var/run/postgresql")

    def snapshot(self):
        """Owner, mode, mtime and content (or link target) of every entry in the tree."""
        state = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in [".", *dirnames, *filenames]:
                path = os.path.normpath(os.path.join(dirpath, name))
                st = os.lstat(path)
                body = None
                if stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        body = f.read()
                elif stat.S_ISLNK(st.st_mode):
                    body = os.readlink(path)
                state[path] = (st.st_uid, st.st_gid, stat.S_IFMT(st.st_mode),
                               stat.S_IMODE(st.st_mode), st.st_mtime_ns, body)
        return state


@pytest.fixture
def make_tree(cert_source):
    made = []

    def make(user="root"):
        root = Path(tempfile.mkdtemp(prefix="badinput-", dir="/tmp"))
        made.append(root)
        return Tree(root, cert_source, user)
    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def run_pid1(tree, args, env, user="root", extra_env=(), binary=BIN, timeout=60):
    """citus-init ARGS as PID 1 of new PID and mount namespaces, /run bound to the tree's
    runroot. extra_env: NAME=VALUE entries appended to the environment list (duplicates)."""
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
           "sh", "-c", 'mount --bind "$0" /run && exec "$@"', str(tree.p("runroot"))]
    if user == "postgres":
        cmd += ["setpriv", f"--reuid={POSTGRES.pw_uid}", f"--regid={POSTGRES.pw_gid}",
                "--clear-groups"]
    if extra_env:
        cmd += ["/usr/bin/python3", str(HERE / "envlist.py"), *extra_env, "--"]
    cmd += [binary, *args]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                          preexec_fn=no_core_dumps)
