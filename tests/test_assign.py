"""`venuedb assign`: pending bookings seated through auto_assign_booking, with a summary."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from tests.clihelpers import as_json, invoke
from tests.queries import scalar
from tests.seating import overlapping_allocations
from toolkit.venue.sample_data import load_booking_sample


@pytest.fixture
def sample_db(db_url: str) -> str:
    with psycopg.connect(db_url) as conn:
        load_booking_sample(conn, restaurants=1, days=2, seed=5, start=dt.date(2031, 3, 3))
    return db_url


def test_assign_seats_pending_bookings_without_overlap(sample_db: str) -> None:
    result = invoke("assign", "--database-url", sample_db, "--json")
    document = as_json(result)
    assert document["considered"] > 20
    assert document["assigned"] + document["failed"] + document["skipped"] == document["considered"]
    assert result.exit_code == (0 if document["failed"] == 0 else 1)
    assert document["latency_ms"]["p50"] is not None
    with psycopg.connect(sample_db) as conn:
        confirmed = scalar(
            conn,
            "SELECT count(*) FROM bookings WHERE status = 'confirmed' "
            "AND restaurant_id IN (SELECT id FROM restaurants "
            "WHERE slug LIKE 'sample-5-%')",
        )
        assert confirmed == document["assigned"]
        overlaps = overlapping_allocations(conn)
        assert overlaps == 0
    again = invoke("assign", "--database-url", sample_db, "--json")
    assert as_json(again)["assigned"] == 0  # nothing pending is left unseated twice


def test_assign_filters_by_day_and_restaurant(sample_db: str) -> None:
    with psycopg.connect(sample_db) as conn:
        slug = scalar(conn, "SELECT slug FROM restaurants WHERE slug LIKE 'sample-5-%'")
        expected = scalar(
            conn,
            "SELECT count(*) FROM bookings WHERE booking_date = '2031-03-03' AND status = 'pending'",
        )
    result = invoke(
        "assign",
        "--date",
        "2031-03-03",
        "--restaurant",
        slug,
        "--database-url",
        sample_db,
        "--json",
    )
    assert as_json(result)["considered"] == expected


@pytest.mark.parametrize("args", [["--date", "tomorrow"], ["--restaurant", "nowhere"]])
def test_bad_input_exits_2(sample_db: str, args: list[str]) -> None:
    result = invoke("assign", *args, "--database-url", sample_db)
    assert result.exit_code == 2, result.output


def test_invalid_flags_stop_before_anything_changes(
    sample_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURE_ALLOCATOR_K_MAX", "0")
    result = invoke("assign", "--database-url", sample_db)
    assert result.exit_code == 2 and "FEATURE_ALLOCATOR_K_MAX" in result.stderr
    with psycopg.connect(sample_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM allocations a JOIN restaurants r "
            "ON r.id = a.restaurant_id WHERE r.slug LIKE 'sample-5-%'"
        ).fetchone() == (0,)
