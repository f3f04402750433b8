"""Install SQL files from sql/ inside an Alembic revision.

Revisions stay thin: they name the exact file they install (a released file is
never edited; a new version is a new file), and this module executes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from toolkit.paths import sql_dir


def sql_path(relative: str) -> Path:
    path = sql_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {relative!r} not found under {sql_dir()}")
    return path


def read_sql(relative: str) -> str:
    return sql_path(relative).read_text(encoding="utf-8")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def execute_sql(sql: str) -> None:
    """Run SQL text (several statements, dollar-quoted bodies) in the revision's transaction.

    Online, the text goes straight to psycopg without parameters so that `%` and
    `:name` inside PL/pgSQL bodies are left alone. Offline (`--sql`), it is emitted
    verbatim into the script.
    """
    from alembic import context, op

    if context.is_offline_mode():
        context.get_context().impl.static_output(sql.rstrip() + "\n")
        return
    driver_connection = op.get_bind().connection.driver_connection
    driver_connection.execute(sql)


def install_sql_file(relative: str) -> None:
    """Execute sql/<relative> inside the current revision."""
    execute_sql(read_sql(relative))
