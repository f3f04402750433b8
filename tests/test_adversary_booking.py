"""The booking attacker matrix (issue 15): every cell is an actor, an operation and a target.

The world: restaurants A and B, each with tables; in A a pending booking with a hold on
A2, a confirmed booking on A1 (confirmed through confirm_hold_assignment_tx, with an
idempotency key), a cancelled booking with a hold, a booking the pipeline never saw
(assignment_state NULL), and a hold written before booking-integrity existed that holds
B's table (inserted with the triggers off, as old data would be); in B a confirmed
booking on B1 at the same time.

Each cell runs in a transaction that is rolled back: the actor (`SET LOCAL ROLE`, with
`request.jwt.claim.sub` for authenticated) runs the attack, then `SET CONSTRAINTS ALL
IMMEDIATE` makes deferred rules speak before the end of the cell. `refused` is the
SQLSTATE the database must answer with; None means the operation is legitimate and must
succeed (and `then`, run as the superuser afterwards, must be true). A new rule adds a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.actors import become
from tests.clihelpers import as_json, invoke
from tests.conftest import Server
from tests.queries import dict_of

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py

ID = {
    name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"venuedb-adversary:{name}"))
    for name in (
        "rA",
        "rB",
        "zA",
        "zB",
        "A1",
        "A2",
        "A3",
        "B1",
        "B2",
        "pending",
        "confirmed",
        "cancelled",
        "unseen",
        "confirmedB",
        "hold",
        "hold_cancelled",
        "hold_old",
        "hold_spare",
        "hold_c",
        "hold_cB",
        "nowhere",
        "user",
    )
}

WORLD = """
INSERT INTO restaurants (id, name, slug) VALUES ('{rA}', 'A', 'a'), ('{rB}', 'B', 'b');
INSERT INTO zones (id, restaurant_id, name) VALUES ('{zA}', '{rA}', 'Main'), ('{zB}', '{rB}', 'Main');
INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity) VALUES
    ('{A1}', '{rA}', '{zA}', 'A1', 4), ('{A2}', '{rA}', '{zA}', 'A2', 4),
    ('{A3}', '{rA}', '{zA}', 'A3', 4),
    ('{B1}', '{rB}', '{zB}', 'B1', 4), ('{B2}', '{rB}', '{zB}', 'B2', 4);
