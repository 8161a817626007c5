"""Dockerfile.citus kept honest without a Docker engine.

What a broken image would get wrong, checked against the repository itself: the pinned
versions drift from versions.env (what the tests run); ENTRYPOINT points somewhere meson does
not install citus-init; its modules are not copied where citus-init looks for them; the
runtime stage lacks a package for a library citus-init or its module links;
build tools leak into the final image; the build context drags local state along.
"""

import fnmatch
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import dockerparse
from conftest import DOCKERFILE

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_PINS = ("PATRONI_VERSION", "PSYCOPG2_VERSION", "IMAGE_PG_MAJOR", "CITUS_VERSION",
                 "POSTGRES_EXPORTER_VERSION")

# Packages the runtime stage may rely on without naming them, and why.
BASE_PROVIDED = {
    "libc6": "the C library: essential in every Debian image, postgres:16-bookworm included",
}
# Shared objects that belong to no package a Dockerfile installs.
KERNEL_OR_LOADER = re.compile(r"^(linux-vdso|linux-gate)\.so|/ld-linux[^/]*\.so")

BUILD_TOOLS = {"gcc", "g++", "cpp", "clang", "make", "meson", "ninja-build", "pkg-config",
               "pkgconf", "build-essential", "libc6-dev", "binutils", "cmake", "autoconf"}


