"""The agent's metrics endpoint (AGENT_METRICS_PORT) with citus-init as a real PID 1: PID 1
still maps no libcurl or libpq, the restart count PID 1 keeps reaches each new agent, the
paths and methods answer as documented, Patroni's pass-through answers 503 (not a hang)
when nothing listens, a slow client does not stop the next scrape, and a port that cannot be
bound is retried while the agent goes on. Nothing listens on the pod's Patroni port here."""
import http.client
import os
import signal
import socket
import time

import pytest

from conftest import wait_for
from test_module import (agent_maps_module, agent_of, heavy, mapped_objects, sleep_of,
                         start_supervising)

ADDRESS = "127.0.77.1"  # the pod fixture's LISTEN_ADDRESS


def free_port():
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def request(port, path="/metrics", method="GET", body=None, timeout=5):
    """(status, headers, body) of one request; None when nothing answers (yet)."""
    conn = http.client.HTTPConnection(ADDRESS, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    finally:
        conn.close()


def metric(text, name):
    """The value of an unlabelled sample, or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.fixture
def metrics_pod(pod):
    port = free_port()
    return dict(pod["env"], AGENT_METRICS_PORT=str(port)), port


def test_restart_count_reaches_the_agent_and_pid1_maps_no_library(pid1, metrics_pod):
    env, port = metrics_pod
    p, pid, sleeper, agent = start_supervising(pid1, env)
    status, headers, text = wait_for(lambda: request(port), what="the metrics endpoint")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert metric(text, "citus_init_agent_restarts_total") == 0
    assert "# TYPE citus_init_agent_restarts_total counter" in text
    assert "# TYPE citus_init_agent_start_time_seconds gauge" in text
    started = metric(text, "citus_init_agent_start_time_seconds")
    assert abs(started - time.time()) < 120
    assert "certificate_expiry" not in text  # SSL is off
    for expected in (1, 2):
        os.kill(agent, signal.SIGKILL)
        agent = wait_for(lambda: (a := agent_of(pid)) and a != agent and a, what="a new agent")
        wait_for(lambda: agent_maps_module(agent), what="the new agent's module")

        def restarts():
            r = request(port)
            return r and r[0] == 200 and metric(r[2], "citus_init_agent_restarts_total")
        assert wait_for(restarts, what=f"restart {expected} to show") == expected
    later = metric(request(port)[2], "citus_init_agent_start_time_seconds")
    assert later >= started
    # the count travels on stdin, not in any environment
    assert b"AGENT_RESTARTS" not in open(f"/proc/{agent}/environ", "rb").read()
    # PID 1 still maps none of the agent's libraries, the agent maps them and a thread more
    assert not heavy(mapped_objects(pid)), mapped_objects(pid)
    assert any(o.startswith("libcurl.") for o in heavy(mapped_objects(agent)))
    assert int(open(f"/proc/{agent}/status").read().split("Threads:")[1].split()[0]) == 2
    assert sleep_of(pid) == sleeper  # the supervised command never noticed
    p.kill()


def test_paths_methods_and_patroni_not_answering(pid1, metrics_pod):
    env, port = metrics_pod
    p, pid, _, _ = start_supervising(pid1, env)
    wait_for(lambda: request(port), what="the metrics endpoint")
    t0 = time.monotonic()
    status, headers, text = request(port, "/patroni/metrics")
    took = time.monotonic() - t0
    assert status == 503, text
    assert text.count("\n") == 1 and text.startswith("Patroni REST API not answering at "
                                                     "http://127.0.77.1:8008/metrics: ")
    assert took < 5  # bounded by the pass-through's timeout, never a hang
    assert request(port, "/metrics?x=1")[0] == 200
    assert request(port, "/")[0] == 404
    assert request(port, "/metrics/")[0] == 404
    status, headers, _ = request(port, "/metrics", method="POST", body="x" * 10000)
    assert status == 405 and headers["Allow"] == "GET"
    assert request(port, "/metrics", method="HEAD")[0] == 405
    # a request head over 8 KiB is refused, the next one answered
    status, _, _ = request(port, "/metrics?" + "a" * 9000)
    assert status == 431
    # one request per connection: closed after the answer
    with socket.create_connection((ADDRESS, port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in data
    # a client that says nothing holds the next scrape back by about a second, not more
    with socket.create_connection((ADDRESS, port), timeout=5):
        t0 = time.monotonic()
        assert request(port, timeout=10)[0] == 200
        assert time.monotonic() - t0 < 5
    p.signal(signal.SIGTERM)
    p.wait()
    assert f'msg="serving metrics" address={ADDRESS}:{port} ' in p.stderr


def test_port_taken_is_logged_and_retried(pid1, metrics_pod):
    env, port = metrics_pod
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((ADDRESS, port))
    blocker.listen(1)
    try:
        p, pid, sleeper, agent = start_supervising(pid1, env)
        time.sleep(1.0)
    finally:
        blocker.close()
    # the agent goes on (no restart) and binds on its next try, within 10 s
    status = wait_for(lambda: request(port), timeout=30, what="the retried bind")[0]
    assert status == 200
    assert agent_of(pid) == agent
    p.signal(signal.SIGTERM)
    p.wait()
    lines = [ln for ln in p.stderr.splitlines() if 'msg="cannot serve metrics"' in ln]
    assert len(lines) == 1, p.stderr  # said once per reason, then retried quietly
    assert "level=error" in lines[0]
    assert f"address={ADDRESS}:{port} " in lines[0]
    assert 'error="Address already in use"' in lines[0] and "retry_in_s=10" in lines[0]
    assert 'msg="agent ended' not in p.stderr
