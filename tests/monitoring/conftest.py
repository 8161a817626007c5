"""Shared helpers of the monitoring suite. tests/monitoring/run starts the servers, the
exporters and Prometheus and passes where they are in MON_* variables; these helpers only
read from them."""
import json
import os
import re
import time
import urllib.parse
import urllib.request

import pytest

ADDR = os.environ.get("MON_ADDR", "")
CITUS = os.environ.get("MON_CITUS") == "1"
ASSETS = os.environ.get("MON_ASSETS", "")
WORK = os.environ.get("MON_WORK", "")
PROMETHEUS = os.environ.get("MON_PROMETHEUS", "")
EXPORTER_PORTS = dict(item.split("=") for item in os.environ.get("MON_EXPORTERS", "").split())
EXPORTER_PIDS = {k: int(v) for k, v in (item.split("=") for item in os.environ.get("MON_EXPORTER_PIDS", "").split())}

needs_citus = pytest.mark.skipif(
    not CITUS, reason="runs without Citus (not installed, or MONITORING_CITUS=false): Citus metrics not checked")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> list of (name, {label: value}, float)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def scrape(exporter):
    return parse_metrics(http_get(f"http://{ADDR}:{EXPORTER_PORTS[exporter]}/metrics"))


def series(samples, name, **labels):
    return [(l, v) for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items())]


def prom_query(expr):
    """Instant query against the suite's Prometheus; returns the result list."""
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(http_get(url))
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def prom_api(path):
    body = json.loads(http_get(f"{PROMETHEUS}{path}"))
    assert body["status"] == "success", f"{path}: {body}"
    return body["data"]


def wait_for(what, check, timeout=30.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session", autouse=True)
def environment_started():
    if not PROMETHEUS:
        pytest.skip("run through tests/monitoring/run (it starts PostgreSQL, the exporters and Prometheus)")
