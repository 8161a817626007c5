"""scripts/bench rollout's own settings: a run count it cannot use is named and refused before
any cluster starts."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from localcluster import bench_rollout, paths  # noqa: E402


@pytest.mark.parametrize("env, runs", [({}, 3), ({"BENCH_RUNS": "20"}, 3), ({"BENCH_RUNS": "2"}, 2),
                                       ({"BENCH_ROLLOUT_RUNS": "5", "BENCH_RUNS": "1"}, 5)])
def test_runs(monkeypatch, env, runs):
    for var in ("BENCH_RUNS", "BENCH_ROLLOUT_RUNS"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert bench_rollout.runs() == runs


@pytest.mark.parametrize("var, value", [("BENCH_ROLLOUT_RUNS", "x"), ("BENCH_ROLLOUT_RUNS", "0"),
                                        ("BENCH_ROLLOUT_RUNS", "-1"), ("BENCH_RUNS", "3.5")])
def test_bad_run_count_is_refused_before_anything_starts(var, value):
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_RUNS", "BENCH_ROLLOUT_RUNS")}
    env.update({var: value, "PYTHONPATH": str(ROOT / "scripts" / "lib")})
    res = subprocess.run([sys.executable, "-m", "localcluster.bench_rollout"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{var}={value!r}: expected a number of runs" in res.stdout
    assert "Traceback" not in res.stderr
    assert not (paths.RUN / "benchroll").exists()
