"""`venuedb stamp RELEASE`: a database whose schema was built without Alembic's records is
adopted only when its schema is the release's (or its differences are accepted, with a
reason, recorded); a migrated database, an unknown release and --plan write nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.conftest import catalog_diff
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import load_releases
from toolkit.integrity import catalog
from toolkit.server.connection import Target


def _forget_the_migrations(url: str) -> None:
    """What a database built by hand, restored from a schema dump or migrated by another
    tool looks like: the schema, without alembic_version or the toolkit's records."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE public.alembic_version")
        conn.execute("DROP SCHEMA venuedb CASCADE")


@pytest.fixture
def bar_baseline_url(empty_db_url: str) -> str:
    """The schema of bar-baseline (core and bar_001), built without Alembic's records."""
    run(Target(empty_db_url, "tests"), "upgrade", "bar-baseline", RunOptions(actor="tests"))
    _forget_the_migrations(empty_db_url)
    return empty_db_url


def _state(url: str) -> tuple[dict[str, dict[str, str]], bool, bool]:
    """The catalog, whether alembic_version exists, whether the toolkit's schema does."""
    with psycopg.connect(url) as conn:
        [(version, toolkit)] = conn.execute(
            "SELECT to_regclass('public.alembic_version') IS NOT NULL, "
            "to_regnamespace('venuedb') IS NOT NULL"
        ).fetchall()
        return catalog.take(conn), version, toolkit


def _stamp(url: str, *args: str) -> tuple[int, dict]:
    result = invoke("stamp", *args, "--database-url", url, "--json")
    return result.exit_code, as_json(result)


def _stamp_records(url: str) -> list[tuple[str, str, str, dict]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT target, result, output, to_revisions FROM venuedb.deployments "
            "WHERE command = 'stamp' ORDER BY id"
        ).fetchall()


def test_a_matching_schema_is_stamped_and_then_is_the_migrations(bar_baseline_url: str) -> None:
    code, doc = _stamp(bar_baseline_url, "bar-baseline")
    assert code == 0, doc
    assert doc["status"] == "ok" and doc["matches"] and doc["differences"] == []
    # bar_001 depends on core_001: one row, core applied through it (as an apply leaves it).
    assert doc["heads"] == ["bar_001"]
    assert doc["revisions"] == ["core_001", "bar_001"]

    status = as_json(invoke("status", "--database-url", bar_baseline_url, "--json"))
    states = {r["release"]: r["state"] for r in status["releases"]}
    assert states["core"] == states["bar-baseline"] == "applied"
    assert states["booking-baseline"] == states["mode-switching"] == "pending"
    assert status["last_deployment"]["command"] == "stamp"

    verified = invoke("verify", "--database-url", bar_baseline_url, "--json")
    assert verified.exit_code == 0, verified.stdout
    assert as_json(verified)["verdict"] == "clean"

    [(target, result, output, to_revisions)] = _stamp_records(bar_baseline_url)
    assert (target, result) == ("bar-baseline", "succeeded")
    assert "no difference" in output and "stamped bar_001" in output
    assert to_revisions["bar"] == "bar_001" and to_revisions["booking"] is None
    assert Path(doc["record"]).read_text(encoding="utf-8").count("SUCCESS") == 1

    # From here on it is an ordinary migrated database: the next release applies.
    applied = invoke("apply", "mode-switching", "--database-url", bar_baseline_url, "--json")
    assert applied.exit_code == 0, applied.stdout


def test_a_fully_built_database_is_stamped_with_each_branch_s_last_release(
    db_url: str,
) -> None:
    _forget_the_migrations(db_url)
    last = {r.branch: r.name for r in load_releases()}  # declared in order: the last wins
    code, doc = _stamp(db_url, last["booking"], last["bar"])
    assert code == 0, doc
    assert doc["differences"] == []
    verified = invoke("verify", "--database-url", db_url, "--json")
    assert verified.exit_code == 0, verified.stdout
    # At the heads verify compares with the committed snapshot, and the records with
    # alembic_version: the stamp's record is what it is compared with.
    assert as_json(verified)["drift_reference"].startswith("schema_snapshot.json")


@pytest.mark.parametrize(
    ("change", "kind", "name", "status"),
    [
        (
            "DROP INDEX public.sales_created_at_idx",
            "index",
            "public.sales_created_at_idx",
            "missing",
        ),
        (
            "ALTER TABLE public.bars ADD COLUMN note text",
            "column",
            "public.bars.note",
            "unexpected",
        ),
    ],
)
def test_a_difference_refuses_with_nothing_written(
    bar_baseline_url: str, change: str, kind: str, name: str, status: str
) -> None:
    with psycopg.connect(bar_baseline_url, autocommit=True) as conn:
        conn.execute(change)
    before = _state(bar_baseline_url)
    code, doc = _stamp(bar_baseline_url, "bar-baseline")
    assert code == 3
    assert doc["status"] == "drift" and not doc["matches"]
    assert [(d["kind"], d["name"], d["status"]) for d in doc["differences"]] == [
        (kind, name, status)
    ]
    after = _state(bar_baseline_url)
    assert after == before, catalog_diff(before[0], after[0])
    assert after[1:] == (False, False)  # no alembic_version, not even the toolkit's schema

    person = invoke("stamp", "bar-baseline", "--database-url", bar_baseline_url)
    assert person.exit_code == 3
    assert name in person.stdout and "--accept-differences" in person.stderr


