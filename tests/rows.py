"""Rows made to order for one table: satisfying every CHECK it should have, or breaking
exactly one. PostgreSQL itself finds them, among a few candidate values per column.

The rules may be the live table's or, for a test that must not trust the live catalog,
the committed snapshot's (migrations/schema_snapshot.json): a rule dropped in production
is still the rule a test tries to break. Foreign keys and triggers are left to the
caller (session_replication_role = replica writes past both)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

_COLUMNS = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typcategory::text,
       a.attnotnull AND d.adbin IS NULL AND a.attidentity = '' AND a.attgenerated = '',
       a.attgenerated <> '',
       CASE WHEN t.typtype = 'e' THEN (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                                       FROM pg_enum e WHERE e.enumtypid = t.oid) END
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_LIVE_CHECKS = """
SELECT conname::text, pg_get_expr(conbin, conrelid) FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'c' ORDER BY conname
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    category: str
    required: bool  # NOT NULL with no default: an INSERT must give it
    generated: bool
    labels: list[str] | None


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def columns(conn: psycopg.Connection[Any], table: str) -> list[Column]:
    return [Column(*row) for row in conn.execute(_COLUMNS, (table,)).fetchall()]


def live_checks(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    """The table's CHECK constraints as the live catalog has them: name -> expression."""
    return dict(conn.execute(_LIVE_CHECKS, (table,)).fetchall())


def check_expression(definition: str) -> str:
    """`CHECK ((x > 0))` (pg_get_constraintdef) -> `(x > 0)`."""
    return definition.removeprefix("CHECK ").removesuffix(" NOT VALID")


def _candidates(column: Column, checks: list[str]) -> list[str]:
    """SQL expressions of the column's type worth trying, boundaries included."""
    cast = f"::{column.type}"
    if column.labels:
        return [literal(v) + cast for v in column.labels]
    if column.type == "uuid":
        # Two fixed values: a check comparing two uuid columns can be made true or false.
        return [f"'00000000-0000-4000-8000-00000000000{i}'::uuid" for i in (1, 2)]
    if column.category == "S":
        mentioned = sorted(
            {m for check in checks for m in re.findall(r"'((?:[^']|'')*)'::", check)}
        )
        return [literal(v) + cast for v in [*mentioned, "mutant", " "]]
    if column.category == "N":
        return [f"{v}{cast}" for v in ("1", "4", "0", "-1", "101")]
    if column.category == "B":
        return ["false", "true"]
    if column.category == "D":
        if column.type == "date":
            return [f"'2031-01-01'{cast}"]
        return [f"'2031-01-01 19:00+00'{cast}", f"'2031-01-01 21:00+00'{cast}"]
    if column.category == "R":
        return [f"'[2031-01-01 19:00+00,2031-01-01 21:00+00)'{cast}"]
    if column.category == "T":
        return [f"'1 hour'{cast}"]
    if column.category == "A" or column.type in ("json", "jsonb"):
        return [f"'{{}}'{cast}"]
    return ["NULL" + cast]


def _mentions(expression: str, column: str) -> bool:
    return ident(column) in expression or (
        re.search(rf'(?<![\w"]){re.escape(column)}(?![\w"])', expression) is not None
    )


def search(
    conn: psycopg.Connection[Any],
    table: str,
    checks: dict[str, str],
    breaking: str | None = None,
    fresh: list[str] | None = None,
    limit: int = 1,
    fill: list[str] | None = None,
) -> tuple[list[str], str] | None:
    """(quoted column names, a SELECT of up to `limit` rows for them) such that every
    expression of `checks` holds (is not false) and `breaking`, when given, is false.
    `fresh` columns get values no other row has (a foreign key's columns: no parent
    has them); `fill` columns are given a value even when nothing requires one. None when
    the table has no column to fill or no candidate row exists."""
    every = [*checks.values(), *([breaking] if breaking else [])]
    fresh = fresh or []
    chosen = [
        c
        for c in columns(conn, table)
        if not c.generated
        and (
            c.required
            or c.name in fresh
            or c.name in (fill or [])
            or any(_mentions(e, c.name) for e in every)
        )
    ]
    sources, names = [], []
    for i, column in enumerate(chosen):
        if column.name in fresh:
            values = [
                "gen_random_uuid()"
                if column.type == "uuid"
                else literal("fresh") + f"::{column.type}"
            ]
        else:
            values = _candidates(column, every)
        rows = ", ".join(f"({v})" for v in values)
        sources.append(f"(VALUES {rows}) AS v{i}({ident(column.name)})")
        names.append(ident(column.name))
    if not sources:
        return None
    conditions = [f"({e}) IS NOT FALSE" for e in checks.values()]
    if breaking is not None:
        conditions.append(f"({breaking}) IS FALSE")
    select = (
        f"SELECT {', '.join(names)} FROM {' CROSS JOIN '.join(sources)}"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + f" LIMIT {limit}"
    )
    if conn.execute(f"SELECT count(*) FROM ({select}) found").fetchone() == (0,):
        return None
    return names, select


def fetch(
    conn: psycopg.Connection[Any], names: list[str], select: str
) -> list[dict[str, str | None]]:
    """The rows of `select` (from search), each column as text: name -> value."""
    texts = ", ".join(f"{n}::text" for n in names)
    found = conn.execute(f"SELECT {texts} FROM ({select}) s").fetchall()
    return [dict(zip(names, row, strict=True)) for row in found]


def insert(conn: psycopg.Connection[Any], table: str, row: dict[str, str | None]) -> None:
    """INSERT one row given as text values (fetch), each cast to its column's type."""
    types = {ident(c.name): c.type for c in columns(conn, table)}
    names = list(row)
    values = ", ".join(f"%s::{types[n]}" for n in names)
    conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}) OVERRIDING SYSTEM VALUE VALUES ({values})",
        list(row.values()),
    )
