"""Every variable and file of the pod contract (docs/citus-init.md), broken one at a time.

Each case runs for the start path (`citus-init run -- true`) and for `check` (a few only
for the command that reads them) and must: exit 78 (70 where the contract says so), name the
variable or file, print none of the fixture's passwords, and change nothing in the pod tree
(owner, mode, mtime and content of every entry, before and after). test_every_* fails when a
variable or file of the contract has no case.
"""
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import (BIN, OTHER_UID, POSTGRES, ROOT, SANITIZED, SECRETS, ENV_PASSWORD,
                      run_pid1)

DOC = ROOT / "docs" / "citus-init.md"


@dataclass
class Case:
    id: str
    covers: tuple                  # the contract's variables and files this case breaks
    env: dict = field(default_factory=dict)  # values to set; None unsets
    setup: Optional[Callable] = None         # setup(tree) breaks files
    says: tuple = ()               # fragments of the messages ({tree}, {socket} filled in)
    expect: int = 78
    user: str = "root"
    commands: tuple = ("start", "check")
    extra_env: tuple = ()          # NAME=VALUE entries appended to the environment list
    errors: Optional[int] = 1      # error lines besides "configuration invalid" (None: any)
    not_says: tuple = ()


# ---- small setups ------------------------------------------------------------------------

def rm(rel):
    def do(t):
        path = t.p(rel)
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return do


