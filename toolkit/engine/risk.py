"""The data a rollback would drop, counted before anyone says yes.

Which tables and columns a downgrade removes is learnt on a scratch database beside the
target (an empty copy of the schema migrated to the same heads, then downgraded), never
by rehearsing on the target itself, where a downgrade could take locks. The rows and
values are then counted on the target.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from toolkit import progress
from toolkit.server import connection as db
from toolkit.server.urls import masked_first_line, with_database

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


def data_at_risk(
    target: db.Target,
    alembic_target: str,
    heads: tuple[str, ...],
    steps: list[Any] | None = None,
) -> dict[str, Any]:
    """{"tables": [{table, rows}], "columns": [{table, column, values}]} or {"unknown": why}.

    Given the plan's steps (toolkit.engine.revisions.PlannedRevision), the scratch copy is downgraded one
    release at a time, so each dropped table and column also names the release whose
    downgrade drops it ("release"): a cascading rollback says what of each it drops."""
    import psycopg

    from toolkit.engine.migrate import RunOptions, run
    from toolkit.server.connection import Target

    chunks = _chunks(steps or [])
    scratch = f"venuedb_risk_{os.getpid()}"
    admin = with_database(target.url, "postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{scratch}"')
    except psycopg.Error as exc:
        return {
            "unknown": f"cannot create a scratch database to plan with: {masked_first_line(exc)}"
        }
    # One line of progress per migration of the scratch copy; what runs inside them (an
    # empty copy's pre-flights) is not what the person waits for, and stays silent.
    planning = progress.reporter()
    planning.start(len(heads) + len(chunks) + 1, "migrations", "rollback risk: scratch copy")
    try:
        url = with_database(target.url, scratch)
        options = RunOptions(actor="risk")
        for head in heads:
            with progress.configured(progress.Settings()):
                run(Target(url, "scratch"), "upgrade", head, options)
            planning.advance()
        before = _shape(url)
        seeded = _seeded_rows(url, {t for t, _ in before})
        owner: dict[tuple[str, str], str | None] = {}  # the release dropping each column
        table_owner: dict[str, str | None] = {}  # and each table
        shape = before
        for release, stop in chunks:
            with progress.configured(progress.Settings()):
                run(Target(url, "scratch"), "downgrade", stop, options)
            planning.advance()
            now = _shape(url)
            for gone in shape - now:
                owner.setdefault(gone, release)
            for table in {t for t, _ in shape} - {t for t, _ in now}:
                table_owner.setdefault(table, release)
            shape = now
        # The whole plan's target last (nothing left to do when the chunks reached it).
        with progress.configured(progress.Settings()):
            run(Target(url, "scratch"), "downgrade", alembic_target, options)
        planning.advance()
        after = _shape(url)
    finally:
        planning.finish()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    dropped_tables = sorted({t for t, _ in before} - {t for t, _ in after})
    dropped_columns = sorted((t, c) for t, c in before - after if t not in dropped_tables)
    out: dict[str, Any] = {"tables": [], "columns": []}
    counting = progress.tracking(
        "rollback risk: counting", len(dropped_tables) + len(dropped_columns), "objects"
    )
    with db.connect(target, purpose="data at risk") as conn, counting as counted:
        for table in dropped_tables:
            rows = db.scalar(conn, f'SELECT count(*) FROM public."{table}"')
            entry = {"table": table, "rows": int(rows)}
            if table in seeded:
                entry["from_migrations"] = _matching(conn, table, seeded[table], int(rows))
            if steps is not None:
                entry["release"] = table_owner.get(table)
            out["tables"].append(entry)
            counted.advance()
        for table, column in dropped_columns:
            values = db.scalar(conn, f'SELECT count("{column}") FROM public."{table}"')
            entry = {"table": table, "column": column, "values": int(values)}
            if steps is not None:
                entry["release"] = owner.get((table, column))
            out["columns"].append(entry)
            counted.advance()
    return out


def _seeded_rows(url: str, tables: set[str]) -> dict[str, tuple[str, Counter[str]]]:
    """The rows the migrations themselves write (reference data such as a state machine's
    transitions), read on the scratch copy, which holds nothing else: per table, the row
    expression compared and the rows. Date and time columns are left out of the
    comparison: they say when the migration ran, not what it wrote."""
    import psycopg

    seeded: dict[str, tuple[str, Counter[str]]] = {}
    with psycopg.connect(url) as conn:
        for table in sorted(tables):
            if db.scalar(conn, f'SELECT NOT EXISTS (SELECT FROM public."{table}")'):
                continue
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT a.attname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
                    "AND t.typcategory <> 'D' ORDER BY a.attnum",
                    (f'public."{table}"',),
                )
            ]
            row = "ROW(" + ", ".join(f'"{c}"' for c in columns) + ")::text"
            rows = conn.execute(f'SELECT {row} FROM public."{table}"').fetchall()
            seeded[table] = (row, Counter(r[0] for r in rows))
    return seeded


def _matching(conn: Any, table: str, seeded: tuple[str, Counter[str]], rows: int) -> int:
    """How many of the target's rows are the migrations' own, row for row: those are
    rebuilt by applying the release again, so dropping them loses nothing. A big table is
    not compared (then every row counts as data)."""
    if rows > MAX_COMPARED_ROWS:
        return 0
    row, theirs = seeded
    live = Counter(r[0] for r in conn.execute(f'SELECT {row} FROM public."{table}"'))
    return sum((live & theirs).values())


MAX_COMPARED_ROWS = 10_000


def _chunks(steps: list[Any]) -> list[tuple[str | None, str]]:
    """(release, downgrade target) per run of consecutive steps of one release on one
    branch, in plan order: downgrading to each in turn undoes the plan release by release.
    Empty when a step sits on a merge (no single revision to stop at): no attribution."""
    from toolkit.engine import revisions as revs

    chunks: list[tuple[str | None, str]] = []
    script = revs.script_directory()
    for i, step in enumerate(steps):
        following = steps[i + 1] if i + 1 < len(steps) else None
        if following is not None and (following.release, following.branch) == (
            step.release,
            step.branch,
        ):
            continue
        revision = script.get_revision(step.revision)
        down = revision.down_revision if revision is not None else None
        if isinstance(down, tuple | list):
            return []
        chunks.append((step.release, down if down is not None else f"{step.branch}@base"))
    return chunks


def holds_data(risk: dict[str, Any]) -> bool | None:
    """Whether the plan drops rows or values (None: unknown). An empty table or an
    all-NULL column is dropped without losing anything."""
    if "unknown" in risk:
        return None
    return any(lost_rows(t) > 0 for t in risk["tables"]) or any(
        c["values"] > 0 for c in risk["columns"]
    )


def describe(risk: dict[str, Any]) -> list[str]:
    if "unknown" in risk:
        return [f"data at risk: unknown ({risk['unknown']})"]
    lines = [
        f"table {t['table']}: {t['rows']:,} rows dropped"
        + (
            f" ({t['from_migrations']:,} of them written by the migrations themselves, "
            "rebuilt when the release is applied again)"
            if t.get("from_migrations")
            else ""
        )
        for t in risk["tables"]
    ]
    lines += [
        f"column {c['table']}.{c['column']}: {c['values']:,} values dropped"
        for c in risk["columns"]
    ]
    return lines or ["no table or column holding data is dropped"]


def lost_rows(table: dict[str, Any]) -> int:
    return int(table["rows"]) - int(table.get("from_migrations", 0))
