"""`citus-init run -- CMD` and `check` as PID 1: files as root, privilege drop, non-root start."""
import os
import stat
import subprocess

import pytest
import yaml

from conftest import POSTGRES, REPLICATION_PASSWORD, RESTAPI_PASSWORD, SUPERUSER_PASSWORD

PG_UID, PG_GID = POSTGRES.pw_uid, POSTGRES.pw_gid
AS_POSTGRES = ["setpriv", f"--reuid={PG_UID}", f"--regid={PG_GID}", "--clear-groups"]


def run(*cmd):
    return ["run", "--", *cmd]


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def no_secret_in(text):
    return all(pw not in text for pw in (SUPERUSER_PASSWORD, REPLICATION_PASSWORD, RESTAPI_PASSWORD))


def test_privilege_drop_leaves_exactly_postgres(pid1, pod):
    script = ('id -u; id -g; id -G; '
              'grep -E "^(NoNewPrivs|CapPrm|CapEff|CapBnd|Uid|Gid):" /proc/self/status')
    p = pid1(run("sh", "-c", script), env=pod["env"])
    assert p.wait() == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:3] == [str(PG_UID), str(PG_GID), str(PG_GID)]  # no ssl-cert, no root group
    status = dict(line.split(":", 1) for line in lines[3:])
    assert status["NoNewPrivs"].strip() == "1"
    assert status["CapPrm"].strip() == "0000000000000000"
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["Uid"].split() == [str(PG_UID)] * 4
    assert status["Gid"].split() == [str(PG_GID)] * 4
    assert 'msg="privileges dropped" user=postgres' in p.stderr
    assert no_secret_in(p.stderr)


def test_files_prepared_as_root(pid1, pod):
    p = pid1(run("true"), env=pod["env"])
    assert p.wait() == 0, p.stderr
    assert owner_mode(pod["pgdata"]) == (PG_UID, PG_GID, 0o700)
    assert owner_mode(pod["pgdata"].parent) == (PG_UID, PG_GID, 0o700)  # created parent
    assert owner_mode(pod["run_dir"]) == (PG_UID, PG_GID, 0o700)
    config = pod["run_dir"] / "patroni.yml"
    assert owner_mode(config) == (PG_UID, PG_GID, 0o600)
    assert sorted(os.listdir(pod["run_dir"])) == ["patroni.yml"]  # no temp file left
    doc = yaml.safe_load(config.read_text())
    assert doc["postgresql"]["authentication"]["superuser"]["password"] == SUPERUSER_PASSWORD
    assert doc["restapi"]["authentication"] == {"username": "patroni", "password": RESTAPI_PASSWORD}
    assert doc["postgresql"]["data_dir"] == str(pod["pgdata"])
    for phase in ("configuration loaded", "files prepared", "privileges dropped"):
        assert f'msg="{phase}"' in p.stderr and "duration_ms=" in p.stderr
    assert no_secret_in(p.stderr)


def test_child_environment(pid1, pod):
    env = dict(pod["env"], PATRONI_LOG_LEVEL="DEBUG", SUPERUSER_PASSWORD="env-fallback-pw",
               RESTAPI_PASSWORD="env-api-pw", HOME="/root", USER="root")
    p = pid1(run("env"), env=env)
    assert p.wait() == 0, p.stderr
    child = dict(line.split("=", 1) for line in p.stdout.splitlines())
    assert child["PATRONI_LOG_LEVEL"] == "DEBUG"  # PATRONI_* untouched
    assert child["HOME"] == POSTGRES.pw_dir
    assert child["USER"] == child["LOGNAME"] == "postgres"
    assert "SUPERUSER_PASSWORD" not in child and "RESTAPI_PASSWORD" not in child
    assert not any(SUPERUSER_PASSWORD in v or REPLICATION_PASSWORD in v or RESTAPI_PASSWORD in v
                   or "env-api-pw" in v for v in child.values())