def write(rel, content, mode=0o644):
    def do(t):
        path = t.p(rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.chmod(path, mode)
    return do


def mkdir(rel, mode=0o755, owner=None):
    def do(t):
        path = t.p(rel)
        if path.exists() or path.is_symlink():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        path.mkdir(parents=True)
        os.chmod(path, mode)
        if owner is not None:
            os.chown(path, owner, owner)
    return do


def symlink(rel, target):
    def do(t):
        path = t.p(rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.symlink(target, path)
    return do


def chown(rel, uid, mode=None):
    def do(t):
        os.chown(t.p(rel), uid, uid)
        if mode is not None:
            os.chmod(t.p(rel), mode)
    return do


def chmod(rel, mode):
    return lambda t: os.chmod(t.p(rel), mode)


def both(*steps):
    def do(t):
        for s in steps:
            s(t)
    return do


def cert_with_key(t):
    crt = t.p("certs", "server.crt")
    crt.write_text(crt.read_text() + t.p("certs", "server.key").read_text())


def many_extensions(t):
    t.p("extensions.txt").write_text("".join(f"e{i:05x}\n" for i in range(10001)))



def backup_files(t):
    """The repository secrets (BACKUP_SECRET_DIR), a source's (RESTORE_SECRET_DIR), a CA."""
    for d, key in (("backup", "K3y-S3cret"), ("source", "Src-K3y-S3cret")):
        t.p(d).mkdir(exist_ok=True)
        for name, value in (("s3-key", "AKIA" + key + "\n"), ("s3-key-secret", key + "/x=1"),
                            ("cipher-pass", key + "-cipher-passphrase\n")):
            t.p(d, name).write_text(value)
            os.chmod(t.p(d, name), 0o644)
    shutil.copy(t.p("certs", "ca.crt"), t.p("backup-ca.crt"))


def with_backup(*steps):
    return both(backup_files, *steps)


def ca_with_key(t):
    ca = t.p("backup-ca.crt")
    ca.write_text(ca.read_text() + t.p("certs", "server.key").read_text())


P = "{tree}"
SECRET = f"{P}/secrets"
BAD_BOOL = "is not a boolean; expected true/false, 1/0, yes/no or on/off"
BACKUP_SECRETS = ("AKIAK3y-S3cret", "K3y-S3cret/x=1", "K3y-S3cret-cipher-passphrase",
                  "AKIASrc-K3y-S3cret", "Src-K3y-S3cret/x=1", "Src-K3y-S3cret-cipher-passphrase")
# A posix repository in the tree, encrypted (cipher-pass needed), secrets in {tree}/backup.
POSIX = {"BACKUP_REPO": "posix", "BACKUP_REPO_PATH": f"{P}/repo", "BACKUP_SECRET_DIR": f"{P}/backup"}
S3 = dict(POSIX, BACKUP_REPO="s3", BACKUP_S3_ENDPOINT="minio.example.com:9000",
          BACKUP_S3_BUCKET="citus-backups", BACKUP_S3_CA_FILE=f"{P}/backup-ca.crt")
RESTORE = dict(S3, RESTORE_FROM_CLUSTER="old", RESTORE_TARGET="latest",
               RESTORE_REPO_PATH="/old-repo", RESTORE_SECRET_DIR=f"{P}/source")
BACKUP_SECRET = f"{P}/backup"

CASES = [
    # identity and topology
    Case("POD_NAME unset", ("POD_NAME",), {"POD_NAME": None}, says=("POD_NAME: not set",)),
    Case("POD_NAME invalid", ("POD_NAME",), {"POD_NAME": "Bad_Name"},
         says=('POD_NAME: "Bad_Name" is not a valid member name',)),
    Case("POD_IP invalid", ("POD_IP",), {"POD_IP": "999.1.1.1"},
         says=('POD_IP: "999.1.1.1" is not an IP address',)),
    Case("POD_IP loopback", ("POD_IP",), {"POD_IP": "127.0.0.1"},
         says=('POD_IP: "127.0.0.1" cannot be a connect address',)),
    Case("POD_NAMESPACE", ("POD_NAMESPACE",), {"POD_NAMESPACE": "Bad.NS"},
         says=('POD_NAMESPACE: "Bad.NS" is not a valid namespace',)),
    Case("CLUSTER_NAME unset", ("CLUSTER_NAME",), {"CLUSTER_NAME": None},
         says=("CLUSTER_NAME: not set",)),
    Case("CLUSTER_NAME invalid, root cause only", ("CLUSTER_NAME",),
         {"CLUSTER_NAME": "Bad_Name", "DCS_TYPE": "kubernetes"},
         says=('CLUSTER_NAME: "Bad_Name" is not a valid cluster name',),
         not_says=("KUBERNETES_LABELS",)),
    Case("CITUS_ENABLED", ("CITUS_ENABLED",), {"CITUS_ENABLED": "maybe"},
         says=(f'CITUS_ENABLED: "maybe" {BAD_BOOL}',)),
    Case("CITUS_GROUP unset", ("CITUS_GROUP",), {"CITUS_GROUP": None},
         says=("CITUS_GROUP: not set",)),
    Case("CITUS_GROUP negative", ("CITUS_GROUP",), {"CITUS_GROUP": "-1"},
         says=('CITUS_GROUP: "-1" is out of range; expected an integer >= 0',)),
    Case("CITUS_GROUP with +", ("CITUS_GROUP",), {"CITUS_GROUP": "+1"},
         says=('CITUS_GROUP: "+1" is not a plain decimal number',)),
    Case("CITUS_GROUP leading zeros", ("CITUS_GROUP",), {"CITUS_GROUP": "007"},
         says=('CITUS_GROUP: "007" is not a plain decimal number',)),
    Case("CITUS_DATABASE", ("CITUS_DATABASE",), {"CITUS_DATABASE": "Bad-DB"},
         says=('CITUS_DATABASE: "Bad-DB" is not a valid identifier',)),
    Case("POD_DNS_DOMAIN", ("POD_DNS_DOMAIN",), {"POD_DNS_DOMAIN": "bad_domain"},
         says=('POD_DNS_DOMAIN: "bad_domain" is not a DNS domain',)),
    # DCS
    Case("DCS_TYPE unknown", ("DCS_TYPE",), {"DCS_TYPE": "zookeeper"},
         says=('DCS_TYPE: "zookeeper" is not a known DCS',)),
    Case("DCS_TYPE undecidable", ("DCS_TYPE",), {"ETCD_HOSTS": None},
         says=("DCS_TYPE: not set, and neither KUBERNETES_SERVICE_HOST nor ETCD_HOSTS is set",)),
    Case("ETCD_HOSTS without port", ("ETCD_HOSTS",), {"ETCD_HOSTS": "127.0.88.2"},
         says=('ETCD_HOSTS: "127.0.88.2" is not host:port',)),
    Case("ETCD_HOSTS port with leading zero", ("ETCD_HOSTS",), {"ETCD_HOSTS": "h:02379"},
         says=('ETCD_HOSTS: "h:02379" is not host:port',)),
    Case("ETCD_HOSTS unset for etcd3", ("ETCD_HOSTS",), {"ETCD_HOSTS": None, "DCS_TYPE": "etcd3"},
         says=("ETCD_HOSTS: not set",)),
    Case("KUBERNETES_LABELS twice", ("KUBERNETES_LABELS",),
         {"DCS_TYPE": "kubernetes", "KUBERNETES_LABELS": "a=b,a=c"},
         says=("KUBERNETES_LABELS: label a is given twice",)),
    Case("KUBERNETES_LABELS invalid", ("KUBERNETES_LABELS",),
         {"DCS_TYPE": "kubernetes", "KUBERNETES_LABELS": "=x"},
         says=('KUBERNETES_LABELS: "=x" is not a valid label',)),
    Case("DCS_TTL", ("DCS_TTL",), {"DCS_TTL": "10"}, says=('DCS_TTL: "10" is out of range',)),
    Case("DCS_LOOP_WAIT", ("DCS_LOOP_WAIT",), {"DCS_LOOP_WAIT": "0"},
         says=('DCS_LOOP_WAIT: "0" is out of range',)),
    Case("DCS_RETRY_TIMEOUT", ("DCS_RETRY_TIMEOUT",), {"DCS_RETRY_TIMEOUT": "2"},
         says=('DCS_RETRY_TIMEOUT: "2" is out of range',)),
    Case("DCS timing rule", ("DCS_TTL", "DCS_LOOP_WAIT", "DCS_RETRY_TIMEOUT"),
         {"DCS_LOOP_WAIT": "10", "DCS_RETRY_TIMEOUT": "6"},
         says=("DCS_LOOP_WAIT + 2*DCS_RETRY_TIMEOUT: 10 + 2*6 = 22 is more than DCS_TTL 20",)),
    Case("DCS_TTL invalid, root cause only", ("DCS_TTL",),
         {"DCS_TTL": "abc", "DCS_LOOP_WAIT": "30"}, says=('DCS_TTL: "abc" is not a number',)),
    Case("SYNCHRONOUS_MODE", ("SYNCHRONOUS_MODE",), {"SYNCHRONOUS_MODE": "sometimes"},
         says=('SYNCHRONOUS_MODE: "sometimes"',)),
    Case("FAILSAFE_MODE", ("FAILSAFE_MODE",), {"FAILSAFE_MODE": "maybe"},
         says=(f'FAILSAFE_MODE: "maybe" {BAD_BOOL}',)),
    # PostgreSQL
    Case("PGDATA relative", ("PGDATA",), {"PGDATA": "pgroot/data"},
         says=('PGDATA: "pgroot/data" is not an absolute path',)),
    Case("PGDATA control character", ("PGDATA",), {"PGDATA": "/tmp/a\nb"},
         says=('PGDATA: "/tmp/a\\x0ab" holds a control character',)),
    Case("PGDATA a file", ("PGDATA",), setup=write("pgroot/data", "x"),
         says=(f"PGDATA={P}/pgroot/data: exists but is not a directory",)),
    Case("PGDATA symlink loop", ("PGDATA",), setup=symlink("pgroot/data", "data"),
         says=(f"PGDATA={P}/pgroot/data: cannot inspect the data directory: Too many levels",)),
    Case("PGDATA parent a file", ("PGDATA",), {"PGDATA": f"{P}/extensions.txt/data"},
         says=(f"PGDATA={P}/extensions.txt/data: the data directory cannot be created: "
               f"{P}/extensions.txt is not a directory",)),
    Case("PGDATA dangling symlink", ("PGDATA",), setup=symlink("pgroot/data", "nowhere"),
         says=(f"{P}/pgroot/data is a symbolic link to nothing",)),
    Case("PGDATA of another uid (non-root)", ("PGDATA",), user="postgres",
         setup=chown("pgroot/data", 0, 0o700),
         says=(f"PGDATA={P}/pgroot/data: the data directory is owned by uid 0",)),
    Case("PGDATA mode 0755 (non-root)", ("PGDATA",), user="postgres",
         setup=chmod("pgroot/data", 0o755),
         says=(f"PGDATA={P}/pgroot/data: the data directory has mode 0755",)),
    Case("PGDATA parent not writable (non-root)", ("PGDATA",), user="postgres",
         setup=both(rm("pgroot/data"), chown("pgroot", 0, 0o755)),
         says=(f"PGDATA={P}/pgroot/data: the data directory cannot be created in {P}/pgroot",)),
    Case("PG_BIN_DIR relative", ("PG_BIN_DIR",), {"PG_BIN_DIR": "bin"},
         says=('PG_BIN_DIR: "bin" is not an absolute path',)),
    Case("PG_BIN_DIR without postgres", ("PG_BIN_DIR",), setup=rm("bin/postgres"),
         says=(f'PG_BIN_DIR: "{P}/bin" has no executable postgres',)),
    Case("PG_BIN_DIR/postgres a directory", ("PG_BIN_DIR",), setup=mkdir("bin/postgres"),
         says=(f'PG_BIN_DIR: "{P}/bin" has no executable postgres',)),
    Case("PG_BIN_DIR/postgres not executable", ("PG_BIN_DIR",),
         setup=chmod("bin/postgres", 0o644), says=(f'PG_BIN_DIR: "{P}/bin" has no executable',)),
    Case("PG_PORT out of range", ("PG_PORT",), {"PG_PORT": "70000"},
         says=('PG_PORT: "70000" is out of range',)),
    Case("PG_PORT with +", ("PG_PORT",), {"PG_PORT": "+5432"},
         says=('PG_PORT: "+5432" is not a plain decimal number',)),
    Case("LISTEN_ADDRESS", ("LISTEN_ADDRESS",), {"LISTEN_ADDRESS": "localhost"},
         says=('LISTEN_ADDRESS: "localhost" is not an IP address',)),
    Case("PATRONI_API_PORT", ("PATRONI_API_PORT",), {"PATRONI_API_PORT": "0"},
         says=('PATRONI_API_PORT: "0" is out of range',)),
    Case("PATRONI_API_PORT = PG_PORT", ("PATRONI_API_PORT", "PG_PORT"),
         {"PATRONI_API_PORT": "5432"}, says=("PATRONI_API_PORT: 5432 is also PG_PORT",)),
    Case("RUN_AS_USER unknown", ("RUN_AS_USER",), {"RUN_AS_USER": "no-such-user-x"},
         says=("RUN_AS_USER=no-such-user-x: no such user",)),
    Case("RUN_AS_USER root", ("RUN_AS_USER",), {"RUN_AS_USER": "root"},
         says=("RUN_AS_USER=root: is root (uid 0)",)),
    Case("RUN_AS_USER invalid", ("RUN_AS_USER",), {"RUN_AS_USER": "bad user"},
         says=('RUN_AS_USER: "bad user" is not a valid user name',)),
    Case("RUN_DIR relative", ("RUN_DIR",), {"RUN_DIR": "run"},
         says=('RUN_DIR: "run" is not an absolute path',)),
    Case("RUN_DIR a file", ("RUN_DIR",), setup=write("run", "x"),
         says=(f"RUN_DIR={P}/run: exists but is not a directory",)),
    Case("RUN_DIR of another uid (non-root)", ("RUN_DIR",), user="postgres",
         setup=chown("run", 0, 0o700),
         says=(f"RUN_DIR={P}/run: the run directory is owned by uid 0",)),
    Case("RUN_DIR/tls a file", ("RUN_DIR/tls",), setup=write("run/tls", "x"),
         says=(f"{P}/run/tls: exists but is not a directory",)),
    Case("RUN_DIR/tls of another uid (non-root)", ("RUN_DIR/tls",), user="postgres",
         setup=mkdir("run/tls", 0o700, owner=0),
         says=(f"{P}/run/tls: the TLS directory (RUN_DIR/tls) is owned by uid 0",)),
    Case("RUN_DIR/patroni.yml a directory", ("RUN_DIR/patroni.yml",),
         setup=mkdir("run/patroni.yml"), says=(f"{P}/run/patroni.yml: is a directory",)),
    Case("RUN_DIR/tls/server.key a directory", ("RUN_DIR/tls/server.key",),
         setup=mkdir("run/tls/server.key"), says=(f"{P}/run/tls/server.key: is a directory",)),
    Case("RUN_DIR/tls/server.crt a directory", ("RUN_DIR/tls/server.crt",),
         setup=mkdir("run/tls/server.crt"), says=(f"{P}/run/tls/server.crt: is a directory",)),
    Case("RUN_DIR/tls/ca.crt a directory", ("RUN_DIR/tls/ca.crt",),
         setup=mkdir("run/tls/ca.crt"), says=(f"{P}/run/tls/ca.crt: is a directory",)),
    Case("socket directory a file", ("/var/run/postgresql",),
         setup=write("runroot/postgresql", "x"),
         says=("{socket}: exists but is not a directory; expected the socket directory",)),
    Case("socket directory not writable (non-root)", ("/var/run/postgresql",), user="postgres",
         setup=chown("runroot/postgresql", 0, 0o755),
         says=("{socket}: the socket directory is not writable by uid",)),
    Case("socket directory not creatable (non-root)", ("/var/run/postgresql",), user="postgres",
         setup=rm("runroot/postgresql"),
         says=("{socket}: the socket directory cannot be created in /var/run",)),
    Case("PATRONI_COMMAND not UTF-8", ("PATRONI_COMMAND",), {"PATRONI_COMMAND": b"patroni\xff"},
         says=("PATRONI_COMMAND: value is not valid UTF-8",)),
    # secrets
    Case("SECRETS_DIR relative", ("SECRETS_DIR",), {"SECRETS_DIR": "secrets"},
         says=('SECRETS_DIR: "secrets" is not an absolute path',)),
    Case("SUPERUSER_USERNAME", ("SUPERUSER_USERNAME",), {"SUPERUSER_USERNAME": "Bad"},
         says=('SUPERUSER_USERNAME: "Bad" is not a valid identifier',)),
    Case("SUPERUSER_PASSWORD_KEY", ("SUPERUSER_PASSWORD_KEY",), {"SUPERUSER_PASSWORD_KEY": "../x"},
         says=('SUPERUSER_PASSWORD_KEY: "../x" is not a file name',)),
    Case("SUPERUSER_PASSWORD missing", ("SUPERUSER_PASSWORD", "SECRETS_DIR/<key>"),
         setup=rm("secrets/superuser-password"),
         says=(f"SUPERUSER_PASSWORD: not set and {SECRET}/superuser-password does not exist",)),
    Case("SUPERUSER_PASSWORD not UTF-8", ("SUPERUSER_PASSWORD",),
         {"SUPERUSER_PASSWORD": ENV_PASSWORD.encode() + b"\xff"},
         setup=rm("secrets/superuser-password"),
         says=("SUPERUSER_PASSWORD: value is not valid UTF-8",)),
    Case("secret file a dangling symlink, variable set", ("SECRETS_DIR/<key>", "SUPERUSER_PASSWORD"),
         {"SUPERUSER_PASSWORD": ENV_PASSWORD},
         setup=symlink("secrets/superuser-password", "..data/superuser-password"),
         says=(f"{SECRET}/superuser-password: is a symbolic link to nothing",)),
    Case("REPLICATION_USERNAME = superuser", ("REPLICATION_USERNAME",),
         {"REPLICATION_USERNAME": "postgres"},
         says=('REPLICATION_USERNAME: "postgres" is also SUPERUSER_USERNAME',)),
    Case("REPLICATION_USERNAME invalid", ("REPLICATION_USERNAME",), {"REPLICATION_USERNAME": "r-1"},
         says=('REPLICATION_USERNAME: "r-1" is not a valid identifier',)),
    Case("REPLICATION_PASSWORD_KEY", ("REPLICATION_PASSWORD_KEY",),
         {"REPLICATION_PASSWORD_KEY": "a/b"}, says=('REPLICATION_PASSWORD_KEY: "a/b" is not a file',)),
    Case("secret file a directory, variable set", ("SECRETS_DIR/<key>", "REPLICATION_PASSWORD"),
         {"REPLICATION_PASSWORD": ENV_PASSWORD}, setup=mkdir("secrets/replication-password"),
         says=(f"{SECRET}/replication-password: is not a regular file",)),
    Case("REPLICATION_PASSWORD missing", ("REPLICATION_PASSWORD",),
         setup=rm("secrets/replication-password"),
         says=("REPLICATION_PASSWORD: not set and",)),
    Case("APP_USERNAME invalid", ("APP_USERNAME",), {"APP_USERNAME": "App"},
         says=('APP_USERNAME: "App" is not a valid identifier',)),
    Case("APP_USERNAME = superuser", ("APP_USERNAME",), {"APP_USERNAME": "postgres", "APP_PASSWORD": ENV_PASSWORD},
         says=('APP_USERNAME: "postgres" is also SUPERUSER_USERNAME',)),
    Case("APP_PASSWORD_KEY", ("APP_PASSWORD_KEY",), {"APP_USERNAME": "app", "APP_PASSWORD_KEY": "a/b"},
         says=('APP_PASSWORD_KEY: "a/b" is not a file name',)),
    Case("APP_PASSWORD missing", ("APP_PASSWORD",), {"APP_USERNAME": "app"},
         says=(f"APP_PASSWORD: not set and {SECRET}/app-password does not exist",)),
    Case("app password file a dangling symlink, variable set", ("APP_PASSWORD", "SECRETS_DIR/<key>"),
         {"APP_USERNAME": "app", "APP_PASSWORD": ENV_PASSWORD},
         setup=symlink("secrets/app-password", "..data/app-password"),
         says=(f"{SECRET}/app-password: is a symbolic link to nothing",)),
    Case("AGENT_METRICS_PORT", ("AGENT_METRICS_PORT",), {"AGENT_METRICS_PORT": "65536"},
         says=('AGENT_METRICS_PORT: "65536" is out of range; expected 0 (off) or an integer '
               'from 1 to 65535',)),
    Case("AGENT_METRICS_PORT = PATRONI_API_PORT", ("AGENT_METRICS_PORT", "PATRONI_API_PORT"),
         {"AGENT_METRICS_PORT": "8008"},
         says=("AGENT_METRICS_PORT: 8008 is also PATRONI_API_PORT",)),
    Case("AGENT_METRICS_PORT = PG_PORT", ("AGENT_METRICS_PORT", "PG_PORT"),
         {"AGENT_METRICS_PORT": "5432"}, says=("AGENT_METRICS_PORT: 5432 is also PG_PORT",)),
    Case("MONITORING_ROLE", ("MONITORING_ROLE",), {"MONITORING_ROLE": "monitor'; --"},
         says=('MONITORING_ROLE: "monitor\'; --" is not supported; expected citus_monitor',)),
    Case("MONITORING_ROLE = superuser", ("MONITORING_ROLE",),
         {"MONITORING_ROLE": "citus_monitor", "SUPERUSER_USERNAME": "citus_monitor"},
         says=('MONITORING_ROLE: "citus_monitor" is also SUPERUSER_USERNAME',)),
    Case("MONITORING_OS_USER invalid", ("MONITORING_OS_USER",),
         {"MONITORING_ROLE": "citus_monitor", "MONITORING_OS_USER": "nobody postgres"},
         says=('MONITORING_OS_USER: "nobody postgres" is not a valid user name',)),
    Case("MONITORING_OS_USER = RUN_AS_USER", ("MONITORING_OS_USER",),
         {"MONITORING_ROLE": "citus_monitor", "MONITORING_OS_USER": "postgres"},
         says=('MONITORING_OS_USER: "postgres" is also RUN_AS_USER',)),
    Case("MONITORING_OS_USER = root", ("MONITORING_OS_USER",),
         {"MONITORING_ROLE": "citus_monitor", "MONITORING_OS_USER": "root"},
         says=('MONITORING_OS_USER: "root" is also root',)),
    Case("RESTAPI_AUTH", ("RESTAPI_AUTH",), {"RESTAPI_AUTH": "maybe"},
         says=(f'RESTAPI_AUTH: "maybe" {BAD_BOOL}',)),
    Case("RESTAPI_USERNAME", ("RESTAPI_USERNAME",), {"RESTAPI_USERNAME": "a:b"},
         says=('RESTAPI_USERNAME: "a:b" is not a valid user name',)),
    Case("RESTAPI_PASSWORD_KEY", ("RESTAPI_PASSWORD_KEY",), {"RESTAPI_PASSWORD_KEY": ".."},
         says=('RESTAPI_PASSWORD_KEY: ".." is not a file name',)),
    Case("RESTAPI_PASSWORD missing", ("RESTAPI_PASSWORD",), setup=rm("secrets/restapi-password"),
         says=(f"RESTAPI_PASSWORD: not set and {SECRET}/restapi-password does not exist",)),
    Case("secret file empty", ("SECRETS_DIR/<key>",), setup=write("secrets/restapi-password", "\r\n"),
         says=(f"{SECRET}/restapi-password: file is empty",)),
    Case("secret file too large", ("SECRETS_DIR/<key>",),
         setup=write("secrets/superuser-password", "p" * 4097),
         says=(f"{SECRET}/superuser-password: file is larger than 4096 bytes",)),
    Case("secret file with NUL", ("SECRETS_DIR/<key>",),
         setup=write("secrets/superuser-password", b"ab\0" + SECRETS[0].encode()),
         says=(f"{SECRET}/superuser-password: file contains a NUL byte",)),
    Case("secret file not UTF-8", ("SECRETS_DIR/<key>",),
         setup=write("secrets/superuser-password", SECRETS[0].encode() + b"\xc3"),
         says=(f"{SECRET}/superuser-password: file is not valid UTF-8",)),
    Case("secret file unreadable (non-root)", ("SECRETS_DIR/<key>",), user="postgres",
         setup=chmod("secrets/superuser-password", 0o600),
         says=(f"{SECRET}/superuser-password: cannot be read (Permission denied)",)),
    # TLS
    Case("SSL_ENABLED", ("SSL_ENABLED",), {"SSL_ENABLED": "maybe", "SSL_CLIENT_CERT": "true"},
         says=(f'SSL_ENABLED: "maybe" {BAD_BOOL}',)),
    Case("SSL_MODE", ("SSL_MODE",), {"SSL_MODE": "verify"},
         says=('SSL_MODE: "verify" is not a known mode',)),
    Case("SSL_CERT_DIR relative", ("SSL_CERT_DIR",), {"SSL_CERT_DIR": "certs"},
         says=('SSL_CERT_DIR: "certs" is not an absolute path',)),
    Case("ca.crt missing", ("SSL_CERT_DIR/ca.crt",), setup=rm("certs/ca.crt"),
         says=(f"{P}/certs/ca.crt: does not exist; expected the CA certificate",)),
    Case("ca.crt a directory", ("SSL_CERT_DIR/ca.crt",), setup=mkdir("certs/ca.crt"),
         says=(f"{P}/certs/ca.crt: is not a regular file",)),
    Case("server.crt not PEM", ("SSL_CERT_DIR/server.crt",), setup=write("certs/server.crt", "x\n"),
         says=(f"{P}/certs/server.crt: cannot be parsed as PEM",)),
    Case("server.crt holding the key", ("SSL_CERT_DIR/server.crt",), setup=cert_with_key,
         says=(f"{P}/certs/server.crt: holds a private key",)),
    Case("server.key not PEM", ("SSL_CERT_DIR/server.key",), setup=write("certs/server.key", "x\n"),
         says=(f"{P}/certs/server.key: cannot be parsed as a PEM private key",)),
    Case("server.key of another certificate", ("SSL_CERT_DIR/server.key",),
         setup=lambda t: shutil.copy(t.p("certs", "other.key"), t.p("certs", "server.key")),
         says=(f"{P}/certs/server.key: does not match the certificate",)),
    Case("server.key unreadable (non-root)", ("SSL_CERT_DIR/server.key",), user="postgres",
         setup=chmod("certs/server.key", 0o600),
         says=(f"{P}/certs/server.key: cannot be read (Permission denied)",)),
    Case("verify-full without the name", ("SSL_MODE", "POD_DNS_DOMAIN"),
         {"SSL_MODE": "verify-full", "POD_DNS_DOMAIN": "bi-0-hl.default.svc"},
         says=(f"{P}/certs/server.crt: subjectAltName lacks DNS:bi-0-0.bi-0-hl.default.svc",)),
    Case("SSL_CLIENT_CERT without SSL", ("SSL_CLIENT_CERT",),
         {"SSL_ENABLED": "false", "SSL_CLIENT_CERT": "true"},
         says=("SSL_CLIENT_CERT: true while SSL_ENABLED is false",)),
    Case("RESTAPI_TLS without SSL", ("RESTAPI_TLS",), {"SSL_ENABLED": "false", "RESTAPI_TLS": "on"},
         says=("RESTAPI_TLS: true while SSL_ENABLED is false",)),
    Case("RESTAPI_TLS invalid", ("RESTAPI_TLS",), {"RESTAPI_TLS": "sometimes"},
         says=(f'RESTAPI_TLS: "sometimes" {BAD_BOOL}',)),
    # extensions
    Case("EXTENSIONS invalid name", ("EXTENSIONS",), {"EXTENSIONS": "Bad-Name"},
         says=('EXTENSIONS: "Bad-Name" is not a valid extension entry',)),
    Case("EXTENSIONS two schemas", ("EXTENSIONS",), {"EXTENSIONS": "a:x,a:y"},
         says=('EXTENSIONS: "a:y" names extension a again with another schema',)),
    Case("EXTENSIONS_FILE relative", ("EXTENSIONS_FILE",), {"EXTENSIONS_FILE": "ext.txt"},
         says=('EXTENSIONS_FILE: "ext.txt" is not an absolute path',)),
    Case("EXTENSIONS_FILE missing", ("EXTENSIONS_FILE",), setup=rm("extensions.txt"),
         says=(f"EXTENSIONS_FILE: {P}/extensions.txt cannot be read (No such file",)),
    Case("EXTENSIONS_FILE a directory", ("EXTENSIONS_FILE",), setup=mkdir("extensions.txt"),
         says=(f"EXTENSIONS_FILE: {P}/extensions.txt cannot be read (not a regular file)",)),
    Case("EXTENSIONS_FILE too large", ("EXTENSIONS_FILE",),
         setup=write("extensions.txt", " " * (1024 * 1024 + 1)),
         says=(f"EXTENSIONS_FILE: {P}/extensions.txt is larger than 1048576 bytes",)),
    Case("EXTENSIONS_FILE with NUL", ("EXTENSIONS_FILE",), setup=write("extensions.txt", b"a\0b"),
         says=(f"{P}/extensions.txt: file contains a NUL byte",)),
    Case("EXTENSIONS_FILE bad entry", ("EXTENSIONS_FILE",),
         setup=write("extensions.txt", "hstore\n'; DROP TABLE x\n"),
         says=(f'{P}/extensions.txt line 2: "\';" is not a valid extension entry',), errors=None),
    Case("EXTENSIONS_FILE over the limit", ("EXTENSIONS_FILE",), setup=many_extensions,
         says=(f"{P}/extensions.txt line 10000: more than 10000 extensions",)),
    Case("EXTENSIONS_MAX_ATTEMPTS", ("EXTENSIONS_MAX_ATTEMPTS",), {"EXTENSIONS_MAX_ATTEMPTS": "0"},
         says=('EXTENSIONS_MAX_ATTEMPTS: "0" is out of range',)),
    Case("EXTENSIONS_RETRY_DELAY", ("EXTENSIONS_RETRY_DELAY",), {"EXTENSIONS_RETRY_DELAY": "86401"},
         says=('EXTENSIONS_RETRY_DELAY: "86401" is out of range',)),
    Case("LEADER_POLL_INTERVAL_MS", ("LEADER_POLL_INTERVAL_MS",), {"LEADER_POLL_INTERVAL_MS": "5"},
         says=('LEADER_POLL_INTERVAL_MS: "5" is out of range',)),
    Case("COORDINATOR_HOST unset", ("COORDINATOR_HOST",), commands=("extensions",),
         says=("COORDINATOR_HOST: not set",)),
    Case("COORDINATOR_HOST invalid", ("COORDINATOR_HOST",), {"COORDINATOR_HOST": "bad host!"},
         commands=("extensions",), says=('COORDINATOR_HOST: "bad host!" is not a host name',)),
    # supervision and logs
    Case("SHUTDOWN_DEADLINE", ("SHUTDOWN_DEADLINE",), {"SHUTDOWN_DEADLINE": "0"},
         says=('SHUTDOWN_DEADLINE: "0" is out of range',)),
    Case("SHUTDOWN_DEADLINE not below the grace period",
         ("SHUTDOWN_DEADLINE", "TERMINATION_GRACE_PERIOD"), {"SHUTDOWN_DEADLINE": "30"},
         says=("SHUTDOWN_DEADLINE: 30 is not below TERMINATION_GRACE_PERIOD 30",)),
    Case("TERMINATION_GRACE_PERIOD", ("TERMINATION_GRACE_PERIOD",),
         {"TERMINATION_GRACE_PERIOD": "1"}, says=('TERMINATION_GRACE_PERIOD: "1" is out of range',)),
    Case("LOG_FORMAT", ("LOG_FORMAT",), {"LOG_FORMAT": "xml"},
         says=('LOG_FORMAT: "xml" is not a known format',)),
    Case("LOG_LEVEL", ("LOG_LEVEL",), {"LOG_LEVEL": "loud"},
         says=('LOG_LEVEL: "loud" is not a known level',)),
    # backups (docs/backups.md)
    Case("BACKUP_REPO unknown", ("BACKUP_REPO",), {"BACKUP_REPO": "gcs"},
         says=('BACKUP_REPO: "gcs" is not a known value; expected none, s3 or posix',)),
    Case("RESTORE_FROM_CLUSTER without a repository", ("BACKUP_REPO", "RESTORE_FROM_CLUSTER"),
         {"RESTORE_FROM_CLUSTER": "old"},
         says=("RESTORE_FROM_CLUSTER: set while BACKUP_REPO is none",)),
    Case("BACKUP_REPO_PATH relative", ("BACKUP_REPO_PATH",), dict(POSIX, BACKUP_REPO_PATH="repo"),
         setup=backup_files, says=('BACKUP_REPO_PATH: "repo" is not an absolute path',)),
    Case("BACKUP_REPO_PATH with //", ("BACKUP_REPO_PATH",), dict(POSIX, BACKUP_REPO_PATH="/a//b"),
         setup=backup_files, says=('BACKUP_REPO_PATH: "/a//b" holds //',)),
    Case("PGDATA ending in / with backups", ("PGDATA",), dict(POSIX, PGDATA=f"{P}/pgroot/data/"),
         setup=backup_files, says=(f'PGDATA: "{P}/pgroot/data/" ends with /',)),
    Case("RUN_DIR with a quote with backups", ("RUN_DIR",), dict(POSIX, RUN_DIR=f"{P}/it's"),
         setup=backup_files, says=(f'RUN_DIR: "{P}/it\'s" holds \', which the restore_command',)),
    Case("BACKUP_S3_ENDPOINT unset", ("BACKUP_S3_ENDPOINT",), dict(S3, BACKUP_S3_ENDPOINT=None),
         setup=backup_files, says=("BACKUP_S3_ENDPOINT: not set",)),
    Case("BACKUP_S3_ENDPOINT with a scheme", ("BACKUP_S3_ENDPOINT",),
         dict(S3, BACKUP_S3_ENDPOINT="https://minio"), setup=backup_files,
         says=('BACKUP_S3_ENDPOINT: "https://minio" has a scheme',)),
    Case("BACKUP_S3_ENDPOINT port", ("BACKUP_S3_ENDPOINT",),
         dict(S3, BACKUP_S3_ENDPOINT="minio:65536"), setup=backup_files,
         says=('BACKUP_S3_ENDPOINT: "minio:65536" is not host or host:port',)),
    Case("BACKUP_S3_BUCKET unset", ("BACKUP_S3_BUCKET",), dict(S3, BACKUP_S3_BUCKET=None),
         setup=backup_files, says=("BACKUP_S3_BUCKET: not set",)),
    Case("BACKUP_S3_BUCKET invalid", ("BACKUP_S3_BUCKET",), dict(S3, BACKUP_S3_BUCKET="My_Bucket"),
         setup=backup_files, says=('BACKUP_S3_BUCKET: "My_Bucket" is not a valid bucket name',)),
    Case("BACKUP_S3_REGION", ("BACKUP_S3_REGION",), dict(S3, BACKUP_S3_REGION="eu west"),
         setup=backup_files, says=('BACKUP_S3_REGION: "eu west" is not a region name',)),
    Case("BACKUP_S3_URI_STYLE", ("BACKUP_S3_URI_STYLE",), dict(S3, BACKUP_S3_URI_STYLE="vhost"),
         setup=backup_files, says=('BACKUP_S3_URI_STYLE: "vhost" is not a known value',)),
    Case("BACKUP_S3_CA_FILE relative", ("BACKUP_S3_CA_FILE",), dict(S3, BACKUP_S3_CA_FILE="ca.crt"),
         setup=backup_files, says=('BACKUP_S3_CA_FILE: "ca.crt" is not an absolute path',)),
    Case("BACKUP_S3_CA_FILE missing", ("BACKUP_S3_CA_FILE",), S3,
         setup=with_backup(rm("backup-ca.crt")),
         says=(f"BACKUP_S3_CA_FILE={P}/backup-ca.crt: does not exist",)),
    Case("BACKUP_S3_CA_FILE a directory", ("BACKUP_S3_CA_FILE",), S3,
         setup=with_backup(mkdir("backup-ca.crt")),
         says=(f"BACKUP_S3_CA_FILE={P}/backup-ca.crt: is not a regular file",)),
    Case("BACKUP_S3_CA_FILE not PEM", ("BACKUP_S3_CA_FILE",), S3,
         setup=with_backup(write("backup-ca.crt", "not a certificate\n")),
         says=(f"BACKUP_S3_CA_FILE={P}/backup-ca.crt: holds no PEM certificate",)),
    Case("BACKUP_S3_CA_FILE holding a key", ("BACKUP_S3_CA_FILE",), S3,
         setup=with_backup(ca_with_key),
         says=(f"BACKUP_S3_CA_FILE={P}/backup-ca.crt: holds a private key",)),
    Case("BACKUP_S3_CA_FILE unreadable (non-root)", ("BACKUP_S3_CA_FILE",), S3, user="postgres",
         setup=with_backup(chmod("backup-ca.crt", 0o600)),
         says=(f"BACKUP_S3_CA_FILE={P}/backup-ca.crt: cannot be read (Permission denied)",)),
    Case("BACKUP_S3_VERIFY_TLS", ("BACKUP_S3_VERIFY_TLS",), dict(S3, BACKUP_S3_VERIFY_TLS="maybe"),
         setup=backup_files, says=(f'BACKUP_S3_VERIFY_TLS: "maybe" {BAD_BOOL}',)),
    Case("BACKUP_SECRET_DIR relative", ("BACKUP_SECRET_DIR",), dict(POSIX, BACKUP_SECRET_DIR="backup"),
         setup=backup_files, says=('BACKUP_SECRET_DIR: "backup" is not an absolute path',)),
    Case("s3-key missing", ("BACKUP_SECRET_DIR/s3-key",), S3, setup=with_backup(rm("backup/s3-key")),
         says=(f"{BACKUP_SECRET}/s3-key: does not exist; expected the S3 access key id",)),
    Case("s3-key-secret a dangling symlink", ("BACKUP_SECRET_DIR/s3-key-secret",), S3,
         setup=with_backup(symlink("backup/s3-key-secret", "..data/s3-key-secret")),
         says=(f"{BACKUP_SECRET}/s3-key-secret: is a symbolic link to nothing",)),
    Case("s3-key-secret with a line break", ("BACKUP_SECRET_DIR/s3-key-secret",), S3,
         setup=with_backup(write("backup/s3-key-secret", "K3y-S3cret\nmore\n")),
         says=(f"{BACKUP_SECRET}/s3-key-secret: holds a line break",)),
    Case("cipher-pass too short", ("BACKUP_SECRET_DIR/cipher-pass",), POSIX,
         setup=with_backup(write("backup/cipher-pass", "K3y-S3cret\n")),
         says=(f"{BACKUP_SECRET}/cipher-pass: is shorter than 20 bytes",)),
    Case("cipher-pass empty", ("BACKUP_SECRET_DIR/cipher-pass",), POSIX,
         setup=with_backup(write("backup/cipher-pass", "\n")),
         says=(f"{BACKUP_SECRET}/cipher-pass: file is empty",)),
    Case("cipher-pass unreadable (non-root)", ("BACKUP_SECRET_DIR/cipher-pass",), POSIX,
         user="postgres", setup=with_backup(chmod("backup/cipher-pass", 0o600)),
         says=(f"{BACKUP_SECRET}/cipher-pass: cannot be read (Permission denied)",)),
    Case("BACKUP_ENCRYPTION", ("BACKUP_ENCRYPTION",), dict(POSIX, BACKUP_ENCRYPTION="aes"),
         setup=backup_files, says=(f'BACKUP_ENCRYPTION: "aes" {BAD_BOOL}',)),
    Case("BACKUP_FULL_SCHEDULE", ("BACKUP_FULL_SCHEDULE",), dict(POSIX, BACKUP_FULL_SCHEDULE="@weekly"),
         setup=backup_files, says=('BACKUP_FULL_SCHEDULE: "@weekly" is not a schedule',)),
    Case("BACKUP_DIFF_SCHEDULE", ("BACKUP_DIFF_SCHEDULE",), dict(POSIX, BACKUP_DIFF_SCHEDULE="0 1 * * 8"),
         setup=backup_files,
         says=('BACKUP_DIFF_SCHEDULE: "0 1 * * 8" is not a schedule: the day of week field',)),
    Case("BACKUP_RETENTION_FULL", ("BACKUP_RETENTION_FULL",), dict(POSIX, BACKUP_RETENTION_FULL="0"),
         setup=backup_files, says=('BACKUP_RETENTION_FULL: "0" is out of range',)),
    Case("BACKUP_PROCESS_MAX", ("BACKUP_PROCESS_MAX",), dict(POSIX, BACKUP_PROCESS_MAX="+2"),
         setup=backup_files, says=('BACKUP_PROCESS_MAX: "+2" is not a plain decimal number',)),
    Case("BACKUP_COMPRESS_TYPE", ("BACKUP_COMPRESS_TYPE",), dict(POSIX, BACKUP_COMPRESS_TYPE="xz"),
         setup=backup_files, says=('BACKUP_COMPRESS_TYPE: "xz" is not a known value',)),
    Case("BACKUP_ARCHIVE_TIMEOUT", ("BACKUP_ARCHIVE_TIMEOUT",), dict(POSIX, BACKUP_ARCHIVE_TIMEOUT="5"),
         setup=backup_files,
         says=('BACKUP_ARCHIVE_TIMEOUT: "5" is out of range; expected 0 (off) or an integer',)),
    Case("RESTORE_POINT_INTERVAL", ("RESTORE_POINT_INTERVAL",),
         dict(POSIX, RESTORE_POINT_INTERVAL="86401"), setup=backup_files,
         says=('RESTORE_POINT_INTERVAL: "86401" is out of range',)),
    Case("RESTORE_FROM_CLUSTER invalid", ("RESTORE_FROM_CLUSTER",),
         dict(RESTORE, RESTORE_FROM_CLUSTER="Old_Cluster"), setup=backup_files,
         says=('RESTORE_FROM_CLUSTER: "Old_Cluster" is not a valid cluster name',)),
    Case("RESTORE_TARGET missing", ("RESTORE_TARGET",), dict(RESTORE, RESTORE_TARGET=None),
         setup=backup_files, says=("RESTORE_TARGET: not set",)),
    Case("RESTORE_TARGET without RESTORE_FROM_CLUSTER", ("RESTORE_TARGET",),
         dict(POSIX, RESTORE_TARGET="latest"), setup=backup_files,
         says=("RESTORE_TARGET: set without RESTORE_FROM_CLUSTER",)),
    Case("RESTORE_TARGET time not UTC", ("RESTORE_TARGET",),
         dict(RESTORE, RESTORE_TARGET="2026-12-02T03:15:00+01:00"), setup=backup_files,
         says=('RESTORE_TARGET: "2026-12-02T03:15:00+01:00" is not a valid UTC time',)),
    Case("RESTORE_TARGET name", ("RESTORE_TARGET",), dict(RESTORE, RESTORE_TARGET="a b"),
         setup=backup_files, says=('RESTORE_TARGET: "a b" is not a restore target',)),
    Case("RESTORE_REPO_PATH", ("RESTORE_REPO_PATH",), dict(RESTORE, RESTORE_REPO_PATH="/old/"),
         setup=backup_files, says=('RESTORE_REPO_PATH: "/old/" ends with /',)),
    Case("RESTORE_SECRET_DIR relative", ("RESTORE_SECRET_DIR",),
         dict(RESTORE, RESTORE_SECRET_DIR="source"), setup=backup_files,
         says=('RESTORE_SECRET_DIR: "source" is not an absolute path',)),
    Case("source s3-key missing", ("RESTORE_SECRET_DIR/<file>",), RESTORE,
         setup=with_backup(rm("source/s3-key")),
         says=(f"{P}/source/s3-key: does not exist; expected the S3 access key id",)),
    Case("source cipher-pass with a trailing space", ("RESTORE_SECRET_DIR/<file>",), RESTORE,
         setup=with_backup(write("source/cipher-pass", "Src-K3y-S3cret-cipher-passphrase \n")),
         says=(f"{P}/source/cipher-pass: starts or ends with a space or tab",)),
    Case("RUN_DIR/pgbackrest a file", ("RUN_DIR/pgbackrest",), POSIX,
         setup=with_backup(write("run/pgbackrest", "x")),
         says=(f"{P}/run/pgbackrest: exists but is not a directory",)),
    Case("RUN_DIR/pgbackrest of another uid (non-root)", ("RUN_DIR/pgbackrest",), POSIX,
         user="postgres", setup=with_backup(mkdir("run/pgbackrest", 0o700, owner=0)),
         says=(f"{P}/run/pgbackrest: the pgBackRest directory (RUN_DIR/pgbackrest) is owned by uid 0",)),
    Case("RUN_DIR/pgbackrest/lock a file", ("RUN_DIR/pgbackrest/lock",), POSIX,
         setup=with_backup(mkdir("run/pgbackrest", 0o700, owner=OTHER_UID),
                           write("run/pgbackrest/lock", "x")),
         says=(f"{P}/run/pgbackrest/lock: exists but is not a directory",)),
    Case("RUN_DIR/pgbackrest/pgbackrest.conf a directory", ("RUN_DIR/pgbackrest/pgbackrest.conf",),
         POSIX, setup=with_backup(mkdir("run/pgbackrest/pgbackrest.conf")),
         says=(f"{P}/run/pgbackrest/pgbackrest.conf: is a directory",)),
    Case("RUN_DIR/pgbackrest/restore.conf a directory", ("RUN_DIR/pgbackrest/restore.conf",),
         RESTORE, setup=with_backup(mkdir("run/pgbackrest/restore.conf")),
         says=(f"{P}/run/pgbackrest/restore.conf: is a directory",)),
    Case("RUN_DIR/pgbackrest/ca.crt a directory", ("RUN_DIR/pgbackrest/ca.crt",), S3,
         setup=with_backup(mkdir("run/pgbackrest/ca.crt")),
         says=(f"{P}/run/pgbackrest/ca.crt: is a directory",)),
    Case("a repository secret variable twice", ("BACKUP_REPO",), POSIX, setup=backup_files,
         extra_env=("BACKUP_REPO=s3",), says=("BACKUP_REPO: present 2 times in the environment",)),
    # the environment as a list: a name twice
    Case("a variable twice", ("POD_NAME",), extra_env=("POD_NAME=other-0-0",),
         says=("POD_NAME: present 2 times in the environment",)),
    Case("a password variable twice", ("SUPERUSER_PASSWORD",), setup=rm("secrets/superuser-password"),
         extra_env=(f"SUPERUSER_PASSWORD={ENV_PASSWORD}", f"SUPERUSER_PASSWORD={ENV_PASSWORD}2"),
         says=("SUPERUSER_PASSWORD: present 2 times in the environment",)),
]


def ids(cases):
    return [c.id for c in cases]


MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def messages(stderr, level=None):
    """The msg of each logfmt line, unescaped (the escapes are JSON's)."""
    out = []
    for line in stderr.splitlines():
        m = MSG.search(line)
        if m and (level is None or f"level={level} " in line):
            out.append(json.loads(f'"{m.group(1)}"'))
    return out


def error_lines(stderr):
    return [m for m in messages(stderr, "error") if m != "configuration invalid"]


def args_of(command):
    return {"start": ["run", "--", "true"], "check": ["check"],
            "extensions": ["extensions", "--wait"]}[command]


def run_case(tree, case, command, binary=BIN):
    env = dict(tree.env)
    for k, v in case.env.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = tree.fmt(v) if isinstance(v, str) else v
    return run_pid1(tree, args_of(command), env, user=case.user, extra_env=case.extra_env,
                    binary=binary)


def assert_clean(case, command, p, stdout, stderr):
    assert p.returncode == case.expect, f"{command}: exit {p.returncode}\n{stderr}"
    for secret in SECRETS + BACKUP_SECRETS:
        assert secret not in stdout and secret not in stderr, f"{command}: a secret was printed"
    assert "Sanitizer" not in stderr and "runtime error:" not in stderr, stderr
    if command != "start":
        assert stdout == "", stdout


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_input(make_tree, case):
    tree = make_tree(case.user)
    if case.setup:
        case.setup(tree)
    before = tree.snapshot()
    for command in case.commands:
        p = run_case(tree, case, command)
        stdout = p.stdout.decode(errors="replace")
        stderr = p.stderr.decode(errors="replace")
        assert_clean(case, command, p, stdout, stderr)
        said = "\n".join(messages(stderr))
        for fragment in case.says:
            assert tree.fmt(fragment) in said, f"{command}: no {tree.fmt(fragment)!r} in\n{stderr}"
        for fragment in case.not_says:
            assert fragment not in "\n".join(error_lines(stderr)), f"{command}:\n{stderr}"
        if case.errors is not None:
            assert len(error_lines(stderr)) == case.errors, f"{command}: {stderr}"
        assert "child started" not in stderr
        assert tree.snapshot() == before, f"{command} changed the pod tree:\n{stderr}"


# ---- the baseline is valid: each case fails for its one change -----------------------------

@pytest.mark.parametrize("user", ["root", "postgres"])
def test_the_unbroken_tree_passes_and_a_start_would_change_it(make_tree, user):
    tree = make_tree(user)
    before = tree.snapshot()
    case = Case("baseline", (), user=user, expect=0)
    p = run_case(tree, case, "check")
    assert p.returncode == 0, p.stderr.decode()
    assert "password: '********'" in p.stdout.decode() or "********" in p.stdout.decode()
    assert tree.snapshot() == before
    p = run_case(tree, case, "start")
    assert p.returncode == 0, p.stderr.decode()
    assert not any(s in (p.stdout + p.stderr).decode() for s in SECRETS)
    assert tree.snapshot() != before  # the snapshot sees what a start changes


@pytest.mark.parametrize("user", ["root", "postgres"])
def test_the_unbroken_backup_tree_passes(make_tree, user):
    """The backup cases' baseline (s3, a CA, a restore from another repository) is valid:
    `check` changes nothing, a start writes pgBackRest's files; no secret is printed."""
    tree = make_tree(user)
    backup_files(tree)
    case = Case("backup baseline", (), RESTORE, user=user, expect=0)
    before = tree.snapshot()
    for command in ("check", "start"):
        p = run_case(tree, case, command)
        out = (p.stdout + p.stderr).decode()
        assert p.returncode == 0, out
        assert not any(s in out for s in SECRETS + BACKUP_SECRETS), out
        if command == "check":
            assert tree.snapshot() == before
    for name in ("pgbackrest.conf", "restore.conf", "ca.crt"):
        st = os.stat(tree.p("run", "pgbackrest", name))
        assert (st.st_mode & 0o7777, st.st_uid) == (0o600, POSTGRES.pw_uid), name
    assert "repo1-path=/old-repo\n" in tree.p("run", "pgbackrest", "restore.conf").read_text()


def test_a_missing_module_is_70_before_any_change(make_tree):
    """Documented: without citus-init-prepare.so the pod stops with 70 before changing
    anything (and `check` cannot run its checks)."""
    if os.path.exists("/usr/local/lib/citus-init/citus-init-prepare.so"):
        pytest.skip("an installed prepare module would be found")
    tree = make_tree()
    alone = Path(tempfile.mkdtemp(prefix="badinput-bin-", dir="/tmp"))
    try:
        os.chmod(alone, 0o755)
        shutil.copy(BIN, alone / "citus-init")
        before = tree.snapshot()
        case = Case("module", (), expect=70, errors=None)
        for command in ("start", "check"):
            p = run_case(tree, case, command, binary=str(alone / "citus-init"))
            stderr = p.stderr.decode(errors="replace")
            assert_clean(case, command, p, p.stdout.decode(), stderr)
            assert 'msg="cannot load a module of citus-init"' in stderr
            assert "citus-init-prepare.so: cannot open shared object file" in stderr
            assert tree.snapshot() == before
    finally:
        shutil.rmtree(alone, ignore_errors=True)


# ---- the table is complete ------------------------------------------------------------------

def contract_tables():
    """Variables (first column of the tables under ## Environment) and files (## Files)."""
    variables, files, section = [], [], None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        m = re.match(r"^\| *(`[^|]*`) *\|", line)
        if not m:
            continue
        names = re.findall(r"`([^`]+)`", m.group(1))
        if section == "Environment":
            variables += [n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]*", n)]
        elif section == "Files":
            base = os.path.dirname(names[0])
            files += [names[0]] + [f"{base}/{n}" if "/" not in n else n for n in names[1:]]
    return variables, files


# Files the contract names in its prose rather than the Files table.
PROSE_FILES = ["SSL_CERT_DIR/ca.crt", "SSL_CERT_DIR/server.crt", "SSL_CERT_DIR/server.key",
               "SECRETS_DIR/<key>", "BACKUP_SECRET_DIR/s3-key", "BACKUP_SECRET_DIR/s3-key-secret",
               "BACKUP_SECRET_DIR/cipher-pass", "RESTORE_SECRET_DIR/<file>"]


def covered():
    return {name for c in CASES for name in c.covers}


def test_every_documented_variable_has_a_case():
    variables, _ = contract_tables()
    assert len(variables) > 40  # the parser found the tables
    assert sorted(set(variables) - covered()) == []


def test_every_documented_file_has_a_case():
    _, files = contract_tables()
    assert "RUN_DIR/patroni.yml" in files and "PGDATA" in files
    assert sorted(set(files + PROSE_FILES) - covered()) == []


def test_every_variable_citus_init_reads_is_documented():
    """Names config.c reads (string literals passed to its readers) appear in the contract."""
    source = (ROOT / "src" / "core" / "config.c").read_text()
    read = set(re.findall(r'\b(?:raw|take_\w+|load_\w+)\([^;]*?"([A-Z][A-Z0-9_]+)"', source, re.S))
    read |= set(re.findall(r'"([A-Z][A-Z0-9_]+_PASSWORD)"', source))
    doc = DOC.read_text()
    missing = sorted(n for n in read if f"`{n}`" not in doc)
    assert len(read) > 40
    assert missing == []
