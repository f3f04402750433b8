"""Every revision up, down and up again, on a database that holds rows.

Walks the revisions in apply order. For each: upgrade to it, downgrade to before it,
upgrade again. The downgrade must leave the schema exactly as it was before the
revision (no trace), the second upgrade must rebuild exactly what the first built,
and rows in tables that existed before the revision must survive. After each
revision the rows in tests/data/rows/<revision>.sql (if any) are loaded, so every
later revision migrates a database that holds data.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import DATA, catalog_diff, load_sql, row_counts
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import RunOptions, run
from toolkit.integrity import catalog as snapshot
from toolkit.server.connection import Target

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


def _snapshot(url: str) -> dict:
    # Extensions are database-wide and shared: revisions create them when missing and
    # never drop them, so they are not part of what a downgrade must undo. Nor are the
    # roles (cluster-wide, never dropped) and schema public's USAGE for them: core_001
    # grants it and its (released) downgrade keeps it.
    with psycopg.connect(url) as conn:
        objects = snapshot.take(conn)
    objects.pop("extension", None)
    objects.pop("role", None)
    objects.get("schema", {}).pop("public", None)
    return objects


def _before(step: revs.PlannedRevision) -> str:
    script_rev = revs.script_directory().get_revision(step.revision)
    down = script_rev.down_revision
    return down if isinstance(down, str) else f"{step.branch}@base"


def test_every_revision_up_down_up_with_data(empty_db_url: str) -> None:
    target = Target(empty_db_url, "tests")
    options = RunOptions(actor="tests")
    loaded = 0
    for step in revs.all_steps():
        schema_before, rows_before = _snapshot(empty_db_url), row_counts(empty_db_url)

        run(target, "upgrade", step.revision, options)
        schema_up = _snapshot(empty_db_url)
        assert schema_up != schema_before, f"{step.revision} changed nothing"

        run(target, "downgrade", _before(step), options)
        schema_down = _snapshot(empty_db_url)
        assert schema_down == schema_before, (
            f"{step.revision} downgrade left a trace:\n{catalog_diff(schema_before, schema_down)}"
        )
        assert row_counts(empty_db_url) == rows_before, f"{step.revision} down lost rows"

        run(target, "upgrade", step.revision, options)
        schema_again = _snapshot(empty_db_url)
        assert schema_again == schema_up, (
            f"{step.revision} re-upgrade differs:\n{catalog_diff(schema_up, schema_again)}"
        )
        rows_after = row_counts(empty_db_url)
        for table, count in rows_before.items():
            assert rows_after[table] == count, f"{step.revision} changed row count of {table}"

        rows_file = DATA / "rows" / f"{step.revision}.sql"
        if rows_file.exists():
            load_sql(empty_db_url, rows_file)
            loaded += 1
    assert loaded >= 3, "the baselines must come with rows"
    assert sum(row_counts(empty_db_url).values()) > 100
