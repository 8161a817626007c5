"""The rendered Patroni YAML, validated by the schema of the Patroni version we ship.

Runs build/tests/unit/render_yaml for several pod environments and feeds each document to
patroni.validator.schema (as `patroni --validate-config` does). Usage:
    .venv/bin/python tests/unit/patroni_schema.py build/tests/unit/render_yaml
Exit 0 when every variant validates, 1 with the problems otherwise, 77 without Patroni.
"""
import os
import socket
import subprocess
import sys
import tempfile

try:
    import yaml
    from patroni.validator import populate_validate_params, schema
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"patroni schema check skipped: {e}")
    sys.exit(77)


def variants(secrets, etcd_port):
    base = {
        "POD_NAME": "citusdemo-0-1", "POD_IP": "127.0.10.2", "CLUSTER_NAME": "citusdemo",
        "CITUS_GROUP": "0", "SECRETS_DIR": secrets, "LISTEN_ADDRESS": "127.0.10.2",
        "PG_PORT": "55432", "PATRONI_API_PORT": "58008",
        "ETCD_HOSTS": f"127.0.0.1:{etcd_port}",
    }
    yield "etcd3", dict(base)
    yield "kubernetes", dict(base, DCS_TYPE="kubernetes", POD_NAMESPACE="db",
                             KUBERNETES_LABELS="cluster-name=citusdemo,app.kubernetes.io/name=citus")
    yield "tls+client-cert+partman", dict(base, SSL_ENABLED="true", SSL_MODE="verify-full",
                                          SSL_CLIENT_CERT="true", EXTENSIONS="postgis,pg_partman:partman",
                                          POD_DNS_DOMAIN="citusdemo-0-hl.default.svc.cluster.local")
    yield "no-citus", dict(base, CITUS_ENABLED="false", CITUS_GROUP="3", SYNCHRONOUS_MODE="on")
    yield "rest-api-auth-off", dict(base, RESTAPI_AUTH="false")
    backup_secrets = os.path.join(os.path.dirname(secrets), "backup")
    yield "backup-s3", dict(base, BACKUP_REPO="s3", BACKUP_S3_ENDPOINT="minio:9000",
                            BACKUP_S3_BUCKET="citus", BACKUP_SECRET_DIR=backup_secrets)
    yield "backup-posix-restore", dict(base, BACKUP_REPO="posix", BACKUP_ENCRYPTION="false",
                                       RESTORE_FROM_CLUSTER="olddemo",
                                       RESTORE_TARGET="2026-12-02T03:15:00Z")


def main():
    tool = sys.argv[1]
    populate_validate_params(ignore_listen_port=True)
    failures = []
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as etcd:
        # something listening where the etcd3 hosts point, so "reachable" holds
        etcd.bind(("127.0.0.1", 0))
        etcd.listen(64)
        secrets = os.path.join(tmp, "secrets")
        os.mkdir(secrets)
        for name, value in (("superuser-password", 'su: "pw" #1\n'), ("replication-password", "true"),
                            ("restapi-password", "api: 'pw' #2\n")):
            with open(os.path.join(secrets, name), "w", encoding="utf-8") as f:
                f.write(value)
        backup = os.path.join(tmp, "backup")
        os.mkdir(backup)
        for name, value in (("s3-key", "AKIAKEY"), ("s3-key-secret", "s3cret/key"),
                            ("cipher-pass", "a passphrase of 20+ bytes")):
            with open(os.path.join(backup, name), "w", encoding="utf-8") as f:
                f.write(value)
        for name, env in variants(secrets, etcd.getsockname()[1]):
            env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
            run = subprocess.run([tool], env=env, capture_output=True, text=True, check=False)
            if run.returncode != 0:
                failures.append(f"{name}: render_yaml exit {run.returncode}: {run.stderr.strip()}")
                continue
            config = yaml.safe_load(run.stdout)
            problems = schema(config)
            if problems:
                failures.append(f"{name}: " + "; ".join(problems))
            auth = config["postgresql"]["authentication"]
            if auth["superuser"]["password"] != 'su: "pw" #1' or auth["replication"]["password"] != "true":
                failures.append(f"{name}: passwords did not survive PyYAML")
            api_auth = config["restapi"].get("authentication")
            if name == "rest-api-auth-off":
                if api_auth is not None:
                    failures.append(f"{name}: restapi.authentication rendered with RESTAPI_AUTH=false")
            elif api_auth != {"username": "patroni", "password": "api: 'pw' #2"}:
                failures.append(f"{name}: restapi.authentication is {api_auth!r}")
            pg = config["postgresql"]
            if name.startswith("backup-"):
                if pg["parameters"].get("archive_mode") != "on" \
                        or pg.get("create_replica_methods") != ["pgbackrest", "basebackup"]:
                    failures.append(f"{name}: archiving or the replica methods are missing")
                if name.endswith("-restore") and config["bootstrap"].get("method") != "citus_init_restore":
                    failures.append(f"{name}: no restore bootstrap method")
            elif "archive_mode" in pg["parameters"] or "create_replica_methods" in pg:
                failures.append(f"{name}: archiving rendered without BACKUP_REPO")
            print(f"patroni schema: {name}: {'ok' if not problems else 'FAILED'}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
