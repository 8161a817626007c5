"""Where things are: the checkout, its venv and build, the run/ directory, PostgreSQL."""
import glob
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
BUILD = Path(os.environ.get("BUILD", ROOT / "build"))
RUN = Path(os.environ.get("LOCALCLUSTER_RUN_DIR", ROOT / "run"))
LAUNCHER = Path(__file__).resolve().parent / "pod-launcher"


def citus_init_binary() -> Path:
    return Path(os.environ.get("CITUS_INIT", BUILD / "citus-init"))


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL (the same rule citus-init applies for PG_BIN_DIR)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("no PostgreSQL found in /usr/lib/postgresql/*/bin")
    return Path(dirs[-1])


def pg_major() -> str:
    return pg_bin_dir().parent.name


def citus_control_file() -> Path:
    return Path(f"/usr/share/postgresql/{pg_major()}/extension/citus.control")


def citus_available() -> bool:
    return citus_control_file().is_file()