def test_restart_rewrites_nothing(pid1, pod):
    assert pid1(run("true"), env=pod["env"]).wait() == 0
    before = os.stat(pod["run_dir"] / "patroni.yml")
    assert pid1(run("true"), env=pod["env"]).wait() == 0
    after = os.stat(pod["run_dir"] / "patroni.yml")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_tls_files_copied_for_postgres(pid1, pod):
    certs = pod["dir"] / "certs"
    certs.mkdir()
    sh = f"""set -e; cd {certs}
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=test-ca -keyout ca.key -out ca.crt 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=pid1test-0-0 -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.77.1\\n' > san.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile san.ext -out server.crt 2>/dev/null
      chmod 0644 server.key"""
    subprocess.run(["sh", "-c", sh], check=True)
    env = dict(pod["env"], SSL_ENABLED="true", SSL_CERT_DIR=certs)
    p = pid1(run("cat", str(pod["run_dir"] / "tls" / "server.key")), env=env)
    assert p.wait() == 0, p.stderr
    tls = pod["run_dir"] / "tls"
    assert owner_mode(tls) == (PG_UID, PG_GID, 0o700)
    assert owner_mode(tls / "server.key") == (PG_UID, PG_GID, 0o600)
    assert owner_mode(tls / "server.crt")[2] == 0o644
    assert owner_mode(tls / "ca.crt")[2] == 0o644
    for name in ("ca.crt", "server.crt", "server.key"):
        assert (tls / name).read_bytes() == (certs / name).read_bytes()
    assert p.stdout == (certs / "server.key").read_text()  # readable after the drop
    assert "PRIVATE KEY" not in p.stderr


def make_tree(pgdata, top_owner, top_mode):
    """A data directory with a subdirectory, a deep file and a symlink leaving the tree."""
    pgdata.mkdir(parents=True)
    (pgdata / "base").mkdir()
    deep = pgdata / "base" / "deep"
    deep.write_text("x")
    os.chmod(deep, 0o664)
    os.chmod(pgdata / "base", 0o755)
    outside = pgdata.parent / "outside"
    outside.write_text("y")
    os.chmod(outside, 0o644)
    os.symlink(outside, pgdata / "link")
    os.chown(pgdata, *top_owner)
    os.chmod(pgdata, top_mode)
    return deep, outside


def test_correct_top_is_not_walked(pid1, pod):
    deep, outside = make_tree(pod["pgdata"], (PG_UID, PG_GID), 0o700)
    p = pid1(run("true"), env=pod["env"])
    assert p.wait() == 0, p.stderr
    assert owner_mode(deep) == (0, 0, 0o664)  # OnRootMismatch: left alone
    assert owner_mode(pod["pgdata"] / "base") == (0, 0, 0o755)
    assert owner_mode(pod["pgdata"]) == (PG_UID, PG_GID, 0o700)


@pytest.mark.parametrize("top_owner,top_mode", [((0, 0), 0o700), ((PG_UID, PG_GID), 0o2770),
                                                ((PG_UID, 0), 0o700)])
def test_wrong_top_fixes_the_whole_tree(pid1, pod, top_owner, top_mode):
    deep, outside = make_tree(pod["pgdata"], top_owner, top_mode)
    p = pid1(run("true"), env=pod["env"])
    assert p.wait() == 0, p.stderr
    assert owner_mode(pod["pgdata"]) == (PG_UID, PG_GID, 0o700)
    assert owner_mode(pod["pgdata"] / "base") == (PG_UID, PG_GID, 0o700)
    assert owner_mode(deep) == (PG_UID, PG_GID, 0o600)
    assert os.lstat(pod["pgdata"] / "link").st_uid == PG_UID
    assert owner_mode(outside) == (0, 0, 0o644)  # symlinks are not followed


def test_failed_write_is_an_internal_error_and_leaves_no_temp_file(pid1, pod):
    """A write no check can foresee (a full file system) is 70, and leaves no temp file."""
    run_dir = pod["run_dir"]
    run_dir.mkdir()
    full = (f'mount -t tmpfs -o size=4k,mode=0700,uid={PG_UID},gid={PG_GID} tmpfs "$0" && '
            'head -c 4096 /dev/zero > "$0/fill" && exec "$@"')
    p = pid1(run("true"), env=pod["env"], wrapper=["sh", "-c", full, str(run_dir)])
    assert p.wait() == 70, p.stderr
    config = run_dir / "patroni.yml"
    assert f"{config}: cannot write the file: No space left on device" in p.stderr
    assert "child started" not in p.stderr
    assert no_secret_in(p.stderr)
    assert os.listdir(run_dir) == []  # the tmpfs lived in citus-init's mount namespace only


