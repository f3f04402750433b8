"""Where the project's files live: migrations, SQL, the embedded server's data."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding alembic.ini and migrations/.

    The package is installed editable (`pip install -e .`), so the checkout is the
    package's parent; VENUEDB_HOME overrides it for unusual layouts.
    """
    override = os.environ.get("VENUEDB_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    return project_root() / "migrations"


def sql_dir() -> Path:
    return project_root() / "sql"


def alembic_ini() -> Path:
    return project_root() / "alembic.ini"


def state_dir() -> Path:
    """The embedded server's home (gitignored)."""
    return project_root() / ".venuedb"
