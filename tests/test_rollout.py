"""`venuedb rollout`: a release's runbook executed with its evidence kept."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.clihelpers import as_json, invoke, rollback_cascade, rollout
from tests.conftest import DATA, load_sql
from tests.queries import one, scalar
from toolkit.engine.releases import load_releases

ROOT = Path(__file__).resolve().parent.parent


def test_every_release_rolls_out_on_a_database_with_data(empty_db_url: str, tmp_path: Path) -> None:
    loaded = False
    for release in load_releases():
        result = rollout(empty_db_url, release.name, tmp_path)
        assert result.exit_code == 0, result.output
        document = as_json(result)
        assert document["outcome"] == "SUCCESS"
        record = Path(document["record"]).read_text()
        assert f"# {release.name} Deployment Record" in record and "**SUCCESS**" in record
        assert "## Deployment Timeline" in record and "## Monitoring Results" in record
        if not loaded and release.name == "bar-baseline":
            for rows in ("core_001", "booking_001", "bar_001"):
                load_sql(empty_db_url, DATA / "rows" / f"{rows}.sql")
            _spread_over_the_last_week(empty_db_url)
            loaded = True
    with psycopg.connect(empty_db_url) as conn:
        results = conn.execute(
            "SELECT result FROM venuedb.deployments WHERE command = 'rollout'"
        ).fetchall()
    assert results and {r[0] for r in results} == {"succeeded"}
    assert len(list((tmp_path / "backups").glob("*.dump"))) == len(load_releases())
    listed = as_json(invoke("records", "--database-url", empty_db_url, "--json", "--last", "200"))
    assert sum(r["command"] == "rollout" for r in listed["records"]) == len(load_releases())


def _spread_over_the_last_week(url: str) -> None:
    """The rows file creates its week of bookings in one instant, 13 of its 31 confirmed
    (the others pending, cancelled or completed): 42 % confirmed in the last 5 minutes by
    seed 001's formula, critical (< 90 %), which rightly fails a rollout (test below). A
    real week of bookings was made over the week."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE bookings SET created_at = created_at - interval '3 days'")


def _last_rollout_failed(url: str, tmp_path: Path) -> tuple[str, str]:
    """The last rollout of table-combinations is recorded as failed: the error its record in
    the database gives, and its Markdown record (under tmp_path/records)."""
    with psycopg.connect(url) as conn:
        outcome, why = one(
            conn,
            "SELECT result, error FROM venuedb.deployments "
            "WHERE command = 'rollout' ORDER BY id DESC LIMIT 1",
        )
    assert outcome == "failed"
    record = sorted((tmp_path / "records").glob("*table-combinations*.md"))[-1].read_text()
    return why, record


def test_a_critical_post_deploy_check_fails_the_rollout(empty_db_url: str, tmp_path: Path) -> None:
    """Issue 17: the rollout printed SUCCESS and exited 0 with a critical health check."""
    for release in ("core", "booking-baseline"):
        assert rollout(empty_db_url, release, tmp_path).exit_code == 0
    for rows in ("core_001", "booking_001"):
        load_sql(empty_db_url, DATA / "rows" / f"{rows}.sql")
    result = invoke(
        "rollout",
        "table-combinations",
        "--yes",
        "--database-url",
        empty_db_url,
        "--backup-dir",
        str(tmp_path / "backups"),
        "--records-dir",
        str(tmp_path / "records"),
    )
    assert result.exit_code == 1, result.output
    console = result.stdout
    assert "SUCCESS" not in console
    assert "table-combinations: FAILED: post-deploy health checks critical" in console
    assert "confirmation_rate critical, value 41.9355 percent (thresholds: warning < 95, " in (
        console
    )
    assert "The migration itself is applied (booking at booking_004)" in console
    assert "runbooks/table-combinations.md" in console
    assert "venuedb rollback table-combinations --yes" in console
    status = as_json(invoke("status", "--database-url", empty_db_url, "--json"))
    assert status["branches"]["booking"] == "booking_004"  # applied: only the checks failed
    why, record = _last_rollout_failed(empty_db_url, tmp_path)
    assert "confirmation_rate critical, value 41.9355" in why
    assert "**FAILED: post-deploy health checks critical" in record
    assert "| confirmation_rate | critical | 41.93" in record
    assert "When a rollout stops on a critical check" in record

    # Run again: nothing is left to apply, but the checks still decide the outcome.
    again = rollout(empty_db_url, "table-combinations", tmp_path)
    document = as_json(again)
    assert again.exit_code == 1 and document["status"] == "failed"
    assert [c["name"] for c in document["failed_checks"]] == ["confirmation_rate"]
    assert document["outcome"].startswith("FAILED")

    # Healthy again (the bookings spread over their week, as a real week's are: none
    # created in the last 5 minutes): SUCCESS; no data is listed, not fatal.
    _spread_over_the_last_week(empty_db_url)
    fixed = rollout(empty_db_url, "table-combinations", tmp_path)
    document = as_json(fixed)
    assert fixed.exit_code == 0, fixed.output
    assert (document["status"], document["outcome"], document["failed_checks"]) == (
        "ok",
        "SUCCESS",
        [],
    )
    silent = [c["name"] for c in document["checks"] if c["status"] == "no_data"]
    assert "coordinator_error_rate" in silent  # no assignment.* event yet
    record = Path(document["record"]).read_text()
    assert "check coordinator_error_rate no_data" in record and "**SUCCESS**" in record