@pytest.mark.parametrize("target", ["patroni.yml", "tls/server.key", "tls/ca.crt"])
def test_a_directory_where_a_file_goes_changes_nothing(pid1, pod, certs, target):
    foreign_data_dir(pod["pgdata"])
    (pod["run_dir"] / target).mkdir(parents=True)
    env = dict(pod["env"], SSL_ENABLED="true", SSL_CERT_DIR=certs)
    before = snapshot(pod["dir"])
    for err in run_and_check(pid1, env):
        assert f"{pod['run_dir'] / target}: is a directory; expected no entry or the file" in err
    assert snapshot(pod["dir"]) == before


def test_invalid_configuration_changes_nothing(pid1, pod):
    env = dict(pod["env"], CITUS_GROUP="-1")
    del env["POD_NAME"]
    p = pid1(run("true"), env=env)
    assert p.wait() == 78
    errors = [line for line in p.stderr.splitlines() if "level=error" in line]
    assert any("POD_NAME" in line for line in errors)
    assert any("CITUS_GROUP" in line for line in errors)
    assert not pod["pgdata"].parent.exists() and not pod["run_dir"].exists()


def test_unknown_run_as_user(pid1, pod):
    p = pid1(run("true"), env=dict(pod["env"], RUN_AS_USER="no-such-user-x"))
    assert p.wait() == 78
    assert "RUN_AS_USER=no-such-user-x: no such user" in p.stderr
    assert not pod["pgdata"].parent.exists()


def test_check_prints_masked_yaml_and_changes_nothing(pid1, pod):
    p = pid1(["check"], env=pod["env"])
    assert p.wait() == 0, p.stderr
    doc = yaml.safe_load(p.stdout)
    assert doc["postgresql"]["authentication"]["superuser"]["password"] == "********"
    assert doc["restapi"]["authentication"] == {"username": "patroni", "password": "********"}
    assert no_secret_in(p.stdout + p.stderr)
    assert not pod["pgdata"].parent.exists() and not pod["run_dir"].exists()


def test_check_reports_every_problem(pid1, pod):
    env = dict(pod["env"], CITUS_GROUP="x", SSL_MODE="sometimes")
    del env["CLUSTER_NAME"]
    p = pid1(["check"], env=env)
    assert p.wait() == 78
    assert p.stdout == ""
    errors = [line for line in p.stderr.splitlines() if "level=error" in line]
    for name in ("CITUS_GROUP", "SSL_MODE", "CLUSTER_NAME"):
        assert sum(name in line for line in errors) >= 1, name


# --- started as non-root (runAsNonRoot): nothing to chown, verify instead ---------------

@pytest.fixture
def nonroot_pod(pod):
    home = pod["dir"] / "home"
    home.mkdir()
    os.chown(home, PG_UID, PG_GID)
    env = dict(pod["env"], PGDATA=home / "pgroot" / "data", RUN_DIR=home / "run")
    return dict(pod, env=env, pgdata=home / "pgroot" / "data", run_dir=home / "run", home=home)


def test_nonroot_start(pid1, nonroot_pod):
    p = pid1(run("sh", "-c", "id -u; id -g"), env=nonroot_pod["env"], wrapper=AS_POSTGRES)
    assert p.wait() == 0, p.stderr
    assert p.stdout.split() == [str(PG_UID), str(PG_GID)]
    assert owner_mode(nonroot_pod["pgdata"]) == (PG_UID, PG_GID, 0o700)
    assert owner_mode(nonroot_pod["run_dir"] / "patroni.yml") == (PG_UID, PG_GID, 0o600)
    assert 'msg="no privileges to drop"' in p.stderr


def test_nonroot_data_dir_owned_by_someone_else(pid1, nonroot_pod):
    pgdata = nonroot_pod["pgdata"]
    pgdata.mkdir(parents=True)
    os.chmod(pgdata, 0o700)  # root-owned
    p = pid1(run("true"), env=nonroot_pod["env"], wrapper=AS_POSTGRES)
    assert p.wait() == 78
    assert (f"{pgdata}: the data directory is owned by uid 0, expected uid {PG_UID}"
            in p.stderr)
    assert owner_mode(pgdata) == (0, 0, 0o700)