def read_versions():
    pins = {}
    for line in (ROOT / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            pins[k.strip()] = v.strip().strip("\"'")
    return pins


@pytest.fixture(scope="module")
def versions():
    return read_versions()


def test_pinned_versions_equal_versions_env(df, versions):
    for name in REQUIRED_PINS:
        assert name in versions, f"versions.env lacks {name}"
        assert name in df.global_args, f"Dockerfile.citus has no global ARG {name}"
    for name, default in df.global_args.items():
        if name in versions:
            assert default == versions[name], (
                f"Dockerfile.citus ARG {name}={default} but versions.env says {versions[name]}")


def test_stage_args_do_not_override_pins(df, versions):
    for stage in df.stages:
        for ins in stage.all("ARG"):
            name, _, default = ins.args.partition("=")
            assert not default or name not in versions, (
                f"line {ins.lineno}: stage {stage.name or stage.index} gives {name} its own "
                f"default; declare it without one so the global (versions.env) value applies")
            assert stage.args.get(name) is not None, (
                f"line {ins.lineno}: ARG {name} has no value in stage {stage.name or stage.index}")


def test_tests_run_the_pinned_patroni(versions):
    out = subprocess.run([str(ROOT / ".venv/bin/patroni"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[-1] == versions["PATRONI_VERSION"], out


def test_runtime_installs_the_pinned_postgres_exporter(df, versions):
    """The chart's `exporter` container runs the image's prometheus-postgres-exporter: the
    version the chart's queries are tested with (tests/monitoring runs Debian's package on this
    machine), pinned so that no newer build of another repository (the base's PGDG) wins."""
    pin = versions["POSTGRES_EXPORTER_VERSION"]
    pkgs = dockerparse.apt_installs(df.final)
    assert f"prometheus-postgres-exporter={pin}*" in pkgs, pkgs
    # the build proves the binary is that version; the chart calls it by this name
    runs = [cmd for ins in df.final.all("RUN") for cmd in dockerparse.shell_commands(ins.args, df.final.args)]
    assert any(cmd[:2] == ["prometheus-postgres-exporter", "--version"] for cmd in runs), runs
    # the service the package would start during the build is refused, and the refusal removed
    assert any(cmd[:2] == ["rm", "-f"] and "/usr/sbin/policy-rc.d" in cmd for cmd in runs), runs
    chart = (ROOT / "helm/citus-cluster/templates/statefulset.yaml").read_text()
    assert 'command: ["prometheus-postgres-exporter"]' in chart


def test_tests_run_the_pinned_postgres_exporter(versions):
    """The monitoring suite's exporter (Debian's package here) is the image's version."""
    import shutil
    exe = shutil.which("prometheus-postgres-exporter")
    if exe is None:
        pytest.skip("prometheus-postgres-exporter is not installed here (tests/monitoring installs it)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    version = re.search(r"version (\S+)", out.stdout + out.stderr).group(1)
    assert version == versions["POSTGRES_EXPORTER_VERSION"], out.stdout + out.stderr


def test_every_stage_uses_the_postgres_base(df, versions):
    want = f"postgres:{versions['IMAGE_PG_MAJOR']}-bookworm"
    for stage in df.stages:
        assert stage.base == want, f"stage {stage.name or stage.index} is based on {stage.base}"


def test_runtime_installs_pinned_patroni_in_opt_patroni(df, versions):
    reqs = dockerparse.pip_requirements(df.stage("patroni"))
    names = {re.split(r"[\[=<>]", r)[0]: r for r in reqs}
    assert re.fullmatch(r"patroni(\[[a-z0-9,]+\])?==" + re.escape(versions["PATRONI_VERSION"]),
                        names.get("patroni", "")), reqs
    assert "kubernetes" in names["patroni"], "Patroni needs its kubernetes DCS in the image"
    assert names.get("psycopg2-binary") == f"psycopg2-binary=={versions['PSYCOPG2_VERSION']}"
    copies = [shlex.split(i.args) for i in df.final.all("COPY")]
    assert ["--from=patroni", "/opt/patroni", "/opt/patroni"] in copies
    env = {}
    for ins in df.final.all("ENV"):
        env.update(dockerparse.key_values(ins))
    assert env.get("PATH", "").split(":")[0] == "/opt/patroni/bin", env.get("PATH")


def test_runtime_installs_citus_postgis_partman(df, versions):
    pg, citus = versions["IMAGE_PG_MAJOR"], versions["CITUS_VERSION"]
    pkgs = set(dockerparse.apt_installs(df.final))
    for want in (f"postgresql-{pg}-citus-{citus}", f"postgresql-{pg}-postgis-3",
                 f"postgresql-{pg}-postgis-3-scripts", f"postgresql-{pg}-partman", "python3"):
        assert want in pkgs, f"runtime stage does not install {want}: {sorted(pkgs)}"


def test_final_stage_has_no_build_tools(df):
    pkgs = dockerparse.apt_installs(df.final)
    bad = [p for p in pkgs if p.endswith("-dev") or p in BUILD_TOOLS]
    assert not bad, f"runtime stage installs build tools: {bad}"
    # nothing compiled in the final stage either
    for ins in df.final.all("RUN"):
        for cmd in dockerparse.shell_commands(ins.args, df.final.args):
            assert cmd[0] not in ("meson", "ninja", "gcc", "cc", "make"), (
                f"line {ins.lineno}: runtime stage runs {cmd[0]}")


def test_runtime_stage_shape(df):
    final = df.final
    assert not final.all("USER"), "USER must stay root: citus-init drops privileges itself"
    exposed = set()
    for ins in final.all("EXPOSE"):
        exposed.update(ins.args.split())
    assert {"5432", "8008", "9187", "9188"} <= exposed, exposed
    stop = final.all("STOPSIGNAL")
    assert stop and stop[-1].args == "SIGTERM", "the base image's SIGINT must be replaced"
    labels = {}
    for ins in final.all("LABEL"):
        labels.update(dockerparse.key_values(ins))
    for key in ("title", "description", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, labels
    cmd = final.all("CMD")
    assert cmd and dockerparse.exec_form(cmd[-1]) == [], "CMD must be empty (no args = Patroni)"


def test_dockerignore_keeps_local_state_out():
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p) for p in patterns)

    for path in (".git", "build", "build-asan", "build-fuzz", ".venv", ".cache", "certs"):
        assert ignored(path), f".dockerignore does not exclude {path}"
    for path in ("src", "include", "meson.build", "meson_options.txt", "tests"):
        assert not ignored(path), f".dockerignore excludes {path}, which the build needs"


# ---- the binary: where meson installs it and which packages its libraries come from ----

def installed_path(build, target="citus-init"):
    import json
    installed = json.loads(subprocess.run(["meson", "introspect", "--installed", str(build)],
                                          capture_output=True, text=True, check=True).stdout)
    paths = [dst for src, dst in installed.items() if os.path.basename(src) == target]
    assert len(paths) == 1, f"meson installs {target} {len(paths)} times: {installed}"
    return paths[0]


def test_entrypoint_is_where_meson_installs_citus_init(df, release_build):
    dest = installed_path(release_build)
    entry = dockerparse.exec_form(df.final.all("ENTRYPOINT")[-1])
    assert entry == [dest], f"ENTRYPOINT {entry}, meson installs citus-init at {dest}"
    copies = [shlex.split(i.args) for i in df.final.all("COPY")]
    assert ["--from=build", dest, dest] in copies, (
        f"the runtime stage must copy {dest} from the build stage: {copies}")


@pytest.mark.parametrize("module", ["citus-init-prepare.so", "citus-init-agent.so"])
def test_runtime_stage_has_the_modules_where_citus_init_looks(df, release_build, citus_init,
                                                              module):
    """citus-init loads its modules from the directory meson installs them to (compiled in):
    the runtime stage must copy them there from the build stage."""
    dest = installed_path(release_build, module)
    copies = [shlex.split(i.args) for i in df.final.all("COPY")]
    covering = [c for c in copies if len(c) == 3 and c[0] == "--from=build" and c[1] == c[2]
                and (dest == c[1] or dest.startswith(c[1].rstrip("/") + "/"))]
    assert covering, f"the runtime stage must copy {dest} from the build stage: {copies}"
    module_dir = os.path.dirname(dest).encode()
    assert module_dir + b"\0" in citus_init.read_bytes(), (
        f"citus-init does not look for its modules in {module_dir.decode()}")


def dpkg_owner(path):
    """Debian package owning a file; tries the path as linked and resolved, with and without
    the /usr prefix (merged /usr lists files under either)."""
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates += [p, p[4:] if p.startswith("/usr/") else "/usr" + p]
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    raise AssertionError(f"no Debian package owns {path} ({real})")


def depends_closure(roots):
    """Packages apt installs along with `roots` (Pre-Depends/Depends, recursively), from the
    package database of this Debian 12 machine (the image base is Debian 12 as well)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Pre-Depends}, ${Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    deps = {}
    for line in out.splitlines():
        pkg, _, rest = line.partition("\t")
        names = set()
        for clause in rest.split(","):
            for alt in clause.split("|"):
                name = alt.strip().split(" ")[0].split(":")[0]
                if name:
                    names.add(name)
        deps[pkg] = names
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += deps.get(p, ())
    return seen


def needed_libraries(binary):
    out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def check_libraries_packaged(binary, explicit):
    """Every library `ldd binary` resolves maps to a package: direct dependencies (NEEDED)
    to one the runtime stage installs by name (or the base provides); indirect ones at least
    to a dependency of those. Returns {soname: package}."""
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    direct = needed_libraries(binary)
    allowed_direct = set(explicit) | set(BASE_PROVIDED)
    closure = depends_closure(allowed_direct)
    found, problems = {}, []
    for line in ldd.splitlines():
        line = line.strip()
        if not line or KERNEL_OR_LOADER.search(line):
            continue
        m = re.match(r"(\S+) => (\S+) \(0x[0-9a-f]+\)$", line)
        if not m:
            problems.append(f"ldd cannot resolve: {line}")
            continue
        soname, path = m.groups()
        pkg = dpkg_owner(path)
        found[soname] = pkg
        if soname in direct and pkg not in allowed_direct:
            problems.append(f"{soname} ({path}) comes from {pkg}, which the runtime stage does "
                            f"not install")
        elif pkg not in closure:
            problems.append(f"{soname} ({path}) comes from {pkg}, which no installed package "
                            f"depends on")
    missing = direct - set(found) - {"libc.so.6"}
    if missing:
        problems.append(f"NEEDED but not resolved by ldd: {sorted(missing)}")
    assert not problems, "\n".join(problems)
    return found


# Linked by the modules only: PID 1 never maps them (the preparation child and the agent do).
PREPARE_ONLY = ("libyaml-0.so.2", "libcrypto.so.3")
AGENT_ONLY = ("libcjson.so.1", "libpq.so.5", "libcurl.so.4")


def test_runtime_stage_provides_every_library_citus_init_links(df, citus_init):
    found = check_libraries_packaged(citus_init, dockerparse.apt_installs(df.final))
    assert "libev.so.4" in found, f"citus-init does not link libev? ldd found {sorted(found)}"
    linked = set(PREPARE_ONLY + AGENT_ONLY + ("libssl.so.3",)) & set(found)
    assert not linked, (f"citus-init itself links {sorted(linked)}: that code belongs in a "
                        "module, PID 1 must stay a small supervisor")


def test_runtime_stage_provides_every_library_the_prepare_module_links(df, prepare_module):
    found = check_libraries_packaged(prepare_module, dockerparse.apt_installs(df.final))
    for lib in PREPARE_ONLY:
        assert lib in found, f"the prepare module does not link {lib}? ldd found {sorted(found)}"


def test_runtime_stage_provides_every_library_the_agent_module_links(df, agent_module):
    found = check_libraries_packaged(agent_module, dockerparse.apt_installs(df.final))
    for lib in AGENT_ONLY + ("libev.so.4",):
        assert lib in found, f"the agent module does not link {lib}? ldd found {sorted(found)}"


def test_library_check_catches_a_missing_package(tmp_path):
    """The check itself: a binary linking libcmocka (not in the image) must be refused."""
    src = tmp_path / "probe.c"
    src.write_text("#include <stdarg.h>\n#include <stddef.h>\n#include <setjmp.h>\n"
                   "#include <stdint.h>\n#include <cmocka.h>\n"
                   "int main(void) { print_message(\"x\\n\"); return 0; }\n")
    exe = tmp_path / "probe"
    subprocess.run(["cc", "-o", str(exe), str(src), "-lcmocka"], check=True)
    with pytest.raises(AssertionError, match=r"libcmocka\.so\.0 .* comes from libcmocka0, which "
                                             r"the runtime stage does not install"):
        check_libraries_packaged(exe, ["libev4"])


def test_build_stage_installs_every_meson_dependency(df):
    """Each dependency() of meson.build (and each header probed with find_library) comes from
    a -dev package the build stage installs; optional test-only ones (cmocka) are exempt."""
    text = (ROOT / "meson.build").read_text()
    pcs = set(re.findall(r"dependency\('([^']+)'(?![^)]*required\s*:\s*false)", text))
    pcs -= {"threads"}  # meson's own: the compiler's -pthread, no package
    headers = set(re.findall(r"has_headers\s*:\s*\[([^\]]*)\]", text))
    headers = {h.strip(" '\"") for group in headers for h in group.split(",") if h.strip()}
    installed = set(dockerparse.apt_installs(df.stage("build")))
    problems = []
    for pc in sorted(pcs):
        r = subprocess.run(["pkg-config", "--variable=pcfiledir", pc], capture_output=True, text=True)
        assert r.returncode == 0, f"pkg-config does not know {pc} on this machine"
        pkg = dpkg_owner(f"{r.stdout.strip()}/{pc}.pc")
        if pkg not in installed:
            problems.append(f"meson dependency {pc} comes from {pkg}, not installed in the build stage")
    for h in sorted(headers):
        pkg = dpkg_owner(f"/usr/include/{h}")
        if pkg not in installed:
            problems.append(f"header {h} comes from {pkg}, not installed in the build stage")
    assert pcs and not problems, "\n".join(problems)


def test_apt_package_names_exist_in_debian_12(df, versions):
    """Every package any stage installs is known to apt on this Debian 12 machine: names that
    carry the PostgreSQL major are checked with this machine's major (Debian 12 ships 15;
    the image's PGDG repository has the same names for 16); Citus' own package is not in
    any repository reachable here and is checked by name pattern only."""
    pg = versions["IMAGE_PG_MAJOR"]
    local_major = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))[-1]).parts[-3]
    names = set()
    for stage in df.stages:
        names.update(dockerparse.apt_installs(stage))
    citus = f"postgresql-{pg}-citus-{versions['CITUS_VERSION']}"
    assert citus in names and re.fullmatch(r"postgresql-\d+-citus-\d+\.\d+", citus)
    names.discard(citus)
    probe = sorted({n.replace(f"postgresql-{pg}-", f"postgresql-{local_major}-") for n in names})
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *probe], capture_output=True,
                       text=True)
    known = set(re.findall(r"^Package: (\S+)$", r.stdout, re.M))
    # a version pin (name=version*) is asked as it is written: apt finds that version or nothing
    unknown = {p for p in probe if p.split("=")[0] not in known}
    assert not unknown, f"apt does not know: {sorted(unknown)}\n{r.stderr}"


def test_patroni_extras_exist(df, versions):
    """The extras the image asks for are ones the pinned Patroni declares (pip only warns)."""
    req = next(r for r in dockerparse.pip_requirements(df.stage("patroni")) if r.startswith("patroni["))
    extras = re.match(r"patroni\[([^\]]+)\]", req).group(1).split(",")
    meta = subprocess.run([str(ROOT / ".venv/bin/python"), "-c",
                           "import importlib.metadata as m; print('\\n'.join(m.metadata('patroni').get_all('Provides-Extra')))"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert set(extras) <= set(meta), f"unknown Patroni extras {set(extras) - set(meta)}"
