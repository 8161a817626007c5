"""Shared fixtures: the parsed Dockerfile, and citus-init configured and compiled exactly
as the image's build stage does it (release build, same prefix)."""

import subprocess
from pathlib import Path

import pytest

import dockerparse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.citus"


@pytest.fixture(scope="session")
def df():
    return dockerparse.parse(DOCKERFILE.read_text())


def meson_setup_options(df):
    """Options of the `meson setup` command in the build stage."""
    build = df.stage("build")
    for ins in build.all("RUN"):
        for cmd in dockerparse.shell_commands(ins.args, build.args):
            if cmd[:2] == ["meson", "setup"]:
                return [w for w in cmd[2:] if w.startswith("-")]
    raise AssertionError("the build stage of Dockerfile.citus has no `meson setup`")


@pytest.fixture(scope="session")
def release_build(df, tmp_path_factory):
    """A build directory configured with the build stage's `meson setup` options."""
    opts = meson_setup_options(df)
    assert "--buildtype=release" in opts and any(o.startswith("--prefix=") for o in opts), opts
    build = tmp_path_factory.mktemp("image") / "build"
    setup = subprocess.run(["nice", "-n", "10", "meson", "setup", str(build), str(ROOT), *opts],
                           capture_output=True, text=True)
    assert setup.returncode == 0, f"meson setup {' '.join(opts)} failed:\n{setup.stdout}{setup.stderr}"
    return build


def build_target(build, target):
    r = subprocess.run(["nice", "-n", "10", "ninja", "-C", str(build), target],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"release build of {target} failed:\n{r.stdout[-4000:]}"
    return build / target


@pytest.fixture(scope="session")
def citus_init(release_build):
    """The citus-init binary of that build (compiled once per run)."""
    return build_target(release_build, "citus-init")


@pytest.fixture(scope="session")
def agent_module(release_build):
    """citus-init's agent module (libcurl, libpq, cJSON) of that build."""
    return build_target(release_build, "citus-init-agent.so")


@pytest.fixture(scope="session")
def prepare_module(release_build):
    """citus-init's prepare module (OpenSSL, libyaml) of that build."""
    return build_target(release_build, "citus-init-prepare.so")
