#!/usr/bin/env python3
"""Figures of scripts/bench as JSON lines, and PNG plots of them.

Recording (no third-party module needed, any Python 3): a section calls

    benchplot.record("durability", "commit latency, median", "ms",
                     "quorum", [1.9, 2.0, 2.1], "async", [1.4, 1.5, 1.5])

or, from a shell, `benchplot.py record SECTION MEASURE UNIT OURS_LABEL OURS [ANCHOR_LABEL
ANCHOR] [--ratio R] [--ratio-of TEXT]` (OURS, ANCHOR: comma-separated samples, or one
median). That appends one object to $BENCH_OUT/<section>.jsonl:

    {"section": "durability", "measure": "commit latency, median", "unit": "ms",
     "ours": {"label": "quorum", "samples": [1.9, 2.0, 2.1], "median": 2.0},
     "anchor": {"label": "async", "samples": [...], "median": 1.5} or null,
     "ratio": 1.33 or null, "ratio_of": "quorum / async"}

"samples" is optional (a side may give its median alone); "ratio" defaults to ours / anchor
of the medians; "ratio_of" says which way the ratio is taken. Without BENCH_OUT, record does
nothing, so a section run on its own only prints.

Rendering (matplotlib, Agg backend): `benchplot.py render DIR [SECTION...]` writes
DIR/<section>.png for every DIR/<section>.jsonl (or the named ones): one panel per measure
with a bar per side (the median; whiskers from the smallest to the largest sample when there
are several), the ratio above the pair; a measure without an anchor gets one bar. Every file
is checked whole before its plot is drawn; a malformed line is reported as FILE:LINE: why,
no PNG is written for that file (each PNG is written to a temporary file, then renamed) and
the exit status is 1. Prints the path of each PNG written.
"""
import json
import math
import os
import statistics
import sys
import tempfile
import textwrap
from datetime import datetime, timezone

OURS_COLOR = "#1f77b4"
ANCHOR_COLOR = "#9a9a9a"


class BenchPlotError(Exception):
    """A figure that cannot be recorded or a file that cannot be rendered."""


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def side(label, values):
    """{"label", "samples"?, "median"} from a list of samples or one median (None: no side)."""
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        samples = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not samples:
            return None
        return {"label": str(label), "samples": samples, "median": statistics.median(samples)}
    if not math.isfinite(values):
        return None
    return {"label": str(label), "median": float(values)}


def figure(section, measure, unit, ours_label, ours, anchor_label=None, anchor=None,
           ratio=None, ratio_of=None):
    """The object record() writes (see the module's doc)."""
    o = side(ours_label, ours)
    if o is None:
        raise BenchPlotError(f"{section}/{measure}: no value for {ours_label}")
    a = side(anchor_label, anchor) if anchor_label is not None else None
    if ratio is None and a is not None and a["median"] != 0:
        ratio = o["median"] / a["median"]
    if a is not None and not ratio_of:
        ratio_of = f"{o['label']} / {a['label']}"
    if ratio is not None and not math.isfinite(ratio):
        ratio = None
    return {"section": section, "measure": measure, "unit": unit, "ours": o, "anchor": a,
            "ratio": ratio, "ratio_of": ratio_of if ratio is not None else None}


def record(section, measure, unit, ours_label, ours, anchor_label=None, anchor=None,
           ratio=None, ratio_of=None, out_dir=None):
    """Append one measure to OUT/<section>.jsonl (OUT: out_dir or $BENCH_OUT; neither: a
    no-op). Never raises for a figure that cannot be drawn: it says so on stderr, since a
    benchmark's printed figures matter more than its plot."""
    out_dir = out_dir or os.environ.get("BENCH_OUT")
    if not out_dir:
        return None
    try:
        obj = figure(section, measure, unit, ours_label, ours, anchor_label, anchor, ratio,
                     ratio_of)
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, f"{section}.jsonl"), "a") as f:
            f.write(json.dumps(obj, allow_nan=False) + "\n")
        return obj
    except (BenchPlotError, OSError, ValueError, TypeError) as e:
        print(f"benchplot: not recorded: {e}", file=sys.stderr)
        return None


