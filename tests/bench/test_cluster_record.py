"""The cluster section (scripts/lib/localcluster/bench.py) records what it prints: run here
with its clusters replaced by fixed figures (the real section takes the cluster lock and
several minutes)."""

import json
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import benchplot  # noqa: E402
from localcluster import bench  # noqa: E402

FIGURES = {"citus-init": (12.0, 18.0, 14.0, 4.5, 3.5), "anchor": (15.0, 260.0, 38.0, 4.6, 3.8)}


def test_cluster_section_records_each_printed_metric(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    monkeypatch.delenv("BENCH_ONLY", raising=False)
    monkeypatch.delenv("BENCH_DCS", raising=False)
    monkeypatch.setattr(bench, "RUNS", 2)
    monkeypatch.setattr(bench, "SWITCHOVERS", 3)
    monkeypatch.setattr(bench.Variant, "teardown", lambda self: None)
    monkeypatch.setattr(bench, "cold_start", lambda v: FIGURES[v.label][:2])
    calls = {}

    def stop(v, sig, restart_at_once=True):
        n = calls[v.label] = calls.get(v.label, 0) + 1
        if n <= 2 * 3:  # pod lost, crash, switchover in each of the 2 runs
            return FIGURES[v.label][2 + (n - 1) % 3]
        return n / 10.0  # the consecutive switchovers: 0.7, 0.8, 0.9
    monkeypatch.setattr(bench, "stop_leader_until_write", stop)
    assert bench.main() == 0
    printed = capsys.readouterr().out
    assert "cold start: ready for clients" in printed
    section, measures = benchplot.load(str(tmp_path / "cluster.jsonl"))
    by_name = {m["measure"]: m for m in measures}
    assert len(measures) == 7
    m = by_name["cold start: every replica streaming"]
    assert m["ours"]["samples"] == [18.0, 18.0] and m["anchor"]["samples"] == [260.0, 260.0]
    assert m["ours"]["label"] == "citus-init" and m["anchor"]["label"] == "upstream way"
    assert abs(m["ratio"] - 18.0 / 260.0) < 1e-9
    longest = by_name["3 switchovers: longest without a writable leader"]
    assert longest["ours"]["median"] == 0.9 and longest["anchor"]["median"] == 0.9
    written, errors = benchplot.render(str(tmp_path))
    assert errors == [] and written == [str(tmp_path / "cluster.png")]
    json.dumps(measures)  # plain data
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # main() installed its own
