"""The data a rollback would drop, counted before anyone says yes.

Which tables and columns a downgrade removes is learnt on a scratch database beside the
target (an empty copy of the schema migrated to the same heads, then downgraded), never
by rehearsing on the target itself, where a downgrade could take locks. The rows and
values are then counted on the target.
"""

from __future__ import annotations

import os
from typing import Any

from toolkit import connection as db
from toolkit.urls import with_database

COLUMNS_SQL = """
SELECT c.relname, a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname <> 'alembic_version'
"""


def _shape(url: str) -> set[tuple[str, str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {(r[0], r[1]) for r in conn.execute(COLUMNS_SQL)}


def data_at_risk(target: db.Target, alembic_target: str, heads: tuple[str, ...]) -> dict[str, Any]:
    """{"tables": [{table, rows}], "columns": [{table, column, values}]} or {"unknown": why}."""
    import psycopg

    from toolkit.connection import Target
    from toolkit.migrate import RunOptions, run

    scratch = f"venuedb_risk_{os.getpid()}"
    admin = with_database(target.url, "postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{scratch}"')
    except psycopg.Error as exc:
        return {
            "unknown": f"cannot create a scratch database to plan with: {str(exc).splitlines()[0]}"
        }
    try:
        url = with_database(target.url, scratch)
        options = RunOptions(actor="risk")
        for head in heads:
            run(Target(url, "scratch"), "upgrade", head, options)
        before = _shape(url)
        run(Target(url, "scratch"), "downgrade", alembic_target, options)
        after = _shape(url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    dropped_tables = sorted({t for t, _ in before} - {t for t, _ in after})
    dropped_columns = sorted((t, c) for t, c in before - after if t not in dropped_tables)
    out: dict[str, Any] = {"tables": [], "columns": []}
    with db.connect(target, purpose="data at risk") as conn:
        for table in dropped_tables:
            rows = conn.execute(f'SELECT count(*) FROM public."{table}"').fetchone()[0]
            out["tables"].append({"table": table, "rows": int(rows)})
        for table, column in dropped_columns:
            values = conn.execute(f'SELECT count("{column}") FROM public."{table}"').fetchone()[0]
            out["columns"].append({"table": table, "column": column, "values": int(values)})
    return out


def describe(risk: dict[str, Any]) -> list[str]:
    if "unknown" in risk:
        return [f"data at risk: unknown ({risk['unknown']})"]
    lines = [f"table {t['table']}: {t['rows']:,} rows dropped" for t in risk["tables"]]
    lines += [
        f"column {c['table']}.{c['column']}: {c['values']:,} values dropped"
        for c in risk["columns"]
    ]
    return lines or ["no table or column holding data is dropped"]
