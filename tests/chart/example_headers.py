"""The commands in the header of an examples/*.yaml file.

Each example starts with a comment block; its lines indented as `#   command` are the
shell commands a user runs, in order, from the repository root (a trailing backslash
continues a command on the next line). The chart suite parses them (which secrets they
create, with which keys); the Kubernetes suite runs them as they are written.
"""
import shlex

SEPARATORS = {"|", "||", "&&", ";"}


def header_script(path):
    """The header's commands as shell text, exactly as written (continuations kept)."""
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            if line.startswith("#   "):
                lines.append(line[4:].rstrip("\n"))
    return "\n".join(lines) + ("\n" if lines else "")


def commands(path):
    """Each simple command of the header as a list of words (shell quoting removed, `$(...)`
    and variables left as written)."""
    text = header_script(path).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        words, current = shlex.split(line, comments=False), []
        for w in words:
            if w in SEPARATORS:
                if current:
                    out.append(current)
                current = []
            else:
                current.append(w)
        if current:
            out.append(current)
    return out


def _option(words, *names):
    """Value of an option given as `--opt value`, `--opt=value` or `-n value`."""
    for i, w in enumerate(words):
        for n in names:
            if w == n and i + 1 < len(words):
                return words[i + 1]
            if w.startswith(n + "="):
                return w[len(n) + 1:]
    return None


def created_secrets(path):
    """{secret name: set of keys} of every `kubectl create secret` in the header."""
    out = {}
    for words in commands(path):
        if words[:3] != ["kubectl", "create", "secret"] or len(words) < 5:
            continue
        kind, name = words[3], words[4]
        keys = set()
        if kind == "tls":
            keys = {"tls.crt", "tls.key"}
        for w in words[5:]:
            for flag in ("--from-literal=", "--from-file="):
                if w.startswith(flag):
                    spec = w[len(flag):]
                    key = spec.split("=", 1)[0] if "=" in spec else spec.rsplit("/", 1)[-1]
                    keys.add(key)
        out.setdefault(name, set()).update(keys)
    return out


def namespaces(path):
    """The namespace each namespaced step of the header uses: `kubectl create namespace X`
    gives X; `kubectl create secret`, `helm install` and `helm test` their -n/--namespace
    (None when not given)."""
    out = []
    for words in commands(path):
        if words[:3] == ["kubectl", "create", "namespace"]:
            out.append(words[3])
        elif words[:3] == ["kubectl", "create", "secret"] or words[:2] in (["helm", "install"], ["helm", "test"]):
            out.append(_option(words, "-n", "--namespace"))
    return out


def helm_installs(path):
    """The words of every `helm install` in the header."""
    return [w for w in commands(path) if w[:2] == ["helm", "install"]]
