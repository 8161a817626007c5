#!/usr/bin/env python3
"""Generate the parameter table of helm/citus-cluster/README.md from values.yaml.

Every leaf key of values.yaml (a scalar, a list or an empty map) carries a description in a
comment starting with "# --" right above it; a map with such a comment is documented as a
whole. The table replaces everything between the markers
    <!-- parameters:start -->  and  <!-- parameters:end -->
in the README.

    gen_readme.py            rewrite the table in place
    gen_readme.py --check    exit 1 when the README is out of date or a key is undocumented
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "helm", "citus-cluster")
START, END = "<!-- parameters:start -->", "<!-- parameters:end -->"
REGENERATE = "python3 tests/chart/gen_readme.py"

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?:\s|$)")
DESC_LINE = re.compile(r"^ *# -- ?(?P<text>.*)$")


class Row:
    def __init__(self, path, description, default):
        self.path, self.description, self.default = path, description, default


def lookup(data, path):
    for key in path:
        data = data[key]
    return data


def parse(values_text):
    """Return (rows, undocumented paths) in file order."""
    data = yaml.safe_load(values_text)
    rows, missing = [], []
    stack = []  # (indent, key, is_leaf)
    pending = None
    for line in values_text.splitlines():
        m = DESC_LINE.match(line)
        if m:
            pending = m.group("text").strip()
            continue
        m = KEY_LINE.match(line)
        if not m:
            if line.strip() and not line.lstrip().startswith("#"):
                pending = None  # content (a list item) ends a description
            continue
        indent, key = len(m.group("indent")), m.group("key")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack and stack[-1][2]:
            continue  # inside a documented leaf (list of maps, map documented as a whole)
        path = [k for _, k, _ in stack] + [key]
        value = lookup(data, path)
        is_section = isinstance(value, dict) and value and pending is None
        if not is_section:
            if pending:
                rows.append(Row(".".join(path), pending, value))
            else:
                missing.append(".".join(path))
        stack.append((indent, key, not is_section))
        pending = None
    return rows, missing


def show(value):
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value if value else '""'
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return "`" + text.replace("|", "\\|") + "`"


def table(rows):
    out = ["| Parameter | Description | Default |", "|-----------|-------------|---------|"]
    for r in rows:
        out.append("| `%s` | %s | %s |" % (r.path, r.description.replace("|", "\\|"), show(r.default)))
    return "\n".join(out)


def render(readme, rows):
    if START not in readme or END not in readme:
        raise SystemExit("README.md lacks the %s / %s markers" % (START, END))
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + table(rows) + "\n" + END + tail


def main(argv):
    check = "--check" in argv
    with open(os.path.join(CHART, "values.yaml")) as f:
        rows, missing = parse(f.read())
    readme_path = os.path.join(CHART, "README.md")
    with open(readme_path) as f:
        readme = f.read()
    if missing:
        print("values.yaml keys without a '# --' description: " + ", ".join(missing), file=sys.stderr)
        return 1
    wanted = render(readme, rows)
    if check:
        if wanted != readme:
            print("helm/citus-cluster/README.md parameter table is out of date; regenerate it with: "
                  + REGENERATE, file=sys.stderr)
            return 1
        return 0
    if wanted != readme:
        tmp = readme_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(wanted)
        os.replace(tmp, readme_path)
        print("updated " + os.path.relpath(readme_path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
