"""current_heads: the heads alembic_version records, read inside the caller's transaction
without ending it, from a psycopg connection (every caller in the toolkit) or a
SQLAlchemy one (through Alembic's MigrationContext.get_current_heads)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from toolkit.engine import revisions as revs
from toolkit.engine.migrate import current_heads
from toolkit.server import connection as db
from toolkit.server.connection import Target


@contextmanager
def _psycopg(url: str) -> Iterator[Any]:
    """A psycopg connection in an implicit transaction (autocommit off)."""
    with psycopg.connect(url) as conn:
        yield conn


@contextmanager
def _psycopg_transaction_block(url: str) -> Iterator[Any]:
    """An autocommit psycopg connection inside `with conn.transaction()`, where an explicit
    rollback by anyone else raises."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        yield conn


@contextmanager
def _sqlalchemy(url: str) -> Iterator[Any]:
    """A SQLAlchemy connection; its first statement begins a transaction."""
    from sqlalchemy import text

    engine = db.engine(Target(url, "tests"))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            yield conn
    finally:
        engine.dispose()


Connect = Callable[[str], Any]
KINDS = pytest.mark.parametrize(
    "connect", [_psycopg, _psycopg_transaction_block, _sqlalchemy], ids=lambda f: f.__name__
)


def _execute(conn: Any, sql: str) -> Any:
    if hasattr(conn, "exec_driver_sql"):
        return conn.exec_driver_sql(sql)
    return conn.execute(sql)


def _in_transaction(conn: Any) -> bool:
    if hasattr(conn, "exec_driver_sql"):
        return bool(conn.in_transaction())
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


@KINDS
def test_no_heads_before_the_first_apply(empty_db_url: str, connect: Connect) -> None:
    with connect(empty_db_url) as conn:
        assert _execute(conn, "SELECT to_regclass('alembic_version')").fetchone()[0] is None
        assert current_heads(conn) == ()


def _recorded(url: str) -> tuple[str, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
    return tuple(r[0] for r in rows)


@KINDS
def test_every_branch_head_sorted(db_url: str, connect: Connect) -> None:
    expected = _recorded(db_url)
    assert len(expected) >= 2, "a fully migrated database has a head per branch"
    assert set(expected) <= set(revs.script_directory().get_heads())
    with connect(db_url) as conn:
        assert current_heads(conn) == expected


@KINDS
def test_the_callers_open_transaction_survives(db_url: str, connect: Connect) -> None:
    first, *others = _recorded(db_url)
    with connect(db_url) as conn:
        # Uncommitted work of the caller's: a table that lives until its transaction ends
        # (a commit or a rollback drops it), and one branch head taken out of alembic_version.
        _execute(conn, "CREATE TEMP TABLE callers_work (x int) ON COMMIT DROP")
        _execute(conn, f"DELETE FROM alembic_version WHERE version_num = '{first}'")
        # Read in the caller's transaction: its uncommitted delete is seen...
        assert current_heads(conn) == tuple(others)
        # ...and the transaction is still the caller's, with its work, open.
        assert not conn.closed
        assert _in_transaction(conn)
        assert _execute(conn, "SELECT to_regclass('pg_temp.callers_work')").fetchone()[0]
        assert current_heads(conn) == tuple(others)
