"""Where the project's files live (alembic.ini, migrations/, sql/, runbooks/, monitoring/,
.sqlfluff), and where the embedded server keeps its data.

The project directory is the first of:
1. $VENUEDB_PROJECT_DIR (`venuedb --project-dir` sets it; $VENUEDB_HOME is its older name);
2. the checkout the package runs from (an editable install or a source tree): alembic.ini
   next to toolkit/;
3. the copy an installed wheel carries in toolkit/project_files/ (setup.py puts it there).
None of them: ProjectNotFound (exit 2), naming VENUEDB_PROJECT_DIR.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.read_once import read_once

PROJECT_DIR_VARIABLE = "VENUEDB_PROJECT_DIR"
# The name VENUEDB_PROJECT_DIR replaced; still read, after it.
LEGACY_PROJECT_DIR_VARIABLE = "VENUEDB_HOME"
STATE_DIR_VARIABLE = "VENUEDB_STATE_DIR"

PACKAGE_DIR = Path(__file__).resolve().parent
# Where the checkout is when the package runs from one (its parent directory).
CHECKOUT_DIR = PACKAGE_DIR.parent
# Where a wheel carries the project files.
BUNDLED_DIR = PACKAGE_DIR / "project_files"


class ProjectNotFound(BadInput):
    """No directory holds the project's alembic.ini and migrations/ (exit 2)."""


def is_project(path: Path) -> bool:
    return (path / "alembic.ini").is_file() and (path / "migrations").is_dir()


def _chosen_dir() -> tuple[str, Path] | None:
    """The project directory the environment names, and the variable that names it."""
    for variable in (PROJECT_DIR_VARIABLE, LEGACY_PROJECT_DIR_VARIABLE):
        value = os.environ.get(variable)
        if value:
            return variable, Path(value).expanduser().resolve()
    return None


@read_once
def project_root() -> Path:
    """The directory holding alembic.ini, migrations/ and sql/ (order: the module's doc)."""
    chosen = _chosen_dir()
    if chosen is not None:
        variable, path = chosen
        if not is_project(path):
            # Named on purpose, so a wrong value is an error, never a silent fallback.
            raise ProjectNotFound(
                f"{variable}={path} is not a venuedb project (no alembic.ini and migrations/ "
                f"there): point {PROJECT_DIR_VARIABLE} (or --project-dir) at a venuedb checkout, "
                "or unset it to use the project files installed with venuedb"
            )
        return path
    for candidate in (CHECKOUT_DIR, BUNDLED_DIR):
        if is_project(candidate):
            return candidate
    raise ProjectNotFound(
        "venuedb's project files (alembic.ini, migrations/, sql/) are neither in a checkout "
        f"nor installed with the package ({BUNDLED_DIR}): set {PROJECT_DIR_VARIABLE} (or pass "
        "--project-dir) to a venuedb checkout, or reinstall venuedb from its wheel"
    )


def migrations_dir() -> Path:
    return project_root() / "migrations"


def sql_dir() -> Path:
    return project_root() / "sql"


def alembic_ini() -> Path:
    return project_root() / "alembic.ini"


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """One of the project's TOML files (`what` it is, e.g. "the release list"), or BadInput
    naming it, the path and why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"cannot read {what} {path}: {exc}") from None


def state_dir() -> Path:
    """The embedded server's home: $VENUEDB_STATE_DIR; else .venuedb/ in the project
    directory when it is one chosen ($VENUEDB_PROJECT_DIR) or the checkout (gitignored);
    else, for an installed wheel, whose project files lie read-only in site-packages,
    venuedb/ in the user's state directory ($XDG_STATE_HOME, default ~/.local/state), the
    same whichever directory a command runs from."""
    override = os.environ.get(STATE_DIR_VARIABLE)
    if override:
        return Path(override).expanduser().resolve()
    chosen = _chosen_dir()
    if chosen is not None:
        return chosen[1] / ".venuedb"
    if is_project(CHECKOUT_DIR):
        return CHECKOUT_DIR / ".venuedb"
    return _user_state_home() / "venuedb"


def _user_state_home() -> Path:
    # The XDG base directory spec: a relative $XDG_STATE_HOME is invalid and ignored.
    configured = Path(os.environ.get("XDG_STATE_HOME") or "")
    return configured if configured.is_absolute() else Path.home() / ".local" / "state"


def editable_project_root(what: str) -> Path:
    """project_root() for a command that writes into the project's files (`what` it
    writes): refused for the copy an installed wheel carries, which is not a checkout
    anyone commits from and is overwritten by the next install."""
    root = project_root()
    if root == BUNDLED_DIR:
        raise BadInput(
            f"{what} writes into the project's files, and these are the copies installed "
            f"with venuedb ({root}): run it in a venuedb checkout, or point "
            f"{PROJECT_DIR_VARIABLE} (or --project-dir) at one"
        )
    return root
