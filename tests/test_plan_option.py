"""`--plan` on every command that changes a database: it prints what would be done, as a
JSON document with "plan" under --json, exits 0, and changes nothing: the catalog,
alembic_version and the rows of every table (the toolkit's records included) are the
same before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import catalog_diff, row_counts
from tests.test_backfill import declare_backfill
from toolkit.engine.migrate import RunOptions, current_heads, run
from toolkit.integrity import catalog
from toolkit.server.connection import Target

SCHEMAS = ("public", "auth", "venuedb")


def _state(url: str) -> tuple[dict[str, dict[str, str]], tuple[str, ...], dict[str, int]]:
    with psycopg.connect(url) as conn:
        objects, heads = catalog.take(conn), current_heads(conn)
    return objects, heads, row_counts(url, SCHEMAS)


def _planned(url: str, *args: str) -> dict[str, Any]:
    """`venuedb ARGS --plan --json` on `url`: a plan document, nothing changed; exit 0 and
    ok when the command would go ahead, else exit 1 and would_refuse."""
    before = _state(url)
    result = invoke(*args, "--plan", "--json")
    document = as_json(result)
    expected = (1, "would_refuse") if document.get("would_refuse") else (0, "ok")
    assert (result.exit_code, document["status"]) == expected, result.output
    after = _state(url)
    assert after[0] == before[0], catalog_diff(before[0], after[0])
    assert after[1:] == before[1:]
    # "plan": true, or (rollout, which had --plan first) the list of its steps
    assert document["plan"]
    return document


@pytest.fixture
def bar_baseline_url(empty_db_url: str) -> str:
    run(Target(empty_db_url, "tests"), "upgrade", "bar-baseline", RunOptions(actor="tests"))
    return empty_db_url


def test_apply_plan_lists_the_pending_revisions_in_order(bar_baseline_url: str) -> None:
    doc = _planned(bar_baseline_url, "apply", "mode-switching", "--database-url", bar_baseline_url)
    status = as_json(invoke("status", "--database-url", bar_baseline_url, "--json"))
    pending = [p["revision"] for p in status["pending"] if p["release"] == "mode-switching"]
    assert [r["revision"] for r in doc["planned"]] == pending
    assert all(r["lock_notes"] for r in doc["planned"])
    notes = {r["revision"]: r["lock_notes"] for r in doc["planned"]}
    assert any("CONCURRENTLY" in n for n in notes["bar_006"])  # RESUMABLE: built online
    assert doc["lint"]["revisions"] == pending and doc["would_refuse"] == []
    person = invoke("apply", "mode-switching", "--plan", "--database-url", bar_baseline_url)
    assert person.exit_code == 0 and "bar_002" in person.stdout and "--plan" in person.stdout


def test_apply_plan_at_the_heads_plans_nothing(db_url: str) -> None:
    doc = _planned(db_url, "apply", "--database-url", db_url)
    assert doc["planned"] == []


def test_apply_plan_is_refused_with_sql_or_a_rehearsal(db_url: str) -> None:
    for other in ("--sql", "--rehearse"):
        result = invoke("apply", "--plan", other, "--database-url", db_url)
        assert result.exit_code == 2 and "--plan" in result.stderr


def test_rollback_plan(db_url: str) -> None:
    doc = _planned(db_url, "rollback", "bar-distribution-keys", "--database-url", db_url)
    assert [r["revision"] for r in doc["planned"]] == ["bar_019", "bar_018"]


def test_rollout_plan(bar_baseline_url: str) -> None:
    doc = _planned(
        bar_baseline_url, "rollout", "mode-switching", "--database-url", bar_baseline_url
    )
    assert doc["release"] == "mode-switching"
    assert any("apply bar_002" in step for step in doc["plan"])


ROWS = 250
SETUP = f"""
CREATE TABLE plan_items (id bigint PRIMARY KEY, value int NOT NULL, doubled int);
INSERT INTO plan_items (id, value) SELECT g, g FROM generate_series(1, {ROWS}) g;
CREATE FUNCTION plan_double(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    UPDATE plan_items SET doubled = value * 2 WHERE id > coalesce(p_from, -1) AND id <= p_to;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
"""
REGISTRY = """
[[backfill]]
name = "plan_double"
table = "plan_items"
key = "id"
function = "plan_double"
todo = "doubled IS NULL"
description = "double every value"
"""


@pytest.fixture
def backfill_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    declare_backfill(db_url, REGISTRY, SETUP, tmp_path, monkeypatch)
    return db_url


def test_backfill_run_plan_counts_rows_and_batches(backfill_url: str) -> None:
    doc = _planned(
        backfill_url,
        "backfill",
        "run",
        "plan_double",
        "--batch-size",
        "100",
        "--sleep",
        "50ms",
        "--database-url",
        backfill_url,
    )
    assert (doc["remaining"], doc["rows_planned"], doc["batches"]) == (ROWS, ROWS, 3)
    assert doc["starts"] == "at the first key" and doc["state"] == "not started"
    assert doc["sleep_seconds_total"] == pytest.approx(0.1)


def test_backfill_resume_plan_starts_after_the_last_batch(backfill_url: str) -> None:
    args = ("plan_double", "--batch-size", "100", "--database-url", backfill_url)
    partial = invoke("backfill", "run", *args, "--max-rows", "100", "--json")
    assert partial.exit_code == 0, partial.output
    doc = _planned(backfill_url, "backfill", "resume", *args)
    assert (doc["remaining"], doc["batches"]) == (ROWS - 100, 2)
    assert doc["starts"].startswith("after key 100")


def test_restore_plan_summarises_the_dump_and_checks_the_target(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    made = invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json")
    assert made.exit_code == 0, made.output
    dump = as_json(made)["path"]

    into_empty = _planned(empty_db_url, "restore", dump, "--target-url", empty_db_url)
    assert into_empty["objects"] == as_json(made)["objects"]
    assert into_empty["by_type"]["TABLE"] > 0 and into_empty["by_type"]["TABLE DATA"] > 0
    assert into_empty["target_empty"] and into_empty["would_refuse"] == []

    into_full = _planned(db_url, "restore", dump, "--target-url", db_url)
    assert not into_full["target_empty"] and "--force" in into_full["would_refuse"][0]
    forced = _planned(db_url, "restore", dump, "--target-url", db_url, "--force")
    assert forced["would_drop_first"] and forced["would_refuse"] == []
