"""Where things are: the checkout, its venv and build, the run/ directory, PostgreSQL."""
import glob
import os
from pathlib import Path
from typing import Optional, Tuple

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


CITUS_MODE_VAR = "DEMO_CITUS"
CITUS_MODES = ("auto", "true", "false")


class CitusModeError(ValueError):
    """DEMO_CITUS holds something unknown, or asks for Citus where it is not installed."""


def citus_mode_setting() -> Optional[bool]:
    """DEMO_CITUS: None for auto (the default, also when unset or empty), True or False."""
    raw = os.environ.get(CITUS_MODE_VAR, "")
    value = raw.strip().lower() or "auto"
    if value not in CITUS_MODES:
        raise CitusModeError(f"{CITUS_MODE_VAR}={raw!r} is not understood; expected auto "
                             "(the default: Citus when it is installed), true or false")
    return None if value == "auto" else value == "true"


def citus_mode(requested: Optional[bool] = None) -> Tuple[bool, str]:
    """(Citus on?, why) for a cluster. `requested` is ClusterSpec.citus: True/False force the
    mode; None reads DEMO_CITUS (auto: Citus exactly when the citus extension is installed).
    Asking for Citus where it is not installed is an error."""
    control = citus_control_file()
    if requested is None:
        requested = citus_mode_setting()
        if requested is None:
            if control.is_file():
                return True, f"Citus is installed ({control})"
            return False, f"Citus is not installed ({control} is missing)"
        source = f"{CITUS_MODE_VAR}={str(requested).lower()}"
    else:
        source = f"the cluster spec (citus={requested})"
    if not requested:
        return False, f"Citus disabled by {source}"
    if not control.is_file():
        raise CitusModeError(f"Citus requested by {source}, but it is not installed: {control} "
                             "is missing")
    return True, f"Citus requested by {source} ({control})"
