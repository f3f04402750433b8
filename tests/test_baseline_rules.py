"""The baselines' rules, each tried from SQL and seen to hold."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.queries import dict_of, scalar
from tests.seating import allocation_kinds

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py


@pytest.fixture
def conn(db_url: str):
    """A database with every migration applied."""
    with psycopg.connect(db_url) as connection:
        yield connection


@pytest.fixture
def baseline(empty_db_url: str):
    """A database at the baselines only: the state the seeds started from."""
    from toolkit.engine.migrate import RunOptions, run
    from toolkit.server.connection import Target

    target = Target(empty_db_url, "tests")
    for release in ("booking-baseline", "bar-baseline"):
        run(target, "upgrade", release, RunOptions(actor="tests"))
    with psycopg.connect(empty_db_url) as connection:
        yield connection


def _restaurant_with_tables(conn: psycopg.Connection, count: int = 2) -> tuple[str, list[str]]:
    restaurant = scalar(
        conn,
        "INSERT INTO restaurants (name, slug) VALUES ('Test', 'test-' || gen_random_uuid()) "
        "RETURNING id",
    )
    zone = scalar(
        conn,
        "INSERT INTO zones (restaurant_id, name) VALUES (%s, 'Main') RETURNING id",
        (restaurant,),
    )
    tables = [
        scalar(
            conn,
            "INSERT INTO table_inventory (restaurant_id, zone_id, table_number, capacity, "
            "min_party_size, max_party_size, mobility) VALUES (%s, %s, %s, 4, 1, 4, 'movable') "
            "RETURNING id",
            (restaurant, zone, f"T{i}"),
        )
        for i in range(count)
    ]
    return restaurant, tables


def _booking(
    conn: psycopg.Connection, restaurant: str, start: str = "2030-01-01 19:00+00", party: int = 4
) -> str:
    return scalar(
        conn,
        "INSERT INTO bookings (restaurant_id, customer_name, party_size, booking_date, start_at, "
        "end_at) VALUES (%s, 'Guest', %s, %s::timestamptz::date, %s::timestamptz, "
        "%s::timestamptz + interval '2 hours') RETURNING id",
        (restaurant, party, start, start, start),
    )


def _allocate(
    conn: psycopg.Connection, restaurant: str, table: str, window: str, shadow: bool = False
) -> None:
    conn.execute(
        'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", shadow) '
        "VALUES (%s, 'table', %s, %s::tstzrange, %s)",
        (restaurant, table, window, shadow),
    )


def test_overlapping_allocations_are_rejected_at_commit(baseline: psycopg.Connection) -> None:
    restaurant, (table, _) = _restaurant_with_tables(baseline)
    _allocate(baseline, restaurant, table, "[2030-01-01 19:00+00,2030-01-01 21:00+00)")
    _allocate(baseline, restaurant, table, "[2030-01-01 20:00+00,2030-01-01 22:00+00)")
    with pytest.raises(errors.ExclusionViolation, match="allocations_resource_window_excl"):
        baseline.commit()  # INITIALLY DEFERRED: checked at commit


def test_touching_and_shadow_allocations_are_allowed(baseline: psycopg.Connection) -> None:
    restaurant, (table, _) = _restaurant_with_tables(baseline)
    _allocate(baseline, restaurant, table, "[2030-01-01 19:00+00,2030-01-01 21:00+00)")
    _allocate(baseline, restaurant, table, "[2030-01-01 21:00+00,2030-01-01 23:00+00)")
    _allocate(baseline, restaurant, table, "[2030-01-01 19:30+00,2030-01-01 20:00+00)", shadow=True)
    baseline.commit()


def test_the_old_constraint_is_not_tenant_scoped(baseline: psycopg.Connection) -> None:
    """The weakness seed 003 fixed: the same resource id in two restaurants conflicts."""
    first, (table, _) = _restaurant_with_tables(baseline)
    second, _ = _restaurant_with_tables(baseline)
    _allocate(baseline, first, table, "[2030-01-01 19:00+00,2030-01-01 21:00+00)")
    _allocate(baseline, second, table, "[2030-01-01 19:00+00,2030-01-01 21:00+00)")
    with pytest.raises(errors.ExclusionViolation):
        baseline.commit()


def test_confirm_hold_assignment_tx_v11_confirms_and_allocates(
    baseline: psycopg.Connection,
) -> None:
    restaurant, tables = _restaurant_with_tables(baseline)
    booking = _booking(baseline, restaurant, party=6)
    hold = scalar(
        baseline,
        "INSERT INTO table_holds (restaurant_id, booking_id, start_at, end_at, expires_at) "
        "SELECT restaurant_id, id, start_at, end_at, now() + interval '5 minutes' FROM bookings "
        "WHERE id = %s RETURNING id",
        (booking,),
    )
    for table in tables:
        baseline.execute(
            "INSERT INTO table_hold_members (hold_id, table_id) VALUES (%s, %s)", (hold, table)
        )
    rows = baseline.execute(
        "SELECT table_id, merge_group_id FROM confirm_hold_assignment_tx(%s, %s)", (hold, booking)
    ).fetchall()
    baseline.commit()
    assert sorted(r[0] for r in rows) == sorted(tables)
    assert len({r[1] for r in rows}) == 1 and rows[0][1] is not None  # one merge group
    assert baseline.execute("SELECT status FROM bookings WHERE id = %s", (booking,)).fetchone() == (
        "confirmed",
    )
    assert baseline.execute(
        "SELECT count(*) FROM booking_table_assignments WHERE booking_id = %s", (booking,)
    ).fetchone() == (2,)
    assert allocation_kinds(baseline, booking) == [("merge_group", 1), ("table", 2)]
    assert baseline.execute(
        "SELECT count(*) FROM table_holds WHERE id = %s", (hold,)
    ).fetchone() == (0,)
    comment = scalar(
        baseline,
        "SELECT obj_description('public.confirm_hold_assignment_tx(uuid,uuid,text,uuid)'::regprocedure)",
    )
    assert comment == "venuedb:version=11"


def test_confirm_of_an_expired_hold_is_refused(baseline: psycopg.Connection) -> None:
    restaurant, tables = _restaurant_with_tables(baseline, 1)
    booking = _booking(baseline, restaurant)
    hold = scalar(
        baseline,
        "INSERT INTO table_holds (restaurant_id, booking_id, start_at, end_at, expires_at) "
        "SELECT restaurant_id, id, start_at, end_at, now() - interval '1 minute' FROM bookings "
        "WHERE id = %s RETURNING id",
        (booking,),
    )
    baseline.execute(
        "INSERT INTO table_hold_members (hold_id, table_id) VALUES (%s, %s)", (hold, tables[0])
    )
    with pytest.raises(psycopg.Error, match=r"(?i)expired"):
        baseline.execute("SELECT * FROM confirm_hold_assignment_tx(%s, %s)", (hold, booking))


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        (
            "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at) "
            "SELECT id, 0, current_date, now(), now() + interval '1 hour' FROM restaurants LIMIT 1",
            errors.CheckViolation,
        ),
        (
            "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at) "
            "SELECT id, 2, current_date, now(), now() - interval '1 hour' FROM restaurants LIMIT 1",
            errors.CheckViolation,
        ),
        (
            "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, status) "
            "SELECT id, 2, current_date, now(), now() + interval '1 hour', 'maybe' FROM restaurants "
            "LIMIT 1",
            errors.CheckViolation,
        ),
        (
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
            "SELECT id, 'chair', gen_random_uuid(), tstzrange(now(), now() + interval '1 hour') "
            "FROM restaurants LIMIT 1",
            errors.CheckViolation,
        ),
        (
            "INSERT INTO sales (bar_id, total) SELECT id, -1 FROM bars LIMIT 1",
            errors.CheckViolation,
        ),
        (
            "INSERT INTO bar_members (bar_id, user_id, role) SELECT b.id, u.id, 'bouncer' "
            "FROM bars b, auth.users u LIMIT 1",
            errors.CheckViolation,
        ),
    ],
)
def test_check_constraints_hold(conn: psycopg.Connection, sql: str, error: type) -> None:
    _restaurant_with_tables(conn, 1)
    conn.execute("INSERT INTO auth.users (email) VALUES ('x@example.com')")
    conn.execute("INSERT INTO bars (name) VALUES ('Bar')")
    with pytest.raises(error):
        conn.execute(sql)


def test_auth_uid_reads_the_jwt_claim(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT auth.uid()").fetchone() == (None,)
    conn.execute(
        "SELECT set_config('request.jwt.claim.sub', '6f1c1a7e-3b5e-4d0a-9a53-0d6c1c9a0001', true)"
    )
    assert str(scalar(conn, "SELECT auth.uid()")) == ("6f1c1a7e-3b5e-4d0a-9a53-0d6c1c9a0001")


def test_supabase_roles_exist_and_service_role_bypasses_rls(conn: psycopg.Connection) -> None:
    rows = dict_of(
        conn,
        "SELECT rolname, rolbypassrls FROM pg_roles "
        "WHERE rolname IN ('anon', 'authenticated', 'service_role')",
    )
    assert rows == {"anon": False, "authenticated": False, "service_role": True}
