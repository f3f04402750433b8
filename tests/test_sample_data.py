"""toolkit.venue.sample_data: a deterministic, realistic booking sample loads into the schema."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import Server
from toolkit.venue.sample_data import load_booking_sample, next_monday

START = dt.date(2030, 1, 7)  # a Monday


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as connection:
        yield connection


def _load(conn: psycopg.Connection, **kwargs: Any) -> dict[str, int]:
    counts = load_booking_sample(conn, start=START, **kwargs)
    conn.commit()
    return counts


def _count(conn: psycopg.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row
    return row[0]


def test_counts_match_the_rows(conn: psycopg.Connection) -> None:
    counts = _load(conn)
    assert set(counts) == {
        "restaurants",
        "zones",
        "table_inventory",
        "table_adjacencies",
        "bookings",
    }
    for table, expected in counts.items():
        assert _count(conn, f"SELECT count(*) FROM {table}") == expected
    assert counts["restaurants"] == 4
    assert 8 <= counts["zones"] <= 12
    assert 80 <= counts["table_inventory"] <= 240
    assert counts["bookings"] > 30 * 4 * 10


def test_the_sample_is_realistic(conn: psycopg.Connection) -> None:
    _load(conn)
    per_restaurant = conn.execute(
        "SELECT count(DISTINCT z.id), count(t.id), "
        "bool_and(r.slug LIKE 'sample-42-%%') "
        "FROM restaurants r JOIN zones z ON z.restaurant_id = r.id "
        "JOIN table_inventory t ON t.zone_id = z.id GROUP BY r.id"
    ).fetchall()
    assert all(
        2 <= zones <= 3 and 20 <= tables <= 60 and slug for zones, tables, slug in per_restaurant
    )
    movable = _count(conn, "SELECT avg((mobility = 'movable')::int) FROM table_inventory")
    assert movable > 0.7
    sizes = {r[0] for r in conn.execute("SELECT DISTINCT capacity FROM table_inventory")}
    assert {2, 4, 6, 8} <= sizes
    assert _count(conn, "SELECT count(*) FROM bookings WHERE status <> 'pending'") == 0
    minutes = conn.execute(
        "SELECT DISTINCT extract(epoch FROM end_at - start_at)::int / 60 FROM bookings"
    ).fetchall()
    assert {m for (m,) in minutes} == {90, 105, 120}
    small, medium, large = conn.execute(
        "SELECT avg((party_size <= 4)::int), avg((party_size BETWEEN 5 AND 8)::int), "
        "avg((party_size >= 10)::int) FROM bookings"
    ).fetchone() or (0, 0, 0)
    assert small > 0.6 and 0.05 < medium < 0.35 and 0 < large < 0.1
    # Lunch and dinner, in the restaurant's own time zone, over the 30 days from START.
    hours = {
        h
        for (h,) in conn.execute(
            "SELECT DISTINCT extract(hour FROM b.start_at AT TIME ZONE r.timezone)::int "
            "FROM bookings b JOIN restaurants r ON r.id = b.restaurant_id"
        )
    }
    assert hours <= {11, 12, 13, 14, 17, 18, 19, 20, 21} and {12, 19} <= hours
    days = conn.execute("SELECT min(booking_date), max(booking_date) FROM bookings").fetchone()
    assert days == (START, START + dt.timedelta(days=29))
    local = _count(
        conn,
        "SELECT bool_and((b.start_at AT TIME ZONE r.timezone)::date = b.booking_date "
        "AND (b.start_at AT TIME ZONE r.timezone)::time = b.start_time) "
        "FROM bookings b JOIN restaurants r ON r.id = b.restaurant_id",
    )
    assert local is True


def test_every_adjacency_pair_is_within_one_restaurant_and_zone(conn: psycopg.Connection) -> None:
    counts = _load(conn)
    assert counts["table_adjacencies"] > 0
    stray = _count(
        conn,
        "SELECT count(*) FROM table_adjacencies p "
        "JOIN table_inventory a ON a.id = p.table_a JOIN table_inventory b ON b.id = p.table_b "
        "WHERE a.restaurant_id <> p.restaurant_id OR b.restaurant_id <> p.restaurant_id "
        "OR a.zone_id <> b.zone_id",
    )
    assert stray == 0


def test_slugs_do_not_collide_with_other_seeds(conn: psycopg.Connection) -> None:
    _load(conn, restaurants=2, days=1, seed=1)
    _load(conn, restaurants=2, days=1, seed=2)
    assert _count(conn, "SELECT count(DISTINCT slug) FROM restaurants") == 4


def _fingerprint(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        counts = _load(conn, restaurants=3, days=7, seed=7)
        return {
            "counts": counts,
            "parties": conn.execute(
                "SELECT party_size, count(*) FROM bookings GROUP BY 1 ORDER BY 1"
            ).fetchall(),
            "tables": conn.execute(
                "SELECT r.slug, z.name, t.table_number, t.capacity, t.min_party_size, t.mobility "
                "FROM table_inventory t JOIN zones z ON z.id = t.zone_id "
                "JOIN restaurants r ON r.id = t.restaurant_id ORDER BY 1, 3"
            ).fetchall(),
            "bookings": conn.execute(
                "SELECT r.slug, b.customer_name, b.party_size, b.start_at, b.end_at "
                "FROM bookings b JOIN restaurants r ON r.id = b.restaurant_id "
                "ORDER BY 1, 4, 2, 3, 5"
            ).fetchall(),
        }


def test_the_same_seed_gives_the_same_rows(
    db_url: str, pg_server: Server, template_db: str
) -> None:
    name = f"s_{uuid.uuid4().hex[:12]}"
    other = pg_server.janitor(name, template=template_db)
    other.init()
    try:
        assert _fingerprint(db_url) == _fingerprint(pg_server.url(name))
    finally:
        other.drop()


def test_next_monday() -> None:
    assert next_monday(dt.date(2030, 1, 7)) == dt.date(2030, 1, 14)  # a Monday: the next one
    assert next_monday(dt.date(2030, 1, 12)) == dt.date(2030, 1, 14)
    assert next_monday().weekday() == 0


def test_bad_arguments_are_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError):
        load_booking_sample(conn, restaurants=0)