def test_nonroot_data_dir_with_wrong_mode(pid1, nonroot_pod):
    pgdata = nonroot_pod["pgdata"]
    pgdata.mkdir(parents=True)
    os.chown(pgdata.parent, PG_UID, PG_GID)
    os.chown(pgdata, PG_UID, PG_GID)
    os.chmod(pgdata, 0o755)
    p = pid1(run("true"), env=nonroot_pod["env"], wrapper=AS_POSTGRES)
    assert p.wait() == 78
    assert f"{pgdata}: the data directory has mode 0755, expected 0700 or 0750" in p.stderr
    assert owner_mode(pgdata) == (PG_UID, PG_GID, 0o755)  # not changed
    assert not nonroot_pod["run_dir"].exists()


def test_nonroot_unreadable_key(pid1, nonroot_pod):
    certs = nonroot_pod["dir"] / "certs"
    certs.mkdir()
    for name in ("ca.crt", "server.crt", "server.key"):
        (certs / name).write_text("placeholder\n")
    os.chmod(certs / "server.key", 0o600)  # root-owned secret volume without fsGroup
    env = dict(nonroot_pod["env"], SSL_ENABLED="true", SSL_CERT_DIR=certs)
    p = pid1(run("true"), env=env, wrapper=AS_POSTGRES)
    assert p.wait() == 78
    assert str(certs / "server.key") in p.stderr
    assert not nonroot_pod["run_dir"].exists()


def test_nonroot_arbitrary_uid(pid1, nonroot_pod):
    """A uid without a passwd entry (OpenShift style) in the postgres group: runs, HOME=/."""
    uid = 54321
    os.chown(nonroot_pod["home"], uid, PG_GID)
    wrapper = ["setpriv", f"--reuid={uid}", f"--regid={PG_GID}", "--clear-groups"]
    p = pid1(run("sh", "-c", 'id -u; echo "HOME=$HOME USER=${USER-unset}"'),
             env=nonroot_pod["env"], wrapper=wrapper)
    assert p.wait() == 0, p.stderr
    assert p.stdout.split() == [str(uid), "HOME=/", "USER=unset"]
    assert owner_mode(nonroot_pod["pgdata"]) == (uid, PG_GID, 0o700)
    assert owner_mode(nonroot_pod["run_dir"] / "patroni.yml") == (uid, PG_GID, 0o600)


# --- exit 78 means nothing was changed: every check runs before the first change ---------

