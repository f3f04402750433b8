"""Release assignment-times (issue 19, seed 000): idx_booking_table_assignments_assigned_at
lets combination_usage_rate and average_tables_per_booking read the assignments made in
their window instead of every assignment ever made. Built CONCURRENTLY by booking_017,
which goes down and up again with the data kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from bench.data import booking
from tests.clihelpers import as_json, invoke
from tests.conftest import row_counts
from tests.queries import rows_at
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import find_release
from toolkit.integrity import health_checks as health
from toolkit.server.connection import Target

INDEX = "idx_booking_table_assignments_assigned_at"
CHECKS = Path(__file__).resolve().parent.parent / "sql" / "checks"
WINDOW_CHECKS = ("combination_usage_rate", "average_tables_per_booking")


@pytest.fixture
def data_url(db_url: str) -> str:
    """The heads, holding bench.data.booking's 1,000 bookings, each with its assignment
    (assigned_at: when it was booked, before today)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        counts = booking.load(conn, scale=0.001, seed=3, anchor=dt.datetime.now(dt.UTC).date())
    assert counts["booking_table_assignments"] == 1000
    return db_url


def _index(url: str) -> tuple[str, bool] | None:
    """The index's definition and whether it is valid, or None when it is absent."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace",
            (INDEX,),
        ).fetchone()


def _plan(url: str, check: str) -> str:
    """EXPLAIN of the check's own SQL over its one-day window, sequential scans priced out
    (on a table this small reading it whole may cost the same: the plan should not hang
    on its statistics)."""
    sql = (CHECKS / f"{check}.sql").read_text(encoding="utf-8")
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('venuedb.lookback', '1 day', true)")
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql).fetchall())
        conn.rollback()
    return plan


def _assignments(url: str) -> list[tuple[object, ...]]:
    """The rows as booking_017 knows them (booking-distribution-keys adds restaurant_id later,
    and a rollback to booking_016 drops it)."""
    return rows_at(
        url,
        "SELECT to_jsonb(a) - 'restaurant_id' FROM booking_table_assignments AS a ORDER BY id",
    )


def _statuses(url: str) -> dict[str, str]:
    """The two checks as `venuedb check` runs them: each answers (no error)."""
    chosen = [c for c in health.load_checks() if c.name in WINDOW_CHECKS]
    return {r.check.name: r.status for r in health.run_checks(Target(url, "tests"), chosen)}


def _heads(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}


def test_the_release_is_booking_017_alone_at_the_booking_head() -> None:
    release = find_release("assignment-times")
    assert release is not None
    assert (release.branch, release.revisions) == ("booking", ("booking_017",))


def test_the_index_is_valid_at_the_heads_and_the_window_checks_use_it(data_url: str) -> None:
    (booking_head,) = [h for h in _heads(data_url) if h.startswith("booking_")]
    assert int(booking_head.removeprefix("booking_")) >= 17
    assert _index(data_url) == (
        f"CREATE INDEX {INDEX} ON public.booking_table_assignments USING btree (assigned_at)",
        True,
    )
    for check in WINDOW_CHECKS:
        plan = _plan(data_url, check)
        assert INDEX in plan, (check, plan)
        # The window is the index's condition, not a filter over every row.
        assert "Index Cond: (assigned_at >" in plan, (check, plan)
    report = as_json(
        invoke("verify", "--release", "assignment-times", "--database-url", data_url, "--json")
    )
    checked = {p["object"]: p for p in report["postconditions"]}
    assert checked[INDEX]["ok"], checked[INDEX]


def test_the_revision_goes_down_and_up_with_the_data_kept(data_url: str) -> None:
    target, options = Target(data_url, "tests"), RunOptions(actor="tests")
    counts, assignments = row_counts(data_url), _assignments(data_url)
    run(target, "downgrade", "booking_016", options)
    assert "booking_016" in _heads(data_url) and "booking_017" not in _heads(data_url)
    assert _index(data_url) is None
    assert row_counts(data_url) == counts and _assignments(data_url) == assignments
    assert "error" not in _statuses(data_url).values()  # the checks answer, the slow way
    run(target, "upgrade", "booking_017", options)
    assert "booking_017" in _heads(data_url)
    index = _index(data_url)
    assert index is not None and index[1] is True  # valid
    assert INDEX in _plan(data_url, "combination_usage_rate")
    assert row_counts(data_url) == counts and _assignments(data_url) == assignments
    assert "error" not in _statuses(data_url).values()
    # Upgrading again has nothing to do: one index on assigned_at, not a second.
    run(target, "upgrade", "heads", options)
    with psycopg.connect(data_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename = 'booking_table_assignments' AND indexdef LIKE '%(assigned_at)'"
        ).fetchone() == (1,)
