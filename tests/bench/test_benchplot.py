"""scripts/lib/benchplot.py: recording figures as JSON lines and rendering them as PNGs."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "scripts" / "lib"
BENCHPLOT = LIB / "benchplot.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
sys.path.insert(0, str(LIB))
import benchplot  # noqa: E402

PAIR = {"section": "demo", "measure": "cold start: ready for clients", "unit": "s",
        "ours": {"label": "citus-init", "samples": [12.1, 12.6, 13.9], "median": 12.6},
        "anchor": {"label": "upstream way", "samples": [14.0, 14.8, 16.2], "median": 14.8},
        "ratio": 0.85, "ratio_of": "citus-init / upstream way"}
MEDIANS = {"section": "demo", "measure": "switchover -> first write", "unit": "s",
           "ours": {"label": "citus-init", "median": 3.5},
           "anchor": {"label": "upstream way", "median": 3.8}, "ratio": 0.92}
ALONE = {"section": "demo", "measure": "agent restart (no anchor)", "unit": "s",
         "ours": {"label": "citus-init", "samples": [0.2, 0.21, 0.22]}, "anchor": None}


def write_jsonl(path, *objs, raw=()):
    with open(path, "w") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")
        for line in raw:
            f.write(line + "\n")
    return path


def render(directory, *sections):
    return subprocess.run([sys.executable, str(BENCHPLOT), "render", str(directory), *sections],
                          capture_output=True, text=True, timeout=60)


def check_png(path, min_kib=10):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > min_kib * 1024, f"{path}: {len(data)} bytes, expected > {min_kib} KiB"
    # IHDR: the dimensions as the file says them, and as Pillow decodes them
    width, height = struct.unpack(">II", data[16:24])
    with Image.open(path) as im:
        im.load()
        assert im.size == (width, height)
        assert im.format == "PNG"
    return width, height


def leftovers(directory):
    return [p.name for p in Path(directory).iterdir() if p.name.startswith(".") or
            p.name.endswith(".tmp")]


def test_render_known_figures(tmp_path):
    write_jsonl(tmp_path / "demo.jsonl", PAIR, MEDIANS, ALONE)
    r = render(tmp_path)
    assert r.returncode == 0, r.stderr
    png = tmp_path / "demo.png"
    assert r.stdout.split() == [str(png)]
    width, height = check_png(png)
    # three measures: three panels in one row (4.4 in each at 100 dpi)
    assert width == 1320 and 400 < height < 700, (width, height)
    assert leftovers(tmp_path) == []


def test_grid_grows_with_the_measures(tmp_path):
    objs = [dict(PAIR, measure=f"measure {i}") for i in range(7)]
    write_jsonl(tmp_path / "demo.jsonl", *objs)
    assert render(tmp_path).returncode == 0
    width, height = check_png(tmp_path / "demo.png")
    assert width == 1320 and height > 1000  # 3 columns, 3 rows


def test_measure_without_anchor_gets_one_bar(tmp_path):
    write_jsonl(tmp_path / "demo.jsonl", ALONE)
    r = render(tmp_path)
    assert r.returncode == 0, r.stderr
    width, _ = check_png(tmp_path / "demo.png", min_kib=5)
    assert width == 800  # one panel: wide enough for the title and the footer
    section, measures = benchplot.load(str(tmp_path / "demo.jsonl"))
    assert section == "demo" and measures[0]["anchor"] is None
    assert measures[0]["ours"]["median"] == 0.21  # from the samples when not given


def test_bars_and_whiskers_drawn(tmp_path, monkeypatch):
    """The drawing itself: a bar per side at its median, whiskers from min to max."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.axes import Axes
    bars = []
    real_bar = Axes.bar

    def spy(self, x, height, *a, **kw):
        bars.append((list(x), list(height), kw.get("yerr")))
        return real_bar(self, x, height, *a, **kw)
    monkeypatch.setattr(Axes, "bar", spy)
    benchplot.draw("demo", benchplot.load(str(write_jsonl(tmp_path / "demo.jsonl", PAIR,
                                                                MEDIANS, ALONE)))[1],
                   str(tmp_path / "demo.png"))
    assert bars[0][1] == [12.6, 14.8]
    lo, hi = bars[0][2]
    assert [round(v, 6) for v in lo] == [0.5, 0.8] and [round(v, 6) for v in hi] == [1.3, 1.4]
    assert bars[1] == ([0, 1], [3.5, 3.8], None)  # medians alone: no whiskers
    assert bars[2][0] == [0] and bars[2][1] == [0.21]


