"""Reading one row, or one value, back from the database in a test.

A query the test expects an answer from fails the test with the query named when it returns
no row, rather than with a TypeError on None a few lines later (and mypy knows the row is
there). A test that expects no row reads `fetchone()` itself and asserts it is None.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from psycopg.abc import Params
from psycopg.abc import QueryNoTemplate as Query

Row = TypeVar("Row")


def one(conn: psycopg.Connection[Row], query: Query, params: Params | None = None) -> Row:
    """The first row of `query`; the test fails if there is none."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r} {params!r}"
    return row


def scalar(
    conn: psycopg.Connection[tuple[Any, ...]], query: Query, params: Params | None = None
) -> Any:
    """The first column of the first row of `query`; the test fails if there is no row."""
    return one(conn, query, params)[0]


def row_at(url: str, query: Query, params: Params | None = None) -> tuple[Any, ...]:
    """The first row of `query`, read on a connection of its own (not through venuedb, whose
    commands may mark what they read); the test fails if there is none."""
    with psycopg.connect(url) as conn:
        return one(conn, query, params)


def rows_at(url: str, query: Query, params: Params | None = None) -> list[tuple[Any, ...]]:
    """Every row of `query`, read on a connection of its own."""
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def dict_of(
    conn: psycopg.Connection[tuple[Any, ...]], query: Query, params: Params | None = None
) -> dict[Any, Any]:
    """The rows of a two-column query as a dict, first column to second."""
    return {key: value for key, value in conn.execute(query, params)}