def _check_side(obj, key, where, required):
    s = obj.get(key)
    if s is None:
        if required:
            raise BenchPlotError(f"{where}: '{key}' is missing")
        return None
    if not isinstance(s, dict):
        raise BenchPlotError(f"{where}: '{key}' must be an object with label and samples or median")
    if not isinstance(s.get("label"), str) or not s["label"]:
        raise BenchPlotError(f"{where}: '{key}.label' must be a non-empty string")
    samples = s.get("samples")
    if samples is not None:
        if not isinstance(samples, list) or not samples or not all(map(_finite, samples)):
            raise BenchPlotError(f"{where}: '{key}.samples' must be a non-empty list of finite numbers")
    med = s.get("median")
    if med is None:
        if samples is None:
            raise BenchPlotError(f"{where}: '{key}' has neither samples nor median")
        med = statistics.median(samples)
    elif not _finite(med):
        raise BenchPlotError(f"{where}: '{key}.median' must be a finite number")
    return {"label": s["label"], "samples": samples, "median": float(med)}


def load(path):
    """The measures of one .jsonl file, checked; BenchPlotError names FILE:LINE."""
    section = os.path.basename(path)[:-len(".jsonl")]
    measures = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BenchPlotError(f"{path}: cannot read: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise BenchPlotError(f"{where}: not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise BenchPlotError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        for key in ("section", "measure", "unit"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise BenchPlotError(f"{where}: '{key}' must be a non-empty string")
        if obj["section"] != section:
            raise BenchPlotError(f"{where}: section '{obj['section']}' in the file of section '{section}'")
        ratio = obj.get("ratio")
        if ratio is not None and not _finite(ratio):
            raise BenchPlotError(f"{where}: 'ratio' must be a finite number or null")
        ratio_of = obj.get("ratio_of")
        if ratio_of is not None and not isinstance(ratio_of, str):
            raise BenchPlotError(f"{where}: 'ratio_of' must be a string or null")
        measures.append({
            "measure": obj["measure"], "unit": obj["unit"],
            "ours": _check_side(obj, "ours", where, True),
            "anchor": _check_side(obj, "anchor", where, False),
            "ratio": ratio, "ratio_of": ratio_of})
    return section, measures


def _fmt(v):
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _labels(measures, key):
    seen = []
    for m in measures:
        if m[key] and m[key]["label"] not in seen:
            seen.append(m[key]["label"])
    return seen


def draw(section, measures, png):
    """Write the plot of one section's measures to png (through a temporary file)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(measures)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    width = max(4.4 * ncols, 8.0)  # room for the title and the footer under one panel
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.9 * nrows + 1.2), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, measures):
        sides = [(m["ours"], OURS_COLOR)] + ([(m["anchor"], ANCHOR_COLOR)] if m["anchor"] else [])
        xs = list(range(len(sides)))
        heights = [s["median"] for s, _ in sides]
        lo = [s["median"] - min(s["samples"]) if s["samples"] and len(s["samples"]) > 1 else 0
              for s, _ in sides]
        hi = [max(s["samples"]) - s["median"] if s["samples"] and len(s["samples"]) > 1 else 0
              for s, _ in sides]
        ax.bar(xs, heights, width=0.6, color=[c for _, c in sides],
               yerr=[lo, hi] if any(lo) or any(hi) else None, capsize=6,
               error_kw={"elinewidth": 1.2, "ecolor": "#333333"})
        ax.set_xticks(xs)
        ax.set_xticklabels([
            "\n".join(textwrap.wrap(s["label"], 20)) + f"\n{_fmt(s['median'])} {m['unit']}"
            + (f" (n={len(s['samples'])})" if s["samples"] else "")
            for s, _ in sides], fontsize=8.5)
        ax.set_xlim(-1.1, 1.1) if len(sides) == 1 else ax.set_xlim(-0.6, len(sides) - 0.4)
        ax.set_ylabel(m["unit"])
        ax.set_title("\n".join(textwrap.wrap(m["measure"], 42)), fontsize=10)
        tops = [h + e for h, e in zip(heights, hi)]
        bottom = min([0] + [h - e for h, e in zip(heights, lo)])
        top = max([0] + tops)
        span = (top - bottom) or 1.0
        lines = []
        if m["ratio"] is not None and m["anchor"]:
            lines = textwrap.wrap(f"{m['ratio']:.2f}×" + (f"  ({m['ratio_of']})" if m["ratio_of"]
                                                           else ""), 44)
        # room above the bars for the ratio's lines
        ax.set_ylim(bottom, top + (0.12 + 0.1 * max(1, len(lines))) * span)
        if lines:
            ax.text(sum(xs) / len(xs), top + 0.06 * span, "\n".join(lines), ha="center",
                    va="bottom", fontsize=8.5, fontweight="bold")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    ours, anchors = _labels(measures, "ours"), _labels(measures, "anchor")
    title = f"scripts/bench {section}: " + ", ".join(ours)
    if anchors:
        title += " vs " + ", ".join(anchors)
    if len(title) > 8 * width:  # the panels' tick labels name each measure's tools
        title = f"scripts/bench {section}: per measure, ours (blue)" + (
            " vs the anchor (grey)" if anchors else "")
    fig.suptitle(title, fontsize=12)
    footer = ("blue: ours, grey: the anchor doing the same job; bars: medians; whiskers: "
              "smallest to largest sample; ratio as the section prints it; drawn "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    fig.text(0.01, 0.005, "\n".join(textwrap.wrap(footer, int(width * 17))), fontsize=7.5,
             color="#555555", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))

    directory = os.path.dirname(os.path.abspath(png))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(png)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        os.chmod(tmp, 0o644)
        os.replace(tmp, png)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        plt.close(fig)
    return png


def render(directory, sections=None):
    """(PNG paths written, error messages) for the .jsonl files of directory."""
    if sections:
        files = [os.path.join(directory, f"{s}.jsonl") for s in sections]
    else:
        files = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                       if f.endswith(".jsonl"))
    written, errors = [], []
    for path in files:
        try:
            section, measures = load(path)
            if not measures:
                errors.append(f"{path}: no measures recorded")
                continue
            written.append(draw(section, measures, os.path.join(directory, f"{section}.png")))
        except BenchPlotError as e:
            errors.append(str(e))
    return written, errors


def _values(text, what):
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchPlotError(f"{what}: expected numbers separated by commas, got {text!r}") from None
    if not vals:
        raise BenchPlotError(f"{what}: no value")
    return vals[0] if len(vals) == 1 else vals


USAGE = """usage: benchplot.py render DIR [SECTION...]
       benchplot.py record SECTION MEASURE UNIT OURS_LABEL OURS [ANCHOR_LABEL ANCHOR]
                           [--ratio R] [--ratio-of TEXT] [--out DIR]
OURS, ANCHOR: comma-separated samples, or one median. record writes to --out or $BENCH_OUT
(neither: nothing)."""


def main(argv):
    if len(argv) >= 2 and argv[0] == "render":
        directory = argv[1]
        if not os.path.isdir(directory):
            print(f"benchplot: {directory}: not a directory", file=sys.stderr)
            return 2
        written, errors = render(directory, argv[2:])
        for p in written:
            print(p)
        for e in errors:
            print(f"benchplot: error: {e}", file=sys.stderr)
        if not written and not errors:
            print(f"benchplot: no figures recorded in {directory}", file=sys.stderr)
        return 1 if errors else 0
    if argv and argv[0] == "record":
        args, opts = [], {"--ratio": None, "--ratio-of": None, "--out": None}
        it = iter(argv[1:])
        for a in it:
            if a in opts:
                opts[a] = next(it, None)
                if opts[a] is None:
                    print(f"benchplot: {a} needs a value\n{USAGE}", file=sys.stderr)
                    return 2
            else:
                args.append(a)
        if len(args) not in (5, 7):
            print(USAGE, file=sys.stderr)
            return 2
        try:
            ours = _values(args[4], "OURS")
            anchor = _values(args[6], "ANCHOR") if len(args) == 7 else None
            ratio = float(opts["--ratio"]) if opts["--ratio"] is not None else None
            out_dir = opts["--out"] or os.environ.get("BENCH_OUT")
            if not out_dir:
                return 0
            obj = figure(args[0], args[1], args[2], args[3], ours,
                         args[5] if len(args) == 7 else None, anchor, ratio, opts["--ratio-of"])
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, f"{args[0]}.jsonl"), "a") as f:
                f.write(json.dumps(obj, allow_nan=False) + "\n")
        except (BenchPlotError, ValueError, OSError) as e:
            print(f"benchplot: {e}", file=sys.stderr)
            return 1
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
