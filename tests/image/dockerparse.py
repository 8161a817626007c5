"""A small Dockerfile reader, enough to check Dockerfile.citus without any Docker tooling.

It understands what that file uses: comments, backslash continuations, global and per-stage
ARG (with Docker's scoping: a stage sees a global ARG only when it declares it again), ENV,
FROM ... AS, and the exec (JSON) form of ENTRYPOINT/CMD. Shell commands in RUN are split on
';', '&&', '||' so `apt-get install` and `pip install` lines can be read package by package.
"""

import json
import re
import shlex
from dataclasses import dataclass, field

_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest of the (joined) line
    lineno: int  # first line of the instruction


@dataclass
class Stage:
    index: int
    base: str  # FROM argument, ${...} already substituted
    name: str | None
    instructions: list = field(default_factory=list)
    args: dict = field(default_factory=dict)  # ARGs visible in the stage: name -> value

    def all(self, keyword):
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict  # ARG name -> default (None when declared without one)
    stages: list

    @property
    def final(self):
        return self.stages[-1]

    def stage(self, name):
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage named {name!r}")


def instructions(text):
    """Yield Instructions: comment lines dropped, continuations joined."""
    pending, start = [], None
    for lineno, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments may also sit between continuation lines
        if not stripped and not pending:
            continue
        if start is None:
            start = lineno
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        line = " ".join(p.strip() for p in pending if p.strip())
        pending, first = [], start
        start = None
        keyword, _, rest = line.partition(" ")
        yield Instruction(keyword.upper(), rest.strip(), first)
    if pending:
        raise ValueError(f"line {start}: continuation runs past the end of the file")


def substitute(text, variables):
    """Replace $NAME and ${NAME} by values; unknown names are left as they are."""

    def repl(m):
        name = m.group("braced") or m.group("plain")
        value = variables.get(name)
        return m.group(0) if value is None else value

    return _VAR.sub(repl, text)


def _arg(decl):
    name, sep, default = decl.partition("=")
    return name.strip(), (_unquote(default.strip()) if sep else None)


def _unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse(text):
    global_args, stages = {}, []
    for ins in instructions(text):
        if ins.keyword == "ARG":
            name, default = _arg(ins.args)
            if not stages:
                global_args[name] = default
            else:
                stage = stages[-1]
                # Declared again without a default: the global default applies.
                stage.args[name] = default if default is not None else global_args.get(name)
                stage.instructions.append(ins)
            continue
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = None
            if len(words) >= 3 and words[-2].upper() == "AS":
                name, words = words[-1], words[:-2]
            base = substitute(words[-1], {k: v for k, v in global_args.items() if v is not None})
            stages.append(Stage(len(stages), base, name))
            continue
        if not stages:
            raise ValueError(f"line {ins.lineno}: {ins.keyword} before the first FROM")
        stages[-1].instructions.append(ins)
    return Dockerfile(global_args, stages)


def exec_form(ins):
    """ENTRYPOINT/CMD in exec form -> list of strings (ValueError for the shell form)."""
    try:
        value = json.loads(ins.args)
    except json.JSONDecodeError as e:
        raise ValueError(f"line {ins.lineno}: {ins.keyword} is not in exec (JSON) form") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"line {ins.lineno}: {ins.keyword} is not a JSON list of strings")
    return value


def key_values(ins):
    """ENV/LABEL `k=v k2="v 2"` -> dict (the legacy `ENV k v` form too)."""
    words = shlex.split(ins.args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    out = {}
    for w in words:
        k, _, v = w.partition("=")
        out[k] = v
    return out


def shell_commands(run_args, variables):
    """A RUN line -> list of commands, each a list of words, with ARG values substituted."""
    text = substitute(run_args, variables)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, current = [], []
    for word in lexer:
        if word in (";", "&&", "||", "|", "&"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(word)
    if current:
        commands.append(current)
    return commands


def apt_installs(stage):
    """Every package named by `apt-get install` in the stage's RUN instructions."""
    packages = []
    for ins in stage.all("RUN"):
        for cmd in shell_commands(ins.args, stage.args):
            if len(cmd) >= 2 and cmd[0] in ("apt-get", "apt") and "install" in cmd[1:3]:
                after = cmd[cmd.index("install") + 1:]
                packages += [w for w in after if not w.startswith("-")]
    return packages


def pip_requirements(stage):
    """Every requirement given to `pip install` (any pip path) in the stage."""
    reqs = []
    for ins in stage.all("RUN"):
        for cmd in shell_commands(ins.args, stage.args):
            if cmd and cmd[0].split("/")[-1].startswith("pip") and "install" in cmd[1:2]:
                reqs += [w for w in cmd[2:] if not w.startswith("-")]
    return reqs
