"""Bad pod inputs: citus-init names the problem in the pod log (exactly), exits 78 before
Patroni starts, and leaves the data volume as it was. No etcd is needed: nothing gets that far.
"""
import os
import re
import shutil

import pytest

from conftest import new_cluster
from localcluster import tls
from localcluster.cluster import POD_CERTS, POD_DATA, POD_SECRETS

EX_CONFIG = 78
PGDATA = f"{POD_DATA}/pgroot/data"


@pytest.fixture(scope="module")
def cluster(request):
    c = new_cluster(request, "e2ebad", "127.0.24", {0: 5})
    c.prepare()
    return c


def log_messages(text: str) -> list:
    """msg values of citus-init's logfmt lines, unescaped."""
    msgs = []
    for line in text.splitlines():
        if line.startswith("ts=") and "component=citus-init" in line:
            m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
            if m:
                msgs.append(re.sub(r'\\(.)', r'\1', m.group(1)))
    return msgs


def snapshot(root) -> dict:
    """Everything about a tree that citus-init could change: modes, owners, sizes, times."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                   st.st_mtime_ns)
    return found


def existing_data(pod) -> None:
    """A data volume holding a data directory from an earlier life, root-owned and 0755:
    exactly what citus-init would chown/chmod if it went on."""
    data = pod.data_dir / "pgroot" / "data"
    data.mkdir(parents=True)
    os.chmod(pod.data_dir, 0o755)
    os.chmod(data, 0o755)
    (data / "PG_VERSION").write_text("15\n")
    (data / "postgresql.conf").write_text("# kept as it is\n")


def run_bad_pod(cluster, pod) -> tuple:
    """Start the pod; return (exit status, citus-init messages, whole log)."""
    before = snapshot(pod.data_dir)
    pod.start()
    rc = pod.wait(timeout=60)
    if rc is None:
        pod.stop()
    log = pod.log_text()
    assert snapshot(pod.data_dir) == before, "the data volume was changed"
    assert not (pod.run_dir / "patroni.yml").exists(), "patroni.yml was written"
    others = [line for line in log.splitlines()
              if line and not (line.startswith("ts=") and "component=citus-init" in line)]
    assert not others, f"lines of something else than citus-init (Patroni started?): {others}"
    assert "child started" not in log
    for pw in cluster.passwords():
        assert pw not in log
    return rc, log_messages(log), log


def test_missing_secret_file(cluster, tmp_path):
    pod = cluster.pods["e2ebad-0-0"]
    existing_data(pod)
    secrets = tmp_path / "secrets"
    shutil.copytree(cluster.secrets_dir, secrets)
    (secrets / "superuser-password").unlink()
    pod.volumes[POD_SECRETS] = ("bind", str(secrets), "ro")
    rc, msgs, log = run_bad_pod(cluster, pod)
    assert rc == EX_CONFIG, log
    assert ("SUPERUSER_PASSWORD: not set and /etc/patroni/secrets/superuser-password does not "
            "exist; expected the superuser password in that file or in SUPERUSER_PASSWORD"
            in msgs), msgs
    assert msgs[-1] == "configuration invalid"


def test_bad_group(cluster):
    pod = cluster.pods["e2ebad-0-1"]
    existing_data(pod)
    pod.env["CITUS_GROUP"] = "abc"
    rc, msgs, log = run_bad_pod(cluster, pod)
    assert rc == EX_CONFIG, log
    assert 'CITUS_GROUP: "abc" is not a number; expected an integer >= 0' in msgs, msgs


def test_negative_group(cluster):
    pod = cluster.pods["e2ebad-0-2"]
    existing_data(pod)
    pod.env["CITUS_GROUP"] = "-1"
    rc, msgs, log = run_bad_pod(cluster, pod)
    assert rc == EX_CONFIG, log
    assert 'CITUS_GROUP: "-1" is out of range; expected an integer >= 0' in msgs, msgs


def test_unusable_data_dir(cluster):
    """The data volume holds a file where the data directory's parent should be."""
    pod = cluster.pods["e2ebad-0-3"]
    pod.data_dir.mkdir(parents=True)
    (pod.data_dir / "pgroot").write_text("not a directory\n")
    rc, msgs, log = run_bad_pod(cluster, pod)
    assert rc == EX_CONFIG, log
    assert f"PGDATA={PGDATA}: the data directory cannot be created: " \
           f"{POD_DATA}/pgroot is not a directory" in msgs, msgs


def test_wrong_ca(cluster, tmp_path):
    pod = cluster.pods["e2ebad-0-4"]
    existing_data(pod)
    certs = tmp_path / "certs"
    shutil.copytree(cluster.certs_dir, certs)
    shutil.copyfile(tls.generate_foreign_ca(tmp_path / "foreign"), certs / "ca.crt")
    pod.volumes[POD_CERTS] = ("bind", str(certs), "ro")
    rc, msgs, log = run_bad_pod(cluster, pod)
    assert rc == EX_CONFIG, log
    assert any(m.startswith(f"{POD_CERTS}/server.crt: not signed by the CA in {POD_CERTS}/ca.crt")
               for m in msgs), msgs
