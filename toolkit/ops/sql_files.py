"""Install SQL files from sql/ inside an Alembic revision.

Revisions stay thin: they name the exact file they install (a released file is
never edited; a new version is a new file), and this module executes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
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
    # None only once the connection is invalidated, and with it the revision's transaction.
    assert driver_connection is not None
    driver_connection.execute(sql)


# Every open `collecting()` list sees each installed file: that is how a revision's SQL files
# are learnt (paths built with f-strings included), by running it, not by reading its source.
_collectors: list[list[str]] = []


@contextmanager
def collecting() -> Iterator[list[str]]:
    """A list that receives the sql/-relative path of every file installed while it is open."""
    found: list[str] = []
    _collectors.append(found)
    try:
        yield found
    finally:
        # By identity: list.remove() compares by equality, and two empty lists are equal.
        _collectors[:] = [c for c in _collectors if c is not found]


def install_sql_file(relative: str) -> None:
    """Execute sql/<relative> inside the current revision."""
    text = read_sql(relative)
    for found in _collectors:
        found.append(relative)
    execute_sql(text)
