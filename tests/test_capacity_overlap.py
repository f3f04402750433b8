"""Release capacity-overlap (seed 003): allocations_no_overlap, booking_confirmation_results,
confirm_hold_assignment_tx v12; the seed's five manual flows as tests."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors

from tests.queries import scalar
from tests.test_baseline_rules import _allocate, _booking, _restaurant_with_tables

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


@pytest.fixture
def conn(db_url: str):
    with psycopg.connect(db_url) as connection:
        yield connection


def _hold(conn: psycopg.Connection, booking: str, tables: list[str]) -> str:
    hold = scalar(
        conn,
        "INSERT INTO table_holds (restaurant_id, booking_id, start_at, end_at, expires_at) "
        "SELECT restaurant_id, id, start_at, end_at, now() + interval '5 minutes' "
        "FROM bookings WHERE id = %s RETURNING id",
        (booking,),
    )
    for table in tables:
        conn.execute(
            "INSERT INTO table_hold_members (hold_id, table_id) VALUES (%s, %s)", (hold, table)
        )
    return hold


def _confirm(conn: psycopg.Connection, hold: str, booking: str) -> list[tuple]:
    return conn.execute(
        "SELECT table_id, merge_group_id, confirmed, conflicts "
        "FROM confirm_hold_assignment_tx(%s, %s)",
        (hold, booking),
    ).fetchall()


def _evidence(conn: psycopg.Connection, booking: str) -> list[tuple]:
    return conn.execute(
        "SELECT confirmed, conflict_details, snapshot_data FROM booking_confirmation_results "
        "WHERE booking_id = %s ORDER BY checked_at",
        (booking,),
    ).fetchall()


def test_flow_1_single_table_assignment_persists_its_evidence(conn: psycopg.Connection) -> None:
    restaurant, (table, _) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    rows = _confirm(conn, _hold(conn, booking, [table]), booking)
    conn.commit()
    assert [(r[0], r[2]) for r in rows] == [(table, True)]
    ((confirmed, conflicts, snapshot),) = _evidence(conn, booking)
    assert confirmed is True and conflicts is None
    assert [t["capacity"] for t in snapshot["tables"]] == [4]
    assert snapshot["party_size"] == 4 and snapshot["allocations"] == []


def test_flow_2_overlap_is_rejected_at_once(conn: psycopg.Connection) -> None:
    restaurant, (table, _) = _restaurant_with_tables(conn)
    _allocate(conn, restaurant, table, "[2030-01-01 19:00+00,2030-01-01 21:00+00)")
    with pytest.raises(errors.ExclusionViolation, match="allocations_no_overlap"):
        _allocate(conn, restaurant, table, "[2030-01-01 20:00+00,2030-01-01 22:00+00)")


def test_flow_3_the_constraint_compares_within_a_restaurant(
    conn: psycopg.Connection,
) -> None:
    """allocations_no_overlap is scoped to the restaurant: the same resource id in two
    restaurants does not collide. For tables that would seat two restaurants on one table
    unseen, so booking-integrity refuses a table of another restaurant outright."""
    first, (table, _) = _restaurant_with_tables(conn)
    second, _ = _restaurant_with_tables(conn)
    window = "[2030-01-01 19:00+00,2030-01-01 21:00+00)"
    group = "0b0b0b0b-0000-4000-8000-000000000001"
    for restaurant in (first, second):
        conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "VALUES (%s, 'merge_group', %s, %s::tstzrange)",
            (restaurant, group, window),
        )
    _allocate(conn, first, table, window)
    conn.commit()
    with pytest.raises(errors.ForeignKeyViolation, match="not a table of restaurant"):
        _allocate(conn, second, table, window)


def test_flow_4_a_batch_swaps_tables_with_the_constraint_deferred(
    conn: psycopg.Connection,
) -> None:
    restaurant, (t1, t2) = _restaurant_with_tables(conn)
    window = "[2030-01-01 19:00+00,2030-01-01 21:00+00)"
    _allocate(conn, restaurant, t1, window)
    _allocate(conn, restaurant, t2, window)
    conn.commit()
    conn.execute("SET CONSTRAINTS allocations_no_overlap DEFERRED")
    conn.execute("UPDATE allocations SET resource_id = %s WHERE resource_id = %s", (t2, t1))
    conn.execute(
        "UPDATE allocations SET resource_id = %s WHERE resource_id = %s AND id <> "
        "(SELECT min(id::text)::uuid FROM allocations WHERE resource_id = %s)",
        (t1, t2, t2),
    )
    conn.commit()  # two rows overlapped midway; consistent again at commit
    assert conn.execute(
        "SELECT count(DISTINCT resource_id) FROM allocations WHERE restaurant_id = %s",
        (restaurant,),
    ).fetchone() == (2,)


def test_flow_5_a_conflict_confirms_nothing_and_persists_evidence(
    conn: psycopg.Connection,
) -> None:
    restaurant, (t1, t2) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant, party=6)
    _allocate(conn, restaurant, t2, "[2030-01-01 20:00+00,2030-01-01 23:00+00)")
    rows = _confirm(conn, _hold(conn, booking, [t1, t2]), booking)
    conn.commit()
    ((table_id, _, confirmed, conflicts),) = rows
    assert table_id is None and confirmed is False
    assert [c["resource_id"] for c in conflicts] == [str(t2)]
    assert conn.execute("SELECT status FROM bookings WHERE id = %s", (booking,)).fetchone() == (
        "pending",
    )
    assert conn.execute(
        "SELECT count(*) FROM booking_table_assignments WHERE booking_id = %s", (booking,)
    ).fetchone() == (0,)
    ((was_confirmed, details, snapshot),) = _evidence(conn, booking)
    assert was_confirmed is False and details == conflicts
    assert len(snapshot["allocations"]) == 1


def test_combination_confirms_with_one_merge_group(conn: psycopg.Connection) -> None:
    restaurant, tables = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant, party=7)
    rows = _confirm(conn, _hold(conn, booking, tables), booking)
    conn.commit()
    assert sorted(r[0] for r in rows) == sorted(tables)
    assert len({r[1] for r in rows}) == 1 and all(r[2] for r in rows)


def test_concurrent_confirms_of_overlapping_holds_exactly_one_wins(db_url: str) -> None:
    with psycopg.connect(db_url) as setup:
        restaurant, (table, _) = _restaurant_with_tables(setup)
        bookings = [_booking(setup, restaurant) for _ in range(4)]
        holds = [_hold(setup, b, [table]) for b in bookings]
    barrier = threading.Barrier(len(bookings))
    outcomes: list[bool] = []

    def confirm(hold: str, booking: str) -> None:
        with psycopg.connect(db_url) as conn:
            barrier.wait()
            rows = _confirm(conn, hold, booking)
            conn.commit()
            outcomes.append(rows[0][2])

    threads = [
        threading.Thread(target=confirm, args=pair) for pair in zip(holds, bookings, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [False, False, False, True]
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM allocations WHERE resource_id = %s", (table,)
        ).fetchone() == (1,)
        assert conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE confirmed) FROM booking_confirmation_results"
        ).fetchone() == (4, 1)


def test_only_service_role_may_read_or_write_the_evidence(conn: psycopg.Connection) -> None:
    restaurant, (table, _) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    _confirm(conn, _hold(conn, booking, [table]), booking)
    conn.commit()
    for role in ("anon", "authenticated"):
        conn.execute(f"SET ROLE {role}")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM booking_confirmation_results")
        conn.rollback()
    conn.execute("SET ROLE service_role")
    assert conn.execute("SELECT count(*) FROM booking_confirmation_results").fetchone() == (1,)
    conn.rollback()
    assert conn.execute(
        "SELECT relrowsecurity FROM pg_class WHERE relname = 'booking_confirmation_results'"
    ).fetchone() == (True,)


def test_retention_deletes_old_evidence_in_batches(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        restaurant, _ = _restaurant_with_tables(conn)
        booking = _booking(conn, restaurant)
        conn.execute(
            "INSERT INTO booking_confirmation_results (booking_id, confirmed, checked_at) "
            "SELECT %s, true, now() - make_interval(days => d) + interval '12 hours' "
            "FROM generate_series(1, 60) d",
            (booking,),
        )
        deleted = scalar(conn, "CALL prune_booking_confirmation_results(interval '30 days', 7)")
        assert deleted == 30
        assert conn.execute("SELECT count(*) FROM booking_confirmation_results").fetchone() == (30,)
        with pytest.raises(errors.InvalidParameterValue):
            conn.execute("CALL prune_booking_confirmation_results(interval '1 day', 0)")


def test_seed_003_emergency_rollback_sql_runs_verbatim(conn: psycopg.Connection) -> None:
    conn.execute("""
-- Revert to old constraint (without restaurant_id)
ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap;
ALTER TABLE allocations ADD CONSTRAINT allocations_resource_window_excl
  EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&)
  WHERE (NOT shadow) DEFERRABLE INITIALLY DEFERRED;
""")
    conn.rollback()


def test_v13_is_installed_and_v12_then_v11_come_back_on_rollback(db_url: str) -> None:
    from tests.clihelpers import invoke

    version = (
        "SELECT obj_description('public.confirm_hold_assignment_tx(uuid,uuid,text,uuid)'"
        "::regprocedure)"
    )
    with psycopg.connect(db_url) as conn:
        assert conn.execute(version).fetchone() == ("venuedb:version=13",)
    # booking-observability, assignment-times and booking-distribution-keys (later on the
    # branch) go with it: --cascade.
    result = invoke("rollback", "booking-integrity", "--cascade", "--yes", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute(version).fetchone() == ("venuedb:version=12",)
    result = invoke("rollback", "booking_006", "--cascade", "--yes", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute(version).fetchone() == ("venuedb:version=11",)
