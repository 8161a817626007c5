"""The agent's metrics endpoint and the monitoring role on real servers (docs/citus-init.md,
Metrics and the monitoring role): with AGENT_METRICS_PORT, MONITORING_ROLE, SSL and backups
on, /metrics is valid Prometheus text with each certificate's notAfter, /patroni/metrics is
Patroni's own (over the REST API's https), the role exists on every group's primary with
pg_monitor and the grants on citus_init's tables, and over the socket the OS user nobody logs
in as citus_monitor and as nothing else. Citus when installed (a coordinator and a worker),
else one member without Citus."""
import calendar
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import time

import pytest
from cryptography import x509

from harness import cluster
from test_agent import members as members_of
from test_backup_agent import AGENT_WAIT, backup_env, wait_log

CITUS, CITUS_WHY = cluster.paths.citus_mode()
PORT = 9188
SECONDS = 90

# ---------------------------------------------------------------- a strict text-format parser

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
VALUE = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|inf)|NaN"
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL},?)*)\}})? ({VALUE})(?: -?[0-9]+)?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text):
    """Prometheus text format 0.0.4, strictly: {family: {"type", "help", "samples": [(name,
    labels, value)]}}. Raises AssertionError naming the line on anything malformed: a sample
    before its TYPE, a family split or typed twice, a bad name, label or value."""
    assert text.endswith("\n"), "the text must end with a line end"
    families, current, seen_done = {}, None, set()

    def family_of(name):
        for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
            if name.endswith(suffix) and name[: -len(suffix)] in families:
                return name[: -len(suffix)]
        return name
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert len(parts) >= 3 and re.fullmatch(NAME, parts[2]), f"line {n}: {line!r}"
            fam = families.setdefault(parts[2], {"type": None, "help": None, "samples": []})
            if parts[1] == "TYPE":
                assert fam["type"] is None, f"line {n}: second TYPE for {parts[2]}"
                assert not fam["samples"], f"line {n}: TYPE after samples of {parts[2]}"
                assert len(parts) == 4 and parts[3] in TYPES, f"line {n}: {line!r}"
                fam["type"] = parts[3]
            else:
                assert fam["help"] is None, f"line {n}: second HELP for {parts[2]}"
                fam["help"] = parts[3] if len(parts) == 4 else ""
            continue
        if line.startswith("#") or line == "":
            continue
        m = SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, labels_text, value = m.group(1), m.group(2) or "", m.group(5)
        fam_name = family_of(name)
        if fam_name != current:
            assert fam_name not in seen_done, f"line {n}: {fam_name} is split"
            if current:
                seen_done.add(current)
            current = fam_name
        labels = dict(re.findall(LABEL, labels_text))
        assert len(labels) == len(re.findall(LABEL, labels_text)), f"line {n}: label twice"
        fam = families.setdefault(fam_name, {"type": None, "help": None, "samples": []})
        fam["samples"].append((name, labels, float(value.replace("Inf", "inf"))))
    return families


def test_parser_is_strict():
    good = parse_exposition('# HELP a_total x\n# TYPE a_total counter\na_total 1\n'
                            '# TYPE b gauge\nb{x="1",y="a\\"b"} 2.5e3\n')
    assert good["b"]["samples"] == [("b", {"x": "1", "y": 'a\\"b'}, 2500.0)]
    for bad in ("a 1", "a one\n", "# TYPE a gauge\n# TYPE a gauge\na 1\n",
                "a 1\n# TYPE a gauge\n", 'a{x=1} 1\n', "a 1\nb 1\na 2\n", "1a 1\n",
                "# TYPE a meter\na 1\n"):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


# ---------------------------------------------------------------- the pods