def test_record_api_and_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_OUT", raising=False)
    assert benchplot.record("demo", "m", "ms", "a", [1.0, 2.0]) is None  # no BENCH_OUT: no-op
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    benchplot.record("demo", "commit latency", "ms", "quorum", [2.0, 1.0, 3.0], "async", 1.0)
    benchplot.record("demo", "no anchor", "ms", "quorum", [1.0, float("nan"), 3.0])
    r = subprocess.run([sys.executable, str(BENCHPLOT), "record", "demo", "cli measure", "s",
                        "citus-init", "1,2,3", "upstream", "4", "--ratio", "0.5",
                        "--ratio-of", "ours / theirs"],
                       env=dict(os.environ, BENCH_OUT=str(tmp_path)), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (tmp_path / "demo.jsonl").read_text().splitlines()]
    assert lines[0]["ours"] == {"label": "quorum", "samples": [2.0, 1.0, 3.0], "median": 2.0}
    assert lines[0]["anchor"] == {"label": "async", "median": 1.0}
    assert lines[0]["ratio"] == 2.0 and lines[0]["ratio_of"] == "quorum / async"
    assert lines[1]["anchor"] is None and lines[1]["ratio"] is None
    assert lines[1]["ours"]["samples"] == [1.0, 3.0]  # a non-finite sample is dropped
    assert lines[2]["ratio"] == 0.5 and lines[2]["ratio_of"] == "ours / theirs"
    assert lines[2]["anchor"]["median"] == 4.0 and lines[2]["ours"]["median"] == 2.0
    r = render(tmp_path)
    assert r.returncode == 0, r.stderr
    check_png(tmp_path / "demo.png")


@pytest.mark.parametrize("bad, why", [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in PAIR.items() if k != "ours"}), "'ours' is missing"),
    (json.dumps(dict(PAIR, unit="")), "'unit' must be a non-empty string"),
    (json.dumps(dict(PAIR, section="other")), "section 'other' in the file of section 'demo'"),
    (json.dumps(dict(PAIR, ours={"label": "x"})), "neither samples nor median"),
    (json.dumps(dict(PAIR, ours={"label": "x", "samples": []})), "'ours.samples'"),
    (json.dumps(dict(PAIR, anchor={"label": "y", "samples": [1, "2"]})), "'anchor.samples'"),
    (json.dumps(dict(PAIR, anchor={"label": "y", "median": True})), "'anchor.median'"),
    ('{"section": "demo", "measure": "m", "unit": "s", "ours": {"label": "x", "median": NaN}}',
     "'ours.median' must be a finite number"),
    (json.dumps(dict(PAIR, ratio="fast")), "'ratio' must be a finite number"),
])
def test_malformed_line_is_named_and_nothing_is_written(tmp_path, bad, why):
    path = write_jsonl(tmp_path / "demo.jsonl", PAIR, raw=["", bad, json.dumps(MEDIANS)])
    write_jsonl(tmp_path / "good.jsonl", dict(PAIR, section="good"))
    r = render(tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"{path}:3: " in r.stderr and why in r.stderr, r.stderr
    assert not (tmp_path / "demo.png").exists()
    # the other section is still drawn, and nothing is left half-written
    assert r.stdout.split() == [str(tmp_path / "good.png")]
    check_png(tmp_path / "good.png")
    assert leftovers(tmp_path) == []


def test_bad_file_keeps_an_earlier_png(tmp_path):
    write_jsonl(tmp_path / "demo.jsonl", PAIR)
    assert render(tmp_path).returncode == 0
    before = (tmp_path / "demo.png").read_bytes()
    write_jsonl(tmp_path / "demo.jsonl", PAIR, raw=["{"])
    r = render(tmp_path, "demo")
    assert r.returncode == 1 and f"{tmp_path / 'demo.jsonl'}:2: not JSON" in r.stderr
    assert (tmp_path / "demo.png").read_bytes() == before


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def broken(self, f, **kw):
        f.write(PNG_SIGNATURE + b"half")
        raise OSError("disk full")
    monkeypatch.setattr(Figure, "savefig", broken)
    _, measures = benchplot.load(str(write_jsonl(tmp_path / "demo.jsonl", PAIR)))
    with pytest.raises(OSError, match="disk full"):
        benchplot.draw("demo", measures, str(tmp_path / "demo.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.jsonl"]


def test_missing_named_section_and_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    r = render(tmp_path, "empty", "absent")
    assert r.returncode == 1
    assert f"{tmp_path / 'empty.jsonl'}: no measures recorded" in r.stderr
    assert f"{tmp_path / 'absent.jsonl'}: cannot read" in r.stderr
    r = render(tmp_path / "nowhere")
    assert r.returncode == 2 and "not a directory" in r.stderr
    r = subprocess.run([sys.executable, str(BENCHPLOT), "record", "x"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_record_needs_no_matplotlib(tmp_path):
    """Sections record under any Python 3 (pid1 runs /usr/bin/python3, without the venv)."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.path.insert(0, sys.argv[1]); "
            "import benchplot; benchplot.record('demo', 'm', 's', 'a', [1.0], out_dir=sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(LIB), str(tmp_path)], check=True)
    assert json.loads((tmp_path / "demo.jsonl").read_text())["ours"]["median"] == 1.0
