"""End to end: `BENCH_RUNS=3 scripts/bench pid1` prints its figures and writes pid1.png."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_scripts_bench_pid1_writes_its_plot(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("bench pid1 needs root (unshare --pid)")
    if not shutil.which("tini"):
        pytest.skip("bench pid1 needs tini, its anchor")
    out = tmp_path / "out"
    env = dict(os.environ, BENCH_RUNS="3", BENCH_OUT=str(out))
    t0 = time.monotonic()
    r = subprocess.run([str(ROOT / "scripts" / "bench"), "pid1"], env=env, capture_output=True,
                       text=True, timeout=120)
    took = time.monotonic() - t0
    if "(section pid1 skipped)" in r.stdout:
        pytest.skip("bench pid1 skipped here: " + r.stdout.strip().splitlines()[1])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x tini" in r.stdout  # its own table, as before
    png = out / "pid1.png"
    assert str(png) in r.stdout.splitlines(), r.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20 * 1024
    with Image.open(png) as im:
        im.load()
        assert im.size[0] == 1320 and im.size[1] > 1200  # 10 panels: 3 columns, 4 rows
    figures = [json.loads(x) for x in (out / "pid1.jsonl").read_text().splitlines()]
    assert len(figures) == 10
    anchored = [f for f in figures if f["anchor"]]
    assert len(anchored) == 9 and all(f["anchor"]["label"] == "tini" for f in anchored)
    assert all(len(f["ours"]["samples"]) in (3, 5) for f in figures)
    print(f"scripts/bench pid1 took {took:.1f} s")