INSERT INTO bookings (id, restaurant_id, party_size, booking_date, start_at, end_at, status,
                      assignment_state) VALUES
    ('{pending}', '{rA}', 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00', 'pending', 'created'),
    ('{confirmed}', '{rA}', 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00', 'pending', 'created'),
    ('{cancelled}', '{rA}', 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00', 'cancelled', 'created'),
    ('{unseen}', '{rA}', 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00', 'pending', NULL),
    ('{confirmedB}', '{rB}', 2, '2031-01-01', '2031-01-01 19:00+00', '2031-01-01 21:00+00', 'pending', 'created');
INSERT INTO table_holds (id, restaurant_id, booking_id, zone_id, start_at, end_at, expires_at) VALUES
    ('{hold}', '{rA}', '{pending}', '{zA}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day'),
    ('{hold_cancelled}', '{rA}', '{cancelled}', '{zA}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day'),
    ('{hold_spare}', '{rA}', NULL, '{zA}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day'),
    ('{hold_old}', '{rA}', '{pending}', '{zA}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day');
INSERT INTO table_hold_members (hold_id, table_id) VALUES
    ('{hold}', '{A2}'), ('{hold_cancelled}', '{A3}'), ('{hold_spare}', '{A3}');
-- Written before booking-integrity: B's table held for A's booking (restaurant_id, which
-- booking-distribution-keys backfilled from the hold, is A's).
SET session_replication_role = replica;
INSERT INTO table_hold_members (hold_id, table_id, restaurant_id)
VALUES ('{hold_old}', '{B1}', '{rA}');
SET session_replication_role = DEFAULT;
-- The confirmed bookings, confirmed the supported way.
INSERT INTO table_holds (id, restaurant_id, booking_id, start_at, end_at, expires_at) VALUES
    ('{hold_c}', '{rA}', '{confirmed}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day');
INSERT INTO table_hold_members (hold_id, table_id) VALUES ('{hold_c}', '{A1}');
SELECT * FROM confirm_hold_assignment_tx('{hold_c}', '{confirmed}', 'key-1');
INSERT INTO table_holds (id, restaurant_id, booking_id, start_at, end_at, expires_at) VALUES
    ('{hold_cB}', '{rB}', '{confirmedB}', '2031-01-01 19:00+00', '2031-01-01 21:00+00', now() + interval '1 day');
INSERT INTO table_hold_members (hold_id, table_id) VALUES ('{hold_cB}', '{B1}');
SELECT * FROM confirm_hold_assignment_tx('{hold_cB}', '{confirmedB}');
"""

ALLOCATE = (
    'INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "window") '
    "VALUES ('{restaurant}', {booking}, 'table', '{table}', "
    "'[2031-01-01 19:00+00,2031-01-01 21:00+00)')"
)


def allocate(restaurant: str, table: str, booking: str | None = None) -> str:
    return ALLOCATE.format(
        restaurant="{" + restaurant + "}",
        table="{" + table + "}",
        booking=f"'{{{booking}}}'" if booking else "NULL",
    )


@dataclass(frozen=True)
class Cell:
    name: str
    actor: str  # service_role | authenticated | anon
    attack: str  # SQL, with {name} for the world's ids
    refused: str | None  # the SQLSTATE expected; None: legitimate, must succeed
    then: str = ""  # legitimate cells: a query (as the superuser) that must return true


SERVICE, USER, ANON = "service_role", "authenticated", "anon"
CONFIRMED_ALLOCATION = "booking_id = '{confirmed}' AND resource_type = 'table'"

CELLS = [
    # -- hole 1: a table, and whatever names it, belongs to one restaurant ---------------
    Cell(
        "confirm a hold naming another restaurant's table",
        SERVICE,
        "SELECT * FROM confirm_hold_assignment_tx('{hold_old}', '{pending}')",
        "22023",
    ),
    Cell(
        "hold another restaurant's table",
        SERVICE,
        "INSERT INTO table_hold_members (hold_id, table_id) VALUES ('{hold}', '{B2}')",
        "23503",
    ),
    Cell(
        "move a held table to another restaurant's table",
        SERVICE,
        "UPDATE table_hold_members SET table_id = '{B2}' WHERE hold_id = '{hold}'",
        "23503",
    ),
    Cell(
        "allocate another restaurant's table",
        SERVICE,
        allocate("rA", "B2", "pending"),
        "23503",
    ),
    Cell("allocate a table that does not exist", SERVICE, allocate("rA", "nowhere"), "23503"),
    Cell(
        "point an allocation at another restaurant's table",
        SERVICE,
        f"UPDATE allocations SET resource_id = '{{B2}}' WHERE {CONFIRMED_ALLOCATION}",
        "23503",
    ),
    Cell(
        "allocate for another restaurant's booking",
        SERVICE,
        allocate("rB", "B2", "pending"),
        "23503",
    ),
    Cell(
        "assign another restaurant's table to a booking",
        SERVICE,
        "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES ('{pending}', '{B2}')",
        "23503",
    ),
    Cell(
        "move a table to another restaurant",
        SERVICE,
        "UPDATE table_inventory SET restaurant_id = '{rB}', zone_id = '{zB}' WHERE id = '{A3}'",
        "23514",
    ),
    Cell(
        "renumber a table's id under its allocations",
        SERVICE,
        "UPDATE table_inventory SET id = gen_random_uuid() WHERE id = '{A3}'",
        "23514",
    ),
    Cell(
        "move a booking to another restaurant",
        SERVICE,
        "UPDATE bookings SET restaurant_id = '{rB}' WHERE id = '{pending}'",
        "23514",
    ),
    Cell(
        "move a hold to another restaurant",
        SERVICE,
        "UPDATE table_holds SET restaurant_id = '{rB}' WHERE id = '{hold}'",
        "23514",
    ),
    Cell(
        "allocate an own table for maintenance",
        SERVICE,
        allocate("rA", "A3"),
        None,
        "SELECT count(*) = 1 FROM allocations WHERE resource_id = '{A3}'",
    ),
    # -- hole 2: a confirmed booking's assignments and allocations stay in step ------------
    Cell(
        "delete a confirmed booking's allocation",
        SERVICE,
        f"DELETE FROM allocations WHERE {CONFIRMED_ALLOCATION}",
        "23514",
    ),
    Cell(
        "set a confirmed booking's allocation to shadow",
        SERVICE,
        f"UPDATE allocations SET shadow = true WHERE {CONFIRMED_ALLOCATION}",
        "23514",
    ),
    Cell(
        "shrink a confirmed booking's allocation",
        SERVICE,
        "UPDATE allocations SET \"window\" = '[2031-01-01 19:00+00,2031-01-01 19:30+00)' "
        f"WHERE {CONFIRMED_ALLOCATION}",
        "23514",
    ),
    Cell(
        "hand a confirmed booking's allocation to another booking",
        SERVICE,
        f"UPDATE allocations SET booking_id = '{{pending}}' WHERE {CONFIRMED_ALLOCATION}",
        "23514",
    ),
    Cell(
        "give a confirmed booking an extra table by allocation only",
        SERVICE,
        allocate("rA", "A3", "confirmed"),
        "23514",
    ),
    Cell(
        "give a confirmed booking an extra table by assignment only",
        SERVICE,
        "INSERT INTO booking_table_assignments (booking_id, table_id) "
        "VALUES ('{confirmed}', '{A3}')",
        "23514",
    ),
    Cell(
        "move a confirmed booking's time without its allocation",
        SERVICE,
        "UPDATE bookings SET start_at = start_at + interval '3 hours', "
        "end_at = end_at + interval '3 hours' WHERE id = '{confirmed}'",
        "23514",
    ),
    Cell(
        "check in a booking whose allocation was deleted in the same transaction",
        SERVICE,
        f"DELETE FROM allocations WHERE {CONFIRMED_ALLOCATION}; "
        "UPDATE bookings SET status = 'checked_in' WHERE id = '{confirmed}'",
        "23514",
    ),
    Cell(
        "move a confirmed booking to another table, both rows together",
        SERVICE,
        "UPDATE booking_table_assignments SET table_id = '{A3}' WHERE booking_id = '{confirmed}'; "
        f"UPDATE allocations SET resource_id = '{{A3}}' WHERE {CONFIRMED_ALLOCATION}",
        None,
        "SELECT resource_id = '{A3}' FROM allocations WHERE booking_id = '{confirmed}'",
    ),
    Cell(
        "move a confirmed booking's time with its allocation",
        SERVICE,
        "UPDATE bookings SET start_at = start_at + interval '3 hours', "
        "end_at = end_at + interval '3 hours' WHERE id = '{confirmed}'; "
        'UPDATE allocations SET "window" = tstzrange(lower("window") + interval \'3 hours\', '
        f"upper(\"window\") + interval '3 hours') WHERE {CONFIRMED_ALLOCATION}",
        None,
        "SELECT count(*) = 1 FROM allocations WHERE booking_id = '{confirmed}' "
        "AND lower(\"window\") = '2031-01-01 22:00+00'",
    ),
    Cell(
        "cancel a confirmed booking, then free its table",
        SERVICE,
        "UPDATE bookings SET status = 'cancelled' WHERE id = '{confirmed}'; "
        "DELETE FROM allocations WHERE booking_id = '{confirmed}'",
        None,
        "SELECT NOT EXISTS (SELECT 1 FROM allocations WHERE booking_id = '{confirmed}')",
    ),
    Cell(
        "delete a confirmed booking altogether",
        SERVICE,
        "DELETE FROM bookings WHERE id = '{confirmed}'",
        None,
        "SELECT NOT EXISTS (SELECT 1 FROM allocations WHERE booking_id = '{confirmed}')",
    ),
    # -- hole 3: only a pending booking is confirmed --------------------------------------
    Cell(
        "confirm a cancelled booking",
        SERVICE,
        "SELECT * FROM confirm_hold_assignment_tx('{hold_cancelled}', '{cancelled}')",
        "55000",
    ),
    Cell(
        "confirm a confirmed booking again onto more tables",
        SERVICE,
        "SELECT * FROM confirm_hold_assignment_tx('{hold_spare}', '{confirmed}')",
        "55000",
    ),
    Cell(
        "retry a confirmation with its idempotency key",
        SERVICE,
        "SELECT * FROM confirm_hold_assignment_tx('{hold_spare}', '{confirmed}', 'key-1')",
        None,
        "SELECT count(*) = 1 FROM booking_table_assignments WHERE booking_id = '{confirmed}'",
    ),
    Cell(
        "confirm a pending booking (the API's own path)",
        SERVICE,
        "SELECT * FROM confirm_hold_assignment_tx('{hold}', '{pending}')",
        None,
        "SELECT status = 'confirmed' FROM bookings WHERE id = '{pending}'",
    ),
    Cell(
        "double-book a confirmed table through a fresh hold",
        SERVICE,
        "INSERT INTO table_hold_members (hold_id, table_id) VALUES ('{hold}', '{A1}'); "
        "SELECT * FROM confirm_hold_assignment_tx('{hold}', '{pending}')",
        None,
        "SELECT status = 'pending' FROM bookings WHERE id = '{pending}'",
    ),
    # -- hole 4: the assignment state machine holds from INSERT on, NULL included ------------
    Cell(
        "insert a booking already confirmed by the pipeline",
        SERVICE,
        "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, "
        "assignment_state) VALUES ('{rA}', 2, '2031-01-02', '2031-01-02 19:00+00', "
        "'2031-01-02 21:00+00', 'confirmed')",
        "23514",
    ),
    Cell(
        "insert a booking with its tables already held",
        SERVICE,
        "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, "
        "assignment_state) VALUES ('{rA}', 2, '2031-01-02', '2031-01-02 19:00+00', "
        "'2031-01-02 21:00+00', 'tables_held')",
        "23514",
    ),
    Cell(
        "insert a booking at created",
        SERVICE,
        "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at) "
        "VALUES ('{rA}', 2, '2031-01-02', '2031-01-02 19:00+00', '2031-01-02 21:00+00')",
        None,
        "SELECT assignment_state = 'created' FROM bookings WHERE booking_date = '2031-01-02'",
    ),
    Cell(
        "jump an unseen (NULL) booking to tables_held",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'tables_held' WHERE id = '{unseen}'",
        "23514",
    ),
    Cell(
        "jump an unseen (NULL) booking to confirmed",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'confirmed' WHERE id = '{unseen}'",
        "23514",
    ),
    Cell(
        "take an unseen (NULL) booking in at created",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'created' WHERE id = '{unseen}'",
        None,
        "SELECT count(*) = 1 FROM observability_events WHERE booking_id = '{unseen}' "
        "AND context ->> 'to' = 'created'",
    ),
    Cell(
        "move an unseen (NULL) booking on from created",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'capacity_verified' WHERE id = '{unseen}'",
        None,
        "SELECT assignment_state = 'capacity_verified' FROM bookings WHERE id = '{unseen}'",
    ),
    Cell(
        "put a cancelled booking through the pipeline",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'capacity_verified' WHERE id = '{cancelled}'",
        "23514",
    ),
    Cell(
        "mark a pending booking confirmed by the pipeline",
        SERVICE,
        "UPDATE bookings SET assignment_state = 'capacity_verified' WHERE id = '{pending}'; "
        "UPDATE bookings SET assignment_state = 'tables_planned' WHERE id = '{pending}'; "
        "UPDATE bookings SET assignment_state = 'tables_held' WHERE id = '{pending}'; "
        "UPDATE bookings SET assignment_state = 'confirmed' WHERE id = '{pending}'",
        "23514",
    ),
    Cell(
        "send a booking back to NULL",
        SERVICE,
        "UPDATE bookings SET assignment_state = NULL WHERE id = '{pending}'",
        "23514",
    ),
    # -- hole 8: anon and authenticated reach no booking function or table --------------------
    Cell(
        "anon confirms a hold",
        ANON,
        "SELECT * FROM confirm_hold_assignment_tx('{hold}', '{pending}')",
        "42501",
    ),
    Cell(
        "authenticated confirms a hold",
        USER,
        "SELECT * FROM confirm_hold_assignment_tx('{hold}', '{pending}')",
        "42501",
    ),
    Cell(
        "anon plans tables", ANON, "SELECT * FROM plan_booking_tables('{pending}', '{{}}')", "42501"
    ),
    Cell(
        "authenticated auto-assigns",
        USER,
        "SELECT auto_assign_booking('{pending}', '{{}}')",
        "42501",
    ),
    Cell(
        "anon lists conflicts",
        ANON,
        "SELECT confirm_hold_conflicts('{rA}', ARRAY['{A1}']::uuid[], tstzrange(now(), now() + interval '1 hour'))",
        "42501",
    ),
    Cell("anon asks for a rollout", ANON, "SELECT feature_enabled_for('x', '{rA}')", "42501"),
    Cell(
        "authenticated prunes the evidence",
        USER,
        "CALL prune_booking_confirmation_results(interval '0 seconds', 1, 1)",
        "42501",
    ),
    Cell("anon calls a trigger function", ANON, "SELECT enforce_same_restaurant()", "42501"),
    Cell("anon reads bookings", ANON, "SELECT * FROM bookings", "42501"),
    Cell("authenticated reads bookings", USER, "SELECT * FROM bookings", "42501"),
    Cell("authenticated writes an allocation", USER, allocate("rA", "A3"), "42501"),
    Cell(
        "authenticated rewrites the state machine",
        USER,
        "INSERT INTO assignment_state_transitions VALUES ('created', 'confirmed', 'x')",
        "42501",
    ),
    Cell(
        "service role rewrites the state machine",
        SERVICE,
        "INSERT INTO assignment_state_transitions VALUES ('created', 'confirmed', 'x')",
        "42501",
    ),
    Cell(
        "service role reads bookings",
        SERVICE,
        "SELECT * FROM bookings",
        None,
        "SELECT true",
    ),
]


@pytest.fixture(scope="module")
def world_url(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"adv_booking_{uuid.uuid4().hex[:8]}"
    janitor = pg_server.janitor(name, template=template_db)
    janitor.init()
    url = pg_server.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(WORLD.format(**ID))
    yield url
    janitor.drop()


def _as(conn: psycopg.Connection, actor: str) -> None:
    become(conn, actor, {USER: ID["user"]})


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_attacker_matrix(world_url: str, cell: Cell) -> None:
    with psycopg.connect(world_url) as conn:
        try:
            _as(conn, cell.actor)
            if cell.refused:
                with pytest.raises(psycopg.Error) as caught:
                    conn.execute(cell.attack.format(**ID))
                    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                assert caught.value.sqlstate == cell.refused, caught.value
                assert str(caught.value).strip(), "a refusal says why"
            else:
                conn.execute(cell.attack.format(**ID))
                conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                conn.execute("RESET ROLE")
                assert conn.execute(cell.then.format(**ID)).fetchone() == (True,), cell.then
        finally:
            conn.rollback()


def test_a_refused_deferred_rule_rolls_back_at_commit(world_url: str) -> None:
    """The matrix forces deferred rules early; a caller that just commits is refused too."""
    with psycopg.connect(world_url) as conn:
        conn.execute("SET ROLE service_role")
        conn.execute(f"DELETE FROM allocations WHERE {CONFIRMED_ALLOCATION}".format(**ID))
        with pytest.raises(psycopg.errors.CheckViolation, match="live allocations disagree"):
            conn.commit()
    with psycopg.connect(world_url) as conn:
        left = conn.execute(
            f"SELECT count(*) FROM allocations WHERE {CONFIRMED_ALLOCATION}".format(**ID)
        ).fetchone()
    assert left == (1,)


def test_the_world_is_what_the_matrix_assumes(world_url: str) -> None:
    with psycopg.connect(world_url) as conn:
        statuses = dict_of(
            conn,
            "SELECT id::text, status FROM bookings WHERE id::text = ANY(%s)",
            ([ID["confirmed"], ID["confirmedB"], ID["cancelled"]],),
        )
        assert statuses == {
            ID["confirmed"]: "confirmed",
            ID["confirmedB"]: "confirmed",
            ID["cancelled"]: "cancelled",
        }
        # A and B each hold a table at the same time: one table each, never a shared one.
        assert conn.execute(
            "SELECT count(DISTINCT resource_id) FROM allocations WHERE resource_type = 'table'"
        ).fetchone() == (2,)


# -- the health checks see what a superuser could still break ----------------------------


def _break_invariants(url: str) -> None:
    """What the rules refuse, written with the triggers off (replica mode)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"DELETE FROM allocations WHERE {CONFIRMED_ALLOCATION}".format(**ID))
        conn.execute(allocate("rA", "B2", "pending").format(**ID))


def test_health_checks_find_broken_invariants(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(WORLD.format(**ID))
        conn.execute("DELETE FROM table_holds WHERE id = %s", (ID["hold_old"],))
    names = ("cross_restaurant_tables", "confirmed_bookings_out_of_step")
    clean = invoke("check", *names, "--database-url", db_url, "--json")
    assert clean.exit_code == 0, clean.stdout
    _break_invariants(db_url)
    fired = invoke("check", *names, "--database-url", db_url, "--json")
    assert fired.exit_code == 1, fired.stdout
    checks = {c["name"]: c for c in as_json(fired)["checks"]}
    assert (
        checks["cross_restaurant_tables"]["status"],
        checks["cross_restaurant_tables"]["value"],
    ) == ("critical", 1)
    out_of_step = checks["confirmed_bookings_out_of_step"]
    assert (out_of_step["status"], out_of_step["value"]) == ("critical", 1)


def test_a_hold_written_before_the_release_is_reported(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(WORLD.format(**ID))
    result = invoke("check", "cross_restaurant_tables", "--database-url", db_url, "--json")
    assert result.exit_code == 1, result.stdout
    (check,) = as_json(result)["checks"]
    assert check["value"] == 1


# -- hole 8, whole schema: no function of ours is anybody's by default --------------------

OWN_FUNCTIONS = """
SELECT p.oid::regprocedure::text,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute,
       has_function_privilege('anon', p.oid, 'EXECUTE') AS anon_execute
FROM pg_proc AS p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""


def test_no_function_of_ours_is_executable_by_public_or_anon(world_url: str) -> None:
    """Extensions' functions (btree_gist's support functions) are theirs, not ours."""
    with psycopg.connect(world_url) as conn:
        rows = conn.execute(OWN_FUNCTIONS).fetchall()
    assert len(rows) >= 15
    assert [r[0] for r in rows if r[1] or r[2]] == []


# Every row of a booking still to come that names another restaurant's table is reported by
# exactly one check (issue 19): confirmed_bookings_out_of_step reads the confirmed and
# checked-in bookings once, tables included; cross_restaurant_tables the other statuses,
# the allocations' own tables and the holds. Each rule broken with the triggers off.
# The booking's restaurant in restaurant_id, as the fill trigger (off here) would write it.
ASSIGN = (
    "INSERT INTO booking_table_assignments (booking_id, table_id, restaurant_id) "
    "SELECT '{booking}', '{table}', restaurant_id FROM bookings WHERE id = '{booking}'"
)
SPLIT = [
    (
        ASSIGN.format(booking="{confirmed}", table="{B2}"),
        "confirmed_bookings_out_of_step",
        ("problem", "table of another restaurant"),
    ),
    (
        ASSIGN.format(booking="{pending}", table="{B2}"),
        "cross_restaurant_tables",
        ("relation", "booking_table_assignments"),
    ),
    (
        allocate("rB", "B2", "confirmed"),
        "confirmed_bookings_out_of_step",
        ("problem", "table of another restaurant"),
    ),
    (
        allocate("rB", "B2", "pending"),
        "cross_restaurant_tables",
        ("relation", "allocations (booking)"),
    ),
    (
        allocate("rA", "B2", "cancelled"),
        "cross_restaurant_tables",
        ("relation", "allocations"),
    ),
]


@pytest.mark.parametrize(
    ("attack", "reporter", "finding"),
    SPLIT,
    ids=[
        "confirmed-assigned",
        "pending-assigned",
        "confirmed-allocated",
        "pending-allocated",
        "allocation-own-table",
    ],
)
def test_each_cross_restaurant_row_is_reported_by_one_check(
    db_url: str, attack: str, reporter: str, finding: tuple[str, str]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(WORLD.format(**ID))
        conn.execute("DELETE FROM table_holds WHERE id = %s", (ID["hold_old"],))
        conn.execute("SET session_replication_role = replica")
        conn.execute(attack.format(**ID))
    names = ("cross_restaurant_tables", "confirmed_bookings_out_of_step")
    result = invoke("check", *names, "--database-url", db_url, "--json")
    assert result.exit_code == 1, result.stdout
    checks = {c["name"]: c for c in as_json(result)["checks"]}
    assert checks[reporter]["status"] == "critical", checks
    (row,) = checks[reporter]["rows"]
    assert row[finding[0]] == finding[1], row
    (other,) = set(names) - {reporter}
    assert checks[other]["status"] == "ok", checks
