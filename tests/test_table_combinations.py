"""Release table-combinations (seed 000): adjacency facts and the orphan-booking rule,
each tried from SQL, plus the seed's verification queries run verbatim."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from tests.clihelpers import as_json, invoke
from tests.seating import assign_table
from tests.test_baseline_rules import _booking, _restaurant_with_tables

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as connection:
        yield connection


# -- table_adjacencies -------------------------------------------------------------------


def _adjacent(conn: psycopg.Connection, restaurant: str, a: str, b: str) -> None:
    conn.execute(
        "INSERT INTO table_adjacencies (restaurant_id, table_a, table_b) VALUES (%s, %s, %s)",
        (restaurant, a, b),
    )


def test_a_pair_and_its_mirror_are_one_fact(conn: psycopg.Connection) -> None:
    restaurant, (a, b) = _restaurant_with_tables(conn)
    _adjacent(conn, restaurant, a, b)
    with pytest.raises(errors.UniqueViolation, match="table_adjacencies_pair_key"):
        _adjacent(conn, restaurant, b, a)


def test_a_table_is_not_its_own_neighbour(conn: psycopg.Connection) -> None:
    restaurant, (a, _) = _restaurant_with_tables(conn)
    with pytest.raises(errors.CheckViolation, match="table_adjacencies_not_self_check"):
        _adjacent(conn, restaurant, a, a)


def test_cross_restaurant_pairs_are_impossible(conn: psycopg.Connection) -> None:
    first, (a, _) = _restaurant_with_tables(conn)
    _, (c, _) = _restaurant_with_tables(conn)
    with pytest.raises(errors.ForeignKeyViolation):
        _adjacent(conn, first, a, c)


# -- booking_assignment_validation ------------------------------------------------------


_assign = assign_table


def _unassign(conn: psycopg.Connection, where: str, value: str) -> None:
    """Remove assignments and their allocations together (`where`: table_id or booking_id)."""
    column = {"table_id": "resource_id", "booking_id": "booking_id"}[where]
    conn.execute(f"DELETE FROM booking_table_assignments WHERE {where} = %s", (value,))
    conn.execute(
        f"DELETE FROM allocations WHERE resource_type = 'table' AND {column} = %s", (value,)
    )


def _confirm(conn: psycopg.Connection, booking: str) -> None:
    conn.execute("UPDATE bookings SET status = 'confirmed' WHERE id = %s", (booking,))


def test_confirmed_without_tables_cannot_commit(conn: psycopg.Connection) -> None:
    restaurant, _ = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    conn.commit()
    _confirm(conn, booking)
    with pytest.raises(errors.CheckViolation, match="confirmed but has no table assignments"):
        conn.commit()


def test_inserted_as_confirmed_without_tables_cannot_commit(conn: psycopg.Connection) -> None:
    restaurant, _ = _restaurant_with_tables(conn)
    conn.execute(
        "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, status) "
        "VALUES (%s, 2, '2030-01-01', '2030-01-01 19:00+00', '2030-01-01 21:00+00', 'confirmed')",
        (restaurant,),
    )
    with pytest.raises(errors.CheckViolation):
        conn.commit()


@pytest.mark.parametrize("order", ["confirm_then_assign", "assign_then_confirm"])
def test_confirm_and_assign_in_either_order(conn: psycopg.Connection, order: str) -> None:
    restaurant, (table, _) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    if order == "confirm_then_assign":
        _confirm(conn, booking)
        _assign(conn, booking, table)
    else:
        _assign(conn, booking, table)
        _confirm(conn, booking)
    conn.commit()
    assert conn.execute("SELECT status FROM bookings WHERE id = %s", (booking,)).fetchone() == (
        "confirmed",
    )


def test_removing_the_last_assignment_of_a_confirmed_booking_is_refused(
    conn: psycopg.Connection,
) -> None:
    restaurant, (t1, t2) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    _assign(conn, booking, t1)
    _assign(conn, booking, t2)
    _confirm(conn, booking)
    conn.commit()
    _unassign(conn, "table_id", t1)
    conn.commit()  # one table left: fine
    _unassign(conn, "booking_id", booking)
    with pytest.raises(errors.CheckViolation, match="would be left without table assignments"):
        conn.commit()


def test_moving_the_last_assignment_to_another_booking_is_refused(
    conn: psycopg.Connection,
) -> None:
    restaurant, (t1, _) = _restaurant_with_tables(conn)
    first, second = _booking(conn, restaurant), _booking(conn, restaurant, "2030-02-01 19:00+00")
    _assign(conn, first, t1)
    _confirm(conn, first)
    conn.commit()
    conn.execute(
        "UPDATE booking_table_assignments SET booking_id = %s WHERE booking_id = %s",
        (second, first),
    )
    with pytest.raises(errors.CheckViolation):
        conn.commit()


def test_unassigning_and_unconfirming_together_is_fine(conn: psycopg.Connection) -> None:
    restaurant, (t1, _) = _restaurant_with_tables(conn)
    booking = _booking(conn, restaurant)
    _assign(conn, booking, t1)
    _confirm(conn, booking)
    conn.commit()
    _unassign(conn, "booking_id", booking)
    conn.execute("UPDATE bookings SET status = 'cancelled' WHERE id = %s", (booking,))
    conn.commit()


# -- the migration: cleanup notice, verification queries, Level 2 downgrade -------------


def _apply(url: str, target: str) -> dict:
    result = invoke("apply", target, "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    return as_json(result)


def test_migration_resets_orphans_and_says_so(empty_db_url: str) -> None:
    _apply(empty_db_url, "booking_002")
    with psycopg.connect(empty_db_url) as conn:
        restaurant, _ = _restaurant_with_tables(conn)
        for start in ("2030-01-01 19:00+00", "2030-01-02 19:00+00"):
            _confirm(conn, _booking(conn, restaurant, start))
    notices = _apply(empty_db_url, "booking_003")["notices"]
    assert notices == ["Successfully reset 2 orphaned bookings to pending status"]
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM bookings WHERE status = 'confirmed'"
        ).fetchone() == (0,)


def test_migration_reports_a_clean_database(empty_db_url: str) -> None:
    assert _apply(empty_db_url, "booking_003")["notices"] == [
        "No orphaned confirmed bookings found"
    ]


SEED_000_VERIFICATION = [
    (
        "SELECT tgname\nFROM pg_trigger\nWHERE tgname = 'booking_assignment_validation';",
        [("booking_assignment_validation",)],
    ),
    (
        "SELECT proname\nFROM pg_proc\nWHERE proname = 'validate_booking_has_assignments';",
        [("validate_booking_has_assignments",)],
    ),
    (
        "SELECT indexname\nFROM pg_indexes\n"
        "WHERE indexname = 'idx_booking_table_assignments_booking_id';",
        [("idx_booking_table_assignments_booking_id",)],
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SEED_000_VERIFICATION)
def test_seed_000_verification_queries_verbatim(
    conn: psycopg.Connection, sql: str, expected: list
) -> None:
    assert conn.execute(sql).fetchall() == expected


def test_seed_000_level_2_rollback_sql_runs_verbatim(conn: psycopg.Connection) -> None:
    conn.execute("""
-- Drop trigger
DROP TRIGGER IF EXISTS booking_assignment_validation ON bookings;

-- Drop function
DROP FUNCTION IF EXISTS validate_booking_has_assignments;
""")
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'booking_assignment_validation'"
    ).fetchone() == (0,)


def test_downgrade_removes_exactly_the_release_objects(db_url: str) -> None:
    result = invoke(
        "rollback", "booking_002", "--cascade", "--yes", "--database-url", db_url, "--json"
    )
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        for sql in (s for s, _ in SEED_000_VERIFICATION):
            assert conn.execute(sql).fetchall() == []
        assert conn.execute("SELECT to_regclass('public.table_adjacencies')").fetchone() != (None,)