def test_every_release_points_at_a_runbook_that_says_what_to_do_next() -> None:
    from toolkit.runbook.release_rollout import runbook_for

    for release in load_releases():
        text = (ROOT / runbook_for(release.name)).read_text()
        assert "## When a rollout stops on a critical check" in text, release.name


def test_a_failing_preflight_check_stops_before_anything_changes(
    db_url: str, tmp_path: Path
) -> None:
    down = invoke("rollback", "capacity-overlap", "--cascade", "--yes", "--database-url", db_url)
    assert down.exit_code == 0, down.output
    with psycopg.connect(db_url, autocommit=True) as conn:  # a production that lost it
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT allocations_resource_window_excl")
        restaurant = scalar(
            conn, "INSERT INTO restaurants (name, slug) VALUES ('R', 'r-preflight') RETURNING id"
        )
        for window in (
            "[2031-01-01 19:00+00,2031-01-01 21:00+00)",
            "[2031-01-01 20:00+00,2031-01-01 22:00+00)",
        ):
            conn.execute(
                "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, 'table', '99999999-9999-4999-8999-999999999999', %s)",
                (restaurant, window),
            )
    result = rollout(db_url, "capacity-overlap", tmp_path)
    assert result.exit_code == 1, result.output
    error = as_json(result)["error"]
    assert "pre-flight: 1 overlapping pairs that would violate allocations_no_overlap" in error
    assert "nothing was changed" in error and "runbooks/capacity-overlap.md" in error
    status = as_json(invoke("status", "--database-url", db_url, "--json"))
    assert status["branches"]["booking"] == "booking_004"
    assert not list((tmp_path / "backups").glob("*.dump"))  # stopped before the backup
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT result FROM venuedb.deployments "
            "WHERE command = 'rollout' ORDER BY id DESC LIMIT 1"
        ).fetchone() == ("failed",)


def test_capacity_overlap_record_carries_seed_003_artifacts(db_url: str, tmp_path: Path) -> None:
    down = invoke("rollback", "capacity-overlap", "--cascade", "--yes", "--database-url", db_url)
    assert down.exit_code == 0, down.output
    document = as_json(rollout(db_url, "capacity-overlap", tmp_path))
    record = Path(document["record"]).read_text()
    assert "allocations_no_overlap" in record  # the new constraint's definition
    assert "constraint check timing" in record and "Execution Time" in record
    assert "schema diff" in record and "pre-flight" in record.lower()


def test_a_failed_postcondition_stops_at_the_last_good_revision(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rollout(empty_db_url, "booking-baseline", tmp_path).exit_code == 0
    forced = tmp_path / "postconditions.toml"
    forced.write_text(
        (ROOT / "migrations" / "postconditions.toml").read_text()
        + """
[[check]]
release = "booking-baseline"
kind = "trigger"
object = "booking_table_assignments.booking_assignment_removal_validation"
expect = "absent"
"""
    )
    monkeypatch.setenv("VENUEDB_POSTCONDITIONS_FILE", str(forced))
    result = rollout(empty_db_url, "table-combinations", tmp_path)
    assert result.exit_code == 1
    error = as_json(result)["error"]
    assert "postconditions failed after booking_003" in error
    assert "The database is at booking_003" in error
    status = as_json(invoke("status", "--database-url", empty_db_url, "--json"))
    assert status["branches"]["booking"] == "booking_003"
    why, record = _last_rollout_failed(empty_db_url, tmp_path)
    assert "booking_assignment_removal_validation" in why
    assert "**FAILED" in record


def test_plan_changes_nothing_and_a_pipeline_needs_yes(empty_db_url: str) -> None:
    planned = invoke(
        "rollout", "table-combinations", "--plan", "--database-url", empty_db_url, "--json"
    )
    steps = as_json(planned)["plan"]
    assert steps[0].startswith("backup") and "apply booking_002" in steps[2]
    refused = invoke("rollout", "table-combinations", "--database-url", empty_db_url)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)


def test_preflight_refuses_out_of_order_and_unknown_releases(
    empty_db_url: str, tmp_path: Path
) -> None:
    early = rollout(empty_db_url, "capacity-overlap", tmp_path)
    assert early.exit_code == 2
    assert "must be applied before capacity-overlap" in as_json(early)["error"]
    assert rollout(empty_db_url, "no-such", tmp_path).exit_code == 2


def test_apply_rollback_backfill_and_restore_leave_markdown_records(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    import os

    directory = Path(os.environ["VENUEDB_RECORDS_DIR"])
    down = as_json(rollback_cascade(db_url, "assignment-pipeline-v3"))
    up = as_json(invoke("apply", "--database-url", db_url, "--json"))
    assert Path(down["record"]).exists() and Path(up["record"]).exists()
    assert "rollback" in Path(down["record"]).read_text()
    dump = as_json(invoke("backup", "--out", str(tmp_path), "--database-url", db_url, "--json"))
    assert invoke("restore", dump["path"], "--target-url", empty_db_url).exit_code == 0
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM venuedb.deployments WHERE command = 'restore'"
        ).fetchone() == (1,)
    names = [p.name for p in directory.glob("*.md")]
    assert any("restore" in n for n in names) and len(names) >= 3