def snapshot(root):
    """Owner, mode, mtime and content (or link target) of everything below root."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    body = f.read()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            state[path] = (st.st_uid, st.st_gid, st.st_mode, st.st_mtime_ns, body)
    return state


def foreign_data_dir(pgdata):
    """An existing data directory of another user with mode 0755, as a restore leaves it."""
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("15\n")
    os.chmod(pgdata / "PG_VERSION", 0o644)
    os.chown(pgdata / "PG_VERSION", 12345, 12345)
    os.chown(pgdata, 12345, 12345)
    os.chmod(pgdata, 0o755)


def run_and_check(pid1, env, wrapper=()):
    """The start path and `check`, each must exit 78; returns both stderrs."""
    started = pid1(run("true"), env=env, wrapper=wrapper)
    assert started.wait() == 78, started.stderr
    assert "child started" not in started.stderr
    checked = pid1(["check"], env=env, wrapper=wrapper)
    assert checked.wait() == 78, checked.stderr
    assert checked.stdout == ""
    return started.stderr, checked.stderr


@pytest.mark.parametrize("mode", ["start", "check"])
def test_run_dir_a_file_changes_no_data_dir(pid1, pod, mode):
    foreign_data_dir(pod["pgdata"])
    pod["run_dir"].write_text("not a directory\n")
    before = snapshot(pod["dir"])
    p = pid1(run("true") if mode == "start" else ["check"], env=pod["env"])
    assert p.wait() == 78, p.stderr
    assert f"RUN_DIR={pod['run_dir']}: exists but is not a directory" in p.stderr
    assert snapshot(pod["dir"]) == before


def test_run_dir_tls_a_file_changes_nothing(pid1, pod, certs):
    foreign_data_dir(pod["pgdata"])
    pod["run_dir"].mkdir()
    (pod["run_dir"] / "tls").write_text("x")
    env = dict(pod["env"], SSL_ENABLED="true", SSL_CERT_DIR=certs)
    before = snapshot(pod["dir"])
    for err in run_and_check(pid1, env):
        assert f"{pod['run_dir']}/tls: exists but is not a directory" in err
    assert snapshot(pod["dir"]) == before


@pytest.mark.parametrize("body", ["cert+key", "key only"])
def test_server_crt_holding_a_key_is_refused(pid1, pod, certs, body):
    crt = (certs / "server.crt").read_text()
    key = (certs / "server.key").read_text()
    (certs / "server.crt").write_text(crt + key if body == "cert+key" else key)
    env = dict(pod["env"], SSL_ENABLED="true", SSL_CERT_DIR=certs)
    before = snapshot(pod["dir"])
    for err in run_and_check(pid1, env):
        assert f"{certs}/server.crt: holds a private key" in err
        assert "PRIVATE KEY" in err and key.splitlines()[1] not in err
    assert snapshot(pod["dir"]) == before
    assert not pod["run_dir"].exists()


@pytest.mark.parametrize("case", ["no such user", "root"])
def test_check_looks_up_run_as_user(pid1, pod, case):
    user = "no-such-user-x" if case == "no such user" else "root"
    env = dict(pod["env"], RUN_AS_USER=user)
    for err in run_and_check(pid1, env):
        assert f"RUN_AS_USER={user}:" in err
    assert not pod["pgdata"].parent.exists()


@pytest.mark.parametrize("case", ["file", "symlink loop", "parent a file"])
def test_unusable_pgdata(pid1, pod, case):
    pgdata = pod["pgdata"]
    pgdata.parent.mkdir()
    if case == "file":
        pgdata.write_text("x")
    elif case == "symlink loop":
        os.symlink(pgdata.name, pgdata)
    else:
        os.rmdir(pgdata.parent)
        pgdata.parent.write_text("x")
    before = snapshot(pod["dir"])
    for err in run_and_check(pid1, pod["env"]):
        assert f"PGDATA={pgdata}:" in err
    assert snapshot(pod["dir"]) == before
    assert not pod["run_dir"].exists()


@pytest.fixture
def certs(pod):
    certs = pod["dir"] / "certs"
    certs.mkdir()
    sh = f"""set -e; cd {certs}
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj /CN=test-ca -keyout ca.key -out ca.crt 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=pid1test-0-0 -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.77.1\\n' > san.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
        -extfile san.ext -out server.crt 2>/dev/null
      chmod 0644 server.key"""
    subprocess.run(["sh", "-c", sh], check=True)
    return certs


def test_nonroot_run_dir_of_someone_else_changes_nothing(pid1, nonroot_pod):
    run_dir = nonroot_pod["run_dir"]
    run_dir.mkdir()
    os.chmod(run_dir, 0o700)  # root's
    before = snapshot(nonroot_pod["dir"])
    for err in run_and_check(pid1, nonroot_pod["env"], wrapper=AS_POSTGRES):
        assert f"RUN_DIR={run_dir}: the run directory is owned by uid 0" in err
    assert snapshot(nonroot_pod["dir"]) == before
    assert not nonroot_pod["pgdata"].parent.exists()


def test_nonroot_data_dir_of_someone_else_in_check(pid1, nonroot_pod):
    nonroot_pod["pgdata"].mkdir(parents=True)
    before = snapshot(nonroot_pod["dir"])
    for err in run_and_check(pid1, nonroot_pod["env"], wrapper=AS_POSTGRES):
        assert f"PGDATA={nonroot_pod['pgdata']}: the data directory is owned by uid 0" in err
    assert snapshot(nonroot_pod["dir"]) == before


def with_socket_dir(sock, *wrapper):
    """Bind sock over /run/postgresql in citus-init's own mount namespace (unshare made it)."""
    return ["sh", "-c", 'mount --bind "$0" /run/postgresql && exec "$@"', str(sock), *wrapper]


def test_nonroot_unwritable_socket_dir_changes_nothing(pid1, nonroot_pod):
    sock = nonroot_pod["dir"] / "sock"
    sock.mkdir()
    os.chmod(sock, 0o755)  # root's, not writable by postgres
    before = snapshot(nonroot_pod["dir"])
    wrapper = with_socket_dir(sock, *AS_POSTGRES)
    for err in run_and_check(pid1, nonroot_pod["env"], wrapper=wrapper):
        assert "/var/run/postgresql: the socket directory is not writable by uid" in err
    assert snapshot(nonroot_pod["dir"]) == before
    assert not nonroot_pod["pgdata"].parent.exists()