def test_accepted_differences_are_stamped_with_the_reason_recorded(bar_baseline_url: str) -> None:
    with psycopg.connect(bar_baseline_url, autocommit=True) as conn:
        conn.execute("DROP INDEX public.sales_created_at_idx")
    reason = "INC-7: index dropped on purpose, rebuilt by the next release"
    code, doc = _stamp(bar_baseline_url, "bar-baseline", "--accept-differences", reason)
    assert code == 0, doc
    assert doc["accepted_reason"] == reason
    assert [d["name"] for d in doc["differences"]] == ["public.sales_created_at_idx"]
    [(_, result, output, _)] = _stamp_records(bar_baseline_url)
    assert result == "succeeded"
    assert reason in output and "public.sales_created_at_idx" in output
    markdown = Path(doc["record"]).read_text(encoding="utf-8")
    assert f"DIFFERENCES ACCEPTED: {reason}" in markdown
    assert "public.sales_created_at_idx" in markdown
    # verify sees what was accepted as drift: accepting is recorded, not forgotten.
    assert invoke("verify", "--database-url", bar_baseline_url).exit_code == 3


def test_an_empty_reason_is_refused(bar_baseline_url: str) -> None:
    code, doc = _stamp(bar_baseline_url, "bar-baseline", "--accept-differences", " ")
    assert code == 2 and "empty" in doc["error"]
    assert _state(bar_baseline_url)[1:] == (False, False)


def test_an_already_migrated_database_is_refused(db_url: str) -> None:
    before = _state(db_url)
    code, doc = _stamp(db_url, "bar-baseline")
    assert code == 2 and doc["status"] == "bad_input"
    assert "alembic_version rows" in doc["error"] and "venuedb apply" in doc["error"]
    assert _state(db_url) == before


def test_an_unknown_release_lists_the_valid_ones(bar_baseline_url: str) -> None:
    code, doc = _stamp(bar_baseline_url, "bar-basline")
    assert code == 2 and doc["status"] == "bad_input"
    for release in load_releases():
        assert release.name in doc["error"]
    assert _state(bar_baseline_url)[1:] == (False, False)


def test_plan_compares_and_writes_nothing(bar_baseline_url: str) -> None:
    with psycopg.connect(bar_baseline_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.bars ADD COLUMN note text")
    before = _state(bar_baseline_url)
    code, doc = _stamp(bar_baseline_url, "bar-baseline", "--plan")
    # The stamp would refuse (the schema differs): the plan says so, and is not a green.
    assert code == 1, doc
    assert doc["status"] == "would_refuse" and doc["plan"] is True
    assert doc["heads"] == ["bar_001"]
    assert [d["name"] for d in doc["differences"]] == ["public.bars.note"]
    assert doc["would_refuse"] and "--accept-differences" in doc["would_refuse"][0]
    assert _state(bar_baseline_url) == before
    assert before[1:] == (False, False)


def test_a_stamp_whose_backend_dies_midway_leaves_nothing_stamped(
    bar_baseline_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The power cut: the stamp's own session is terminated after Alembic wrote
    alembic_version and before the checksums: its transaction is gone, nothing says the
    database is at bar-baseline, and the record says the stamp failed."""
    from sqlalchemy import text

    from toolkit.engine import checksums

    record_applied = checksums.record_applied
    target = bar_baseline_url.rsplit("/", 1)[1].split("?")[0]

    def die(conn: Any, *args: Any, **kwargs: Any) -> None:
        # Only in the target's stamp: the scratch reference is migrated (and recorded) too.
        if conn.execute(text("SELECT current_database()")).scalar() != target:
            return record_applied(conn, *args, **kwargs)
        conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return None

    monkeypatch.setattr(checksums, "record_applied", die)
    code, doc = _stamp(bar_baseline_url, "bar-baseline")
    assert code == 1 and doc["status"] == "failed", doc
    assert "nothing was stamped" in doc["error"]
    _, version, _ = _state(bar_baseline_url)
    assert not version, "alembic_version outlived the stamp's transaction"
    [(target, result, _, _)] = _stamp_records(bar_baseline_url)
    assert (target, result) == ("bar-baseline", "failed")
    # Nothing half done stands in the way: the stamp runs again, whole.
    monkeypatch.undo()
    assert _stamp(bar_baseline_url, "bar-baseline")[0] == 0