def get(pod, path, timeout=5):
    conn = http.client.HTTPConnection(pod.ip, PORT, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def leading(pod):
    """Patroni says primary, seen through the agent's pass-through (the REST API is https)."""
    pod.check_running()
    r = get(pod, "/patroni/metrics")
    return bool(r and r[0] == 200 and re.search(r"^patroni_primary\{[^}]*\} 1(\.0)?$", r[2], re.M))


def not_after(path):
    """notAfter of the file's (first) certificate as unix time."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return calendar.timegm(cert.not_valid_after.utctimetuple())


def psql_as(pod, os_user, role):
    """psql over the pod's socket as os_user, logging in as role (peer authentication)."""
    psql = cluster.paths.pg_bin_dir() / "psql"
    return pod.exec(["setpriv", f"--reuid={os_user}", "--regid=nogroup", "--clear-groups",
                     str(psql), "-X", "-w", "-h", "/var/run/postgresql", "-U", role, "-d",
                     pod.database, "-Atc", "SELECT current_user"], env={"HOME": "/tmp"})


@pytest.fixture
def monitored(pods):
    """Leading pods with the endpoint, the role, SSL (a CA of the project's script) and a
    posix backup repository: a Citus coordinator and worker, else one member."""
    certs = pods.workdir / "metrics-certs"
    if not (certs / "server.crt").exists():
        subprocess.run([str(cluster.paths.ROOT / "scripts" / "generate-ssl-certs.sh"), "--out",
                        str(certs), "--cluster", "mon", "--days", "400", "--extra-san",
                        *[pods.net.ip(n) for n in range(pods.next_ip, pods.next_ip + 4)]],
                       check=True, capture_output=True, text=True, timeout=120)
        # as a Kubernetes secret volume: readable by the agent (RUN_AS_USER), which watches it
        for f in certs.iterdir():
            f.chmod(0o644)
    env, _ = backup_env(pods, "metrics")
    env.update({"AGENT_METRICS_PORT": str(PORT), "MONITORING_ROLE": "citus_monitor",
                "SSL_ENABLED": "true", "SSL_CERT_DIR": str(certs), "SSL_MODE": "verify-ca",
                "LEADER_POLL_INTERVAL_MS": "500"})
    if CITUS:
        members = list(start_citus_pair_via_metrics(pods, env))
    else:
        members = [pods.new("mon-0-0", env=dict(env, CLUSTER_NAME="mon",
                                                CITUS_DATABASE="postgres"))]
    for pod in members:
        cluster.wait_for(lambda: leading(pod), SECONDS, what=f"{pod.name} to lead")
    return members, certs


def start_citus_pair_via_metrics(pods, env):
    pw = cluster.new_passwords()
    base = dict({"CLUSTER_NAME": "mon", "CITUS_ENABLED": "true", "CITUS_DATABASE": "citus"}, **env)
    yield pods.new("mon-0-0", env=dict(base, CITUS_GROUP="0"), passwords=pw)
    yield pods.new("mon-1-0", env=dict(base, CITUS_GROUP="1"), passwords=pw)


def test_metrics_and_monitoring_role_on_every_primary(monitored):
    members, certs = monitored
    print(f"Citus: {CITUS} ({CITUS_WHY})")
    for pod in members:
        status, ctype, text = get(pod, "/metrics")
        assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
        fams = parse_exposition(text)
        assert fams["citus_init_agent_restarts_total"]["type"] == "counter"
        assert fams["citus_init_agent_restarts_total"]["samples"][0][2] == 0
        assert fams["citus_init_agent_start_time_seconds"]["type"] == "gauge"
        expiry = fams["citus_init_certificate_expiry_timestamp_seconds"]
        assert expiry["type"] == "gauge" and expiry["help"]
        got = {s[1]["certificate"]: s[2] for s in expiry["samples"]}
        assert got == {"server": not_after(certs / "server.crt"),
                       "ca": not_after(certs / "ca.crt")}, got

        status, ctype, text = get(pod, "/patroni/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        patroni = parse_exposition(text)
        assert patroni["patroni_primary"]["samples"][0][2] == 1

        wait_log(pod, "monitoring role ready", timeout=SECONDS, role="citus_monitor")
        rows = pod.sql("SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, "
                       "pg_has_role('citus_monitor', 'pg_monitor', 'member') FROM pg_roles "
                       "WHERE rolname = 'citus_monitor'")
        assert rows == [(False, True, False, False, True)], pod.name

        ok = psql_as(pod, "nobody", "citus_monitor")
        assert ok.returncode == 0 and ok.stdout.strip() == "citus_monitor", ok.stderr
        refused = psql_as(pod, "nobody", "postgres")
        assert refused.returncode != 0
        assert 'Peer authentication failed for user "postgres"' in refused.stderr
        other = psql_as(pod, "daemon", "citus_monitor")  # any other OS user: not mapped
        assert other.returncode != 0 and "Peer authentication failed" in other.stderr
        assert not [name for name, pw in pod.passwords.items() if pw in pod.log()]

    if CITUS:
        coord = members[0]
        assert coord.sql("SELECT has_function_privilege('citus_monitor', "
                         "'citus_remote_connection_stats()', 'EXECUTE')", "citus") == [(True,)]
    # after the backups' setup created citus_init's tables, the grants on them follow
    for pod in members:
        wait_log(pod, "stanza ready", timeout=AGENT_WAIT)

        def granted():
            return pod.sql("SELECT has_table_privilege('citus_monitor', "
                           "'citus_init.backup_history', 'SELECT')") == [(True,)]
        cluster.wait_for(granted, SECONDS, what=f"the grant on backup_history on {pod.name}")
    if CITUS:
        assert members[0].sql("SELECT has_table_privilege('citus_monitor', "
                              "'citus_init.restore_points', 'SELECT')") == [(True,)]
    # exactly one "ready" line per member and leadership
    for pod in members:
        assert len(re.findall(r'msg="monitoring role ready"', pod.log())) == 1, pod.name

    # a rotated server certificate (shorter-lived, same CA): its notAfter shows once the
    # agent took it
    work = certs.parent / "metrics-certs-new"
    shutil.copytree(certs, work, dirs_exist_ok=True)
    subprocess.run([str(cluster.paths.ROOT / "scripts" / "generate-ssl-certs.sh"), "--out",
                    str(work), "--cluster", "mon", "--days", "100", "--reuse-ca", "--force",
                    "--extra-san", *[p.ip for p in members]],
                   check=True, capture_output=True, text=True, timeout=120)
    for name in ("server.key", "server.crt"):
        shutil.copyfile(work / name, certs / name)
        (certs / name).chmod(0o644)
    rotated = not_after(certs / "server.crt")
    assert rotated < not_after(certs / "ca.crt")

    def server_expiry(pod):
        fams = parse_exposition(get(pod, "/metrics")[2])
        return {s[1]["certificate"]: s[2] for s in
                fams["citus_init_certificate_expiry_timestamp_seconds"]["samples"]}["server"]
    for pod in members:
        cluster.wait_for(lambda: server_expiry(pod) == rotated, SECONDS,
                         what=f"the rotated certificate's notAfter on {pod.name}")

    # figures for the report (not asserted): time to answer /metrics, median of 20, once
    # Patroni answers again after reloading its certificate
    pod = members[0]
    cluster.wait_for(lambda: get(pod, "/patroni/metrics")[0] == 200, SECONDS,
                     what="Patroni's metrics after the reload")
    took = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert get(pod, "/metrics")[0] == 200
        took.append((time.perf_counter() - t0) * 1000)
    took_p, statuses = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        r = get(pod, "/patroni/metrics")
        took_p.append((time.perf_counter() - t0) * 1000)
        statuses.append(r[0])
    print(f"FIGURE /metrics median {statistics.median(took):.2f} ms, "
          f"/patroni/metrics median {statistics.median(took_p):.2f} ms, max "
          f"{max(took_p):.0f} ms (20 requests each), pass-through statuses {statuses}")
    assert 200 in statuses

    # Patroni hanging (stopped): the pass-through gives up with a 503 instead of hanging, and
    # /metrics is answered meanwhile; Patroni goes on when continued (well within its TTL)
    patroni = members_of(pod)["patroni"]
    os.kill(patroni.pid, signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        status, _, text = get(pod, "/patroni/metrics", timeout=10)
        hung_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        assert get(pod, "/metrics")[0] == 200
        own_ms = (time.perf_counter() - t0) * 1000
    finally:
        os.kill(patroni.pid, signal.SIGCONT)
    assert status == 503 and "Timeout was reached" in text, text
    print(f"FIGURE with Patroni stopped: /patroni/metrics 503 after {hung_ms:.0f} ms, "
          f"/metrics {own_ms:.2f} ms")
    cluster.wait_for(lambda: get(pod, "/patroni/metrics")[0] == 200, SECONDS,
                     what="Patroni answering again")
