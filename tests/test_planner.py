"""Seed 000's combination planner and auto-assignment, tried against real PostgreSQL.

plan_booking_tables ranks single tables and combinations; auto_assign_booking seats a
pending booking at the best one under a per-zone advisory lock. Until the revision
that installs them exists, the fixture installs both SQL files into the test database.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.seating import allocation_kinds
from toolkit.engine.migrate import RunOptions, run
from toolkit.server.connection import Target

START = "2030-01-01 19:00+00"
OVERLAPPING = "[2030-01-01 20:00+00,2030-01-01 22:00+00)"
TOUCHING = "[2030-01-01 21:00+00,2030-01-01 23:00+00)"


@pytest.fixture
def url(db_url: str) -> str:
    return db_url


@pytest.fixture(params=["head", "booking_004"])
def any_url(request: pytest.FixtureRequest) -> str:
    """Every migration applied, or the revision that releases the planner (booking_004):
    confirm_hold_assignment_tx v11 and allocations_resource_window_excl (deferred)."""
    if request.param == "head":
        return request.getfixturevalue("url")
    empty: str = request.getfixturevalue("empty_db_url")
    run(Target(empty, "tests"), "upgrade", request.param, RunOptions(actor="tests"))
    return empty


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url) as connection:
        yield connection


# -- floors ------------------------------------------------------------------------------


@dataclass
class Floor:
    """A restaurant built for one test; tables are looked up by table number."""

    conn: psycopg.Connection
    restaurant: str = ""
    zones: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        row = self.conn.execute(
            "INSERT INTO restaurants (name, slug) VALUES ('Planner', 'planner-' || "
            "gen_random_uuid()) RETURNING id"
        ).fetchone()
        assert row
        self.restaurant = str(row[0])

    def zone(self, name: str, zone_id: str | None = None) -> str:
        if name not in self.zones:
            row = self.conn.execute(
                "INSERT INTO zones (id, restaurant_id, name) "
                "VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, %s) RETURNING id",
                (zone_id, self.restaurant, name),
            ).fetchone()
            assert row
            self.zones[name] = str(row[0])
        return self.zones[name]

    def table(
        self,
        number: str,
        capacity: int,
        *,
        zone: str = "Main",
        mobility: str = "movable",
        min_party: int = 1,
        max_party: int | None = None,
        active: bool = True,
        table_id: str | None = None,
    ) -> str:
        row = self.conn.execute(
            "INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity, "
            "min_party_size, max_party_size, mobility, active) "
            "VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (
                table_id,
                self.restaurant,
                self.zone(zone),
                number,
                capacity,
                min_party,
                max_party,
                mobility,
                active,
            ),
        ).fetchone()
        assert row
        self.tables[number] = str(row[0])
        return str(row[0])

    def adjacent(self, a: str, b: str) -> None:
        self.conn.execute(
            "INSERT INTO table_adjacencies (restaurant_id, table_a, table_b) VALUES (%s, %s, %s)",
            (self.restaurant, self.tables[a], self.tables[b]),
        )

    def booking(self, party: int, start: str = START, minutes: int = 120) -> str:
        row = self.conn.execute(
            "INSERT INTO bookings (restaurant_id, customer_name, party_size, booking_date, "
            "start_at, end_at) VALUES (%s, 'Guest', %s, %s::timestamptz::date, %s::timestamptz, "
            "%s::timestamptz + make_interval(mins => %s)) RETURNING id",
            (self.restaurant, party, start, start, start, minutes),
        ).fetchone()
        assert row
        return str(row[0])

    def allocate(self, number: str, window: str, *, shadow: bool = False) -> None:
        self.conn.execute(
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", shadow) '
            "VALUES (%s, 'table', %s, %s::tstzrange, %s)",
            (self.restaurant, self.tables[number], window, shadow),
        )

    def numbers(self, table_ids: list[str]) -> list[str]:
        by_id = {v: k for k, v in self.tables.items()}
        return [by_id[t] for t in table_ids]


def plan(conn: psycopg.Connection, booking: str, **options: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM plan_booking_tables(%s, %s::jsonb) ORDER BY rank",
            (booking, Jsonb(options)),
        ).fetchall()
    for row in rows:  # ids as text, like the JSON of auto_assign_booking
        row["zone_id"] = str(row["zone_id"])
        row["table_ids"] = [str(t) for t in row["table_ids"]]
    return rows


def auto_assign(conn: psycopg.Connection, booking: str, **options: Any) -> dict[str, Any]:
    row = conn.execute(
        "SELECT auto_assign_booking(%s, %s::jsonb)", (booking, Jsonb(options))
    ).fetchone()
    assert row
    return row[0]


# -- seed 000 manual QA ------------------------------------------------------------------


def test_party_of_five_gets_a_combination_when_no_single_table_fits(
    conn: psycopg.Connection,
) -> None:
    floor = Floor(conn)
    for number, capacity in (("T1", 2), ("T2", 2), ("T3", 4), ("T4", 4)):
        floor.table(number, capacity)
    booking = floor.booking(5)
    rows = plan(conn, booking)
    assert rows, "a combination covers a party of five"
    best = rows[0]
    assert best["rank"] == 1 and best["is_combination"]
    assert sorted(floor.numbers(best["table_ids"])) in (
        ["T1", "T3"],
        ["T1", "T4"],
        ["T2", "T3"],
        ["T2", "T4"],
    )
    assert best["total_capacity"] == 6  # 2 + 4: the least waste
    assert all(r["is_combination"] and r["total_capacity"] >= 5 for r in rows)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


def test_party_of_five_gets_a_single_table_when_one_fits(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for number, capacity in (("T1", 2), ("T2", 4), ("T3", 4), ("T6", 6), ("T8", 8)):
        floor.table(number, capacity)
    booking = floor.booking(5)
    rows = plan(conn, booking)
    assert floor.numbers(rows[0]["table_ids"]) == ["T6"] and not rows[0]["is_combination"]
    assert floor.numbers(rows[1]["table_ids"]) == ["T8"] and not rows[1]["is_combination"]
    # Then combinations, whose tables never include one that alone seats the party.
    assert all(r["is_combination"] for r in rows[2:])
    assert all(not {"T6", "T8"} & set(floor.numbers(r["table_ids"])) for r in rows[2:])


def test_singles_rank_by_waste_then_table_number(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("B", 4)
    floor.table("A", 4)
    floor.table("C", 6)
    floor.table("D", 4, min_party=4)  # a 4-top reserved for four: does not take three
    floor.table("E", 4, max_party=2)
    rows = plan(conn, floor.booking(3))
    assert [floor.numbers(r["table_ids"]) for r in rows] == [["A"], ["B"], ["C"]]
    assert [r["total_capacity"] for r in rows] == [4, 4, 6]


def test_a_fixed_or_inactive_table_may_seat_alone(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("F", 6, mobility="fixed")
    floor.table("I", 6, active=False)
    rows = plan(conn, floor.booking(5))
    assert [floor.numbers(r["table_ids"]) for r in rows] == [["F"]]


# -- never a busy table ------------------------------------------------------------------


def test_a_table_with_an_overlapping_allocation_is_never_planned(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("BUSY", 4)
    floor.table("TOUCH", 6)
    floor.table("SHADOW", 8)
    floor.table("S2", 2)
    floor.table("S3", 3)
    floor.allocate("BUSY", OVERLAPPING)
    floor.allocate("TOUCH", TOUCHING)  # [19:00, 21:00) and [21:00, 23:00) do not overlap
    floor.allocate("SHADOW", OVERLAPPING, shadow=True)
    floor.allocate("S2", "[2030-01-01 18:00+00,2030-01-01 19:01+00)")
    rows = plan(conn, floor.booking(4), limit=10)
    planned = {n for r in rows for n in floor.numbers(r["table_ids"])}
    assert "BUSY" not in planned and "S2" not in planned
    assert [floor.numbers(r["table_ids"]) for r in rows if not r["is_combination"]] == [
        ["TOUCH"],
        ["SHADOW"],
    ]


def test_a_merge_group_allocation_does_not_block_a_table(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    table = floor.table("T", 4)
    conn.execute(
        'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window") '
        "VALUES (%s, 'merge_group', %s, %s::tstzrange)",
        (floor.restaurant, table, OVERLAPPING),
    )
    assert [floor.numbers(r["table_ids"]) for r in plan(conn, floor.booking(4))] == [["T"]]


# -- combinations ------------------------------------------------------------------------


def test_never_more_than_k_max_tables(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for i in range(8):
        floor.table(f"T{i}", 2)
    booking = floor.booking(7)
    assert plan(conn, booking, k_max=3) == []
    rows = plan(conn, booking, k_max=4, limit=50)
    assert rows and all(len(r["table_ids"]) == 4 and r["total_capacity"] == 8 for r in rows)
    assert len(rows) == 50 or len(rows) == 70  # C(8, 4) = 70 sets of four 2-tops


def test_combinations_are_movable_tables_of_one_zone(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("M4", 4, zone="Main")
    floor.table("MF", 4, zone="Main", mobility="fixed")
    floor.table("M2", 2, zone="Main")
    floor.table("T4", 4, zone="Terrace")
    floor.table("T3", 3, zone="Terrace")
    rows = plan(conn, floor.booking(7), limit=10)
    sets = [sorted(floor.numbers(r["table_ids"])) for r in rows]
    assert sets == [["T3", "T4"]]  # Main's movable tables only make 6
    assert rows[0]["zone_id"] == floor.zones["Terrace"]


def test_combinations_rank_fewer_tables_then_least_waste(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for number, capacity in (("A", 2), ("B", 2), ("C", 2), ("D", 5), ("E", 6)):
        floor.table(number, capacity)
    rows = plan(conn, floor.booking(7), limit=10)
    sets = [(len(r["table_ids"]), r["total_capacity"] - 7) for r in rows]
    assert sets == sorted(sets)
    assert rows[0]["total_capacity"] == 7 and "D" in floor.numbers(rows[0]["table_ids"])
    # A + B + C = 6 never seats 7; D + E: each alone is below 7, together waste 4.
    assert ["D", "E"] in [sorted(floor.numbers(r["table_ids"])) for r in rows]
    assert all(len(r["table_ids"]) == 2 for r in rows)


def test_no_redundant_table_in_a_combination(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for number, capacity in (("A", 3), ("B", 3), ("C", 4)):
        floor.table(number, capacity)
    rows = plan(conn, floor.booking(7), limit=10)
    # A + B + C = 10 covers 7 but C + A already does: the triple is never offered.
    assert sorted(sorted(floor.numbers(r["table_ids"])) for r in rows) == [["A", "C"], ["B", "C"]]


# -- adjacency ---------------------------------------------------------------------------


def _path_floor(conn: psycopg.Connection, count: int) -> tuple[Floor, list[str]]:
    """Tables of two seats in a row: P0 - P1 - P2 - ..., ids in a shuffled order."""
    floor = Floor(conn)
    numbers = [f"P{i}" for i in range(count)]
    for number in numbers:
        floor.table(number, 2)
    for a, b in itertools.pairwise(numbers):
        floor.adjacent(a, b)
    return floor, numbers


def test_connected_and_neighbors_modes_differ_on_a_path(conn: psycopg.Connection) -> None:
    floor, numbers = _path_floor(conn, 4)
    booking = floor.booking(8)
    connected = plan(conn, booking, require_adjacency=True, k_max=4)
    assert [sorted(floor.numbers(r["table_ids"])) for r in connected] == [numbers]
    # No table of a row of four touches the three others.
    assert plan(conn, booking, require_adjacency=True, adjacency_mode="neighbors", k_max=4) == []
    assert plan(conn, booking, k_max=4)  # without adjacency any four do


def test_neighbors_mode_lists_the_anchor_first(conn: psycopg.Connection) -> None:
    floor, _ = _path_floor(conn, 3)  # P0 - P1 - P2: P1 touches both others
    booking = floor.booking(6)
    rows = plan(conn, booking, require_adjacency=True, adjacency_mode="neighbors")
    assert len(rows) == 1 and floor.numbers(rows[0]["table_ids"])[0] == "P1"
    assert rows[0]["table_ids"][1:] == sorted([floor.tables["P0"], floor.tables["P2"]])
    rows = plan(conn, booking, require_adjacency=True)
    assert [sorted(floor.numbers(r["table_ids"])) for r in rows] == [["P0", "P1", "P2"]]
    assert rows[0]["table_ids"] == sorted(rows[0]["table_ids"])  # connected: ids ascending


def test_a_star_seats_under_neighbors_mode(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for number in ("HUB", "A", "B", "C"):
        floor.table(number, 2)
    for leaf in ("A", "B", "C"):
        floor.adjacent("HUB", leaf)
    rows = plan(conn, floor.booking(8), require_adjacency=True, adjacency_mode="neighbors", k_max=4)
    assert len(rows) == 1
    assert floor.numbers(rows[0]["table_ids"])[0] == "HUB"
    assert sorted(floor.numbers(rows[0]["table_ids"])) == ["A", "B", "C", "HUB"]


def test_a_bridge_table_is_not_redundant_under_adjacency(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("A", 3)
    floor.table("B", 1)
    floor.table("C", 3)
    floor.adjacent("A", "B")
    floor.adjacent("B", "C")
    booking = floor.booking(6)
    assert [sorted(floor.numbers(r["table_ids"])) for r in plan(conn, booking)] == [["A", "C"]]
    rows = plan(conn, booking, require_adjacency=True)
    assert [sorted(floor.numbers(r["table_ids"])) for r in rows] == [["A", "B", "C"]]


def test_adjacency_required_without_adjacency_data_plans_singles_only(
    conn: psycopg.Connection,
) -> None:
    floor = Floor(conn)
    floor.table("A", 4)
    floor.table("B", 4)
    floor.table("C", 8)
    rows = plan(conn, floor.booking(7), require_adjacency=True)
    assert [floor.numbers(r["table_ids"]) for r in rows] == [["C"]]
    assert rows[0]["evaluated"] == 0  # no pair touches: none is examined


# -- options -----------------------------------------------------------------------------


def test_max_combination_evaluations_caps_evaluated(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for i in range(12):
        floor.table(f"T{i:02}", 2 + i % 3)
    booking = floor.booking(11)
    unlimited = plan(conn, booking, limit=3)
    assert unlimited and unlimited[0]["evaluated"] > 7
    capped = plan(conn, booking, max_combination_evaluations=7, limit=3)
    assert all(r["evaluated"] == 7 for r in capped)
    assert conn.execute("SELECT current_setting('venuedb.plan_evaluated')").fetchone() == ("7",)
    assert plan(conn, booking, max_combination_evaluations=0) == []


def test_evaluated_is_the_same_on_every_row_and_published(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for i in range(6):
        floor.table(f"T{i}", 2)
    booking = floor.booking(4)
    rows = plan(conn, booking, limit=20)
    assert len(rows) == 15 and len({r["evaluated"] for r in rows}) == 1
    assert rows[0]["evaluated"] == 15  # pairs only: a pair already seats four
    value = conn.execute("SELECT current_setting('venuedb.plan_evaluated')").fetchone()
    assert value == ("15",)


@pytest.mark.parametrize(
    "options",
    [{"merges_enabled": False}, {"combination_planner": False}, {"k_max": 1}],
)
def test_merges_disabled_plans_single_tables_only(
    conn: psycopg.Connection, options: dict[str, Any]
) -> None:
    floor = Floor(conn)
    floor.table("A", 4)
    floor.table("B", 4)
    floor.table("C", 8)
    booking = floor.booking(7)
    assert [len(r["table_ids"]) for r in plan(conn, booking, limit=5)] == [1, 2]
    rows = plan(conn, booking, limit=5, **options)
    assert [floor.numbers(r["table_ids"]) for r in rows] == [["C"]]
    assert rows[0]["evaluated"] == 0
    assert plan(conn, floor.booking(9), **options) == []


def test_singles_filling_the_limit_skip_the_enumeration(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for i in range(6):
        floor.table(f"S{i}", 2)
    for i in range(3):
        floor.table(f"B{i}", 4)
    rows = plan(conn, floor.booking(4), limit=3)
    assert [r["is_combination"] for r in rows] == [False, False, False]
    assert rows[0]["evaluated"] == 0
    rows = plan(conn, floor.booking(4), limit=4)
    assert [r["is_combination"] for r in rows] == [False, False, False, True]


def test_zone_option_restricts_the_plan(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    floor.table("M", 4, zone="Main")
    floor.table("T", 4, zone="Terrace")
    floor.table("T2", 2, zone="Terrace")
    booking = floor.booking(4)
    rows = plan(conn, booking, zone_id=floor.zones["Terrace"])
    assert [floor.numbers(r["table_ids"]) for r in rows] == [["T"]]


@pytest.mark.parametrize(
    "options",
    [{"k_max": 0}, {"limit": 0}, {"max_combination_evaluations": -1}, {"adjacency_mode": "x"}],
)
def test_bad_options_are_refused(conn: psycopg.Connection, options: dict[str, Any]) -> None:
    floor = Floor(conn)
    booking = floor.booking(2)
    with pytest.raises(errors.InvalidParameterValue):
        plan(conn, booking, **options)


def test_an_unknown_booking_is_an_error(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.NoDataFound):
        plan(conn, str(uuid.uuid4()))


def test_version_comments(conn: psycopg.Connection) -> None:
    for signature, version in (
        ("public.plan_booking_tables(uuid,jsonb)", 1),
        ("public.auto_assign_booking(uuid,jsonb)", 2),  # v2: booking-observability
    ):
        row = conn.execute("SELECT obj_description(%s::regprocedure)", (signature,)).fetchone()
        assert row == (f"venuedb:version={version}",)


# What auto_assign_booking v2 adds to every result (booking-observability): its own
# summary event, latency and zone-lock waits; the outcome is the rest.
TELEMETRY = ("event_id", "latency_ms", "zone_lock_conflicts")


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in TELEMETRY}


SIXTY_SIZES = (2, 2, 4, 4, 6, 8)


def _by_number(i: int) -> int:
    return i


def _two_seaters_first(i: int) -> tuple[int, int]:
    return (SIXTY_SIZES[i % len(SIXTY_SIZES)], i)


def _sixty_tables(conn: psycopg.Connection, order: Any = _by_number) -> Floor:
    """Zones Main, Terrace, Bar of 20 tables each (2, 2, 4, 4, 6, 8 repeating), chains of 5
    adjacent tables.

    Ids are ordered, not gen_random_uuid(): the planner enumerates combinations in
    (zone_id, id) order and stops at max_combination_evaluations, so what it finds under
    the cap depends on id order. With random ids a party of 20 got no plan in about 1 run
    in 19 (see test_party_of_twenty_under_the_cap_depends_on_id_order). Zone ids sort
    Main < Terrace < Bar; within a zone, table ids sort by `order` (a key on the table's
    index 0..19, table number order by default). The ids' first 32 bits are the
    restaurant's, so a second floor in the same database gets ids of its own.
    """
    floor = Floor(conn)
    prefix = uuid.UUID(floor.restaurant).int >> 96 << 96
    for z, zone in enumerate(("Main", "Terrace", "Bar")):
        floor.zone(zone, str(uuid.UUID(int=prefix + ((z + 1) << 64))))
        numbers = [f"{zone[0]}{i:02}" for i in range(20)]
        ids = {
            i: str(uuid.UUID(int=prefix + ((z + 1) << 64) + position))
            for position, i in enumerate(sorted(range(20), key=order), start=1)
        }
        for i, number in enumerate(numbers):
            floor.table(number, SIXTY_SIZES[i % len(SIXTY_SIZES)], zone=zone, table_id=ids[i])
        for i in range(0, 20, 5):
            for a, b in itertools.pairwise(numbers[i : i + 5]):
                floor.adjacent(a, b)
    return floor


@pytest.mark.parametrize(
    ("party", "options"),
    [
        (5, {}),
        (12, {}),
        (20, {}),
        (16, {"require_adjacency": True}),
        (16, {"require_adjacency": True, "adjacency_mode": "neighbors"}),
    ],
)
def test_sixty_tables_plan_within_the_evaluation_cap(
    conn: psycopg.Connection, party: int, options: dict[str, Any]
) -> None:
    """Speed is measured in bench/; here: a busy 60-table floor plans, inside the cap."""
    floor = _sixty_tables(conn)
    booking = floor.booking(party)
    rows = conn.execute(
        "SELECT evaluated FROM plan_booking_tables(%s, %s::jsonb)", (booking, Jsonb(options))
    ).fetchall()
    assert rows
    assert all(r[0] <= 1000 for r in rows)


def test_party_of_twenty_under_the_cap_depends_on_id_order(conn: psycopg.Connection) -> None:
    """The documented cap, exactly. No pair seats 20 (8 + 8 at most), so the default cap
    of 1000 goes to all 570 pairs of the three zones (3 x C(20, 2)), then to the first
    430 of Main's 1140 triples in id order: those whose smallest-id table is at
    position 1, 2, or (for 106 of them) 3. A triple seats 20 only with an 8 in it and
    no 2 (8+8+4, 8+6+6, 8+8+6, 8+8+8), so a floor whose lowest ids are 2-seaters gets
    no plan within the cap although one exists; with the cap raised to cover Main's
    triples (570 + 1140) it does."""
    floor = _sixty_tables(conn)  # table number order: Main positions 1..3 are 2, 2, 4
    rows = plan(conn, floor.booking(20))
    assert {r["evaluated"] for r in rows} == {1000}
    assert [(sorted(floor.numbers(r["table_ids"])), r["total_capacity"]) for r in rows] == [
        (["M02", "M05", "M11"], 20),
        (["M02", "M05", "M17"], 20),
        (["M02", "M11", "M17"], 20),  # the 430th triple: (3, 12, 18)
    ]

    floor = _sixty_tables(conn, order=_two_seaters_first)  # Main positions 1..8 are 2s
    booking = floor.booking(20)
    assert plan(conn, booking) == []
    evaluated = conn.execute("SELECT current_setting('venuedb.plan_evaluated', true)")
    assert evaluated.fetchone() == ("1000",)
    rows = plan(conn, booking, max_combination_evaluations=570 + 1140)
    assert len(rows) == 5
    assert {r["evaluated"] for r in rows} == {570 + 1140}
    for r in rows:
        assert r["is_combination"] and r["total_capacity"] == 20
        assert all(n.startswith("M") for n in floor.numbers(r["table_ids"]))


# -- property tests ----------------------------------------------------------------------

BUSY = ("free", "overlap", "touch", "shadow")


@dataclass(frozen=True)
class Spec:
    capacity: int
    zone: int
    movable: bool
    min_party: int
    max_party: int | None
    active: bool
    busy: str


@st.composite
def floors(draw: st.DrawFn) -> tuple[list[Spec], set[tuple[int, int]], int, dict[str, Any]]:
    count = draw(st.integers(1, 12))
    specs = []
    for _ in range(count):
        capacity = draw(st.integers(1, 8))
        min_party = draw(st.integers(1, 3))
        specs.append(
            Spec(
                capacity=capacity,
                zone=draw(st.integers(0, 2)),
                movable=draw(st.sampled_from((True, True, True, False))),
                min_party=min_party,
                max_party=draw(st.none() | st.integers(min_party, capacity + 2)),
                active=draw(st.sampled_from((True, True, True, False))),
                busy=draw(st.sampled_from(BUSY)),
            )
        )
    pairs = list(itertools.combinations(range(count), 2))
    edges = draw(st.sets(st.sampled_from(pairs))) if pairs else set()
    party = draw(st.integers(1, 16))
    options = {
        "k_max": draw(st.integers(1, 4)),
        "require_adjacency": draw(st.booleans()),
        "adjacency_mode": draw(st.sampled_from(("connected", "neighbors"))),
        "max_combination_evaluations": draw(st.sampled_from((3, 20, 1000))),
        "limit": draw(st.integers(1, 8)),
    }
    return specs, edges, party, options


def _valid(members: tuple[int, ...], edges: set[tuple[int, int]], mode: str) -> bool:
    """The adjacency rule on a set of spec indexes."""

    def touch(a: int, b: int) -> bool:
        return (min(a, b), max(a, b)) in edges

    if len(members) <= 1:
        return True
    if mode == "neighbors":
        return any(all(touch(a, b) for b in members if b != a) for a in members)
    seen = {members[0]}
    frontier = [members[0]]
    while frontier:
        a = frontier.pop()
        for b in members:
            if b not in seen and touch(a, b):
                seen.add(b)
                frontier.append(b)
    return len(seen) == len(members)


def _candidates(
    specs: list[Spec], edges: set[tuple[int, int]], party: int, options: dict[str, Any]
) -> set[frozenset[int]]:
    """Every combination the planner may offer, by brute force."""
    adjacency = options["require_adjacency"]
    mode = options["adjacency_mode"]

    def rule(members: tuple[int, ...]) -> bool:
        return not adjacency or _valid(members, edges, mode)

    pool = [
        i
        for i, s in enumerate(specs)
        if s.active and s.movable and s.busy != "overlap" and s.capacity < party
    ]
    found: set[frozenset[int]] = set()
    for size in range(2, options["k_max"] + 1):
        for members in itertools.combinations(pool, size):
            if len({specs[i].zone for i in members}) != 1 or not rule(members):
                continue
            total = sum(specs[i].capacity for i in members)
            if total < party:
                continue
            redundant = any(
                total - specs[x].capacity >= party and rule(tuple(m for m in members if m != x))
                for x in members
            )
            if not redundant:
                found.add(frozenset(members))
    return found


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=floors())
def test_plans_hold_their_rules_on_random_floors(
    conn: psycopg.Connection,
    example: tuple[list[Spec], set[tuple[int, int]], int, dict[str, Any]],
) -> None:
    specs, edges, party, options = example
    conn.execute("SELECT 1")  # a transaction is open: each example runs in a savepoint
    with conn.transaction(force_rollback=True):
        floor = Floor(conn)
        ids = []
        for i, spec in enumerate(specs):
            number = f"T{i:02}"
            ids.append(
                floor.table(
                    number,
                    spec.capacity,
                    zone=f"Z{spec.zone}",
                    mobility="movable" if spec.movable else "fixed",
                    min_party=spec.min_party,
                    max_party=spec.max_party,
                    active=spec.active,
                )
            )
            if spec.busy != "free":
                window = TOUCHING if spec.busy == "touch" else OVERLAPPING
                floor.allocate(number, window, shadow=spec.busy == "shadow")
        for a, b in edges:
            floor.adjacent(f"T{a:02}", f"T{b:02}")
        rows = plan(conn, floor.booking(party), **options)
    _check_plan(rows, ids, specs, edges, party, options)


def _check_plan(
    rows: list[dict[str, Any]],
    ids: list[str],
    specs: list[Spec],
    edges: set[tuple[int, int]],
    party: int,
    options: dict[str, Any],
) -> None:
    index = {table_id: i for i, table_id in enumerate(ids)}
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) <= options["limit"]
    assert len({r["evaluated"] for r in rows}) <= 1
    assert all(r["evaluated"] <= options["max_combination_evaluations"] for r in rows)

    def fits(i: int) -> bool:
        s = specs[i]
        usable = s.active and s.busy != "overlap"
        return (
            usable and s.capacity >= party and s.min_party <= party <= (s.max_party or s.capacity)
        )

    singles = [index[r["table_ids"][0]] for r in rows if not r["is_combination"]]
    expected = sorted(
        (i for i in range(len(specs)) if fits(i)), key=lambda i: (specs[i].capacity, i)
    )
    assert singles == expected[: options["limit"]]  # T00, T01, ... : number order is index order
    combos = [r for r in rows if r["is_combination"]]
    assert [r["is_combination"] for r in rows] == [False] * len(singles) + [True] * len(combos)

    candidates = _candidates(specs, edges, party, options)
    for r in rows:
        members = [index[t] for t in r["table_ids"]]
        assert len(set(members)) == len(members)
        assert all(specs[i].active and specs[i].busy != "overlap" for i in members)  # free
        assert {specs[i].zone for i in members} == {specs[members[0]].zone}  # one zone
        assert r["total_capacity"] == sum(specs[i].capacity for i in members) >= party
        if r["is_combination"]:
            assert 2 <= len(members) <= options["k_max"]
            assert all(specs[i].movable for i in members)
            assert frozenset(members) in candidates
            if options["require_adjacency"] and options["adjacency_mode"] == "neighbors":
                anchor = members[0]
                assert all((min(anchor, b), max(anchor, b)) in edges for b in members[1:])
            elif options["require_adjacency"]:
                assert _valid(tuple(members), edges, "connected")
    ranks = [(len(r["table_ids"]), r["total_capacity"]) for r in combos]
    assert ranks == sorted(ranks)  # fewer tables first, then least waste

    need = options["limit"] - len(singles)
    if options["max_combination_evaluations"] == 1000 and need > 0:
        # 12 tables make at most 781 sets of 2 to 4: the whole space was enumerated.
        best = sorted((len(c), sum(specs[i].capacity for i in c)) for c in candidates)
        assert ranks == best[:need]


# -- auto_assign_booking -----------------------------------------------------------------


def _auto_assigned(
    conn: psycopg.Connection, tables: dict[str, int], party: int
) -> tuple[Floor, str, dict[str, Any]]:
    """A floor of `tables` (number: capacity) and a booking of `party`, committed, then
    auto_assign of that booking, committed: the floor, the booking and the result."""
    floor = Floor(conn)
    for number, capacity in tables.items():
        floor.table(number, capacity)
    booking = floor.booking(party)
    conn.commit()
    result = auto_assign(conn, booking)
    conn.commit()  # booking_assignment_validation is satisfied at commit
    return floor, booking, result


def test_auto_assign_confirms_a_single_table(conn: psycopg.Connection) -> None:
    floor, booking, result = _auto_assigned(conn, {"T2": 2, "T4": 4}, 4)
    assert result["status"] == "confirmed"
    assert result["table_ids"] == [floor.tables["T4"]]
    assert result["zone_id"] == floor.zones["Main"]
    assert result["is_combination"] is False and result["attempts"] == 1
    assert conn.execute("SELECT status FROM bookings WHERE id = %s", (booking,)).fetchone() == (
        "confirmed",
    )
    assigned = conn.execute(
        "SELECT table_id FROM booking_table_assignments WHERE booking_id = %s", (booking,)
    ).fetchall()
    assert assigned == [(uuid.UUID(floor.tables["T4"]),)]
    allocations = conn.execute(
        "SELECT resource_type, \"window\" = tstzrange(b.start_at, b.end_at, '[)') "
        "FROM allocations a JOIN bookings b ON b.id = a.booking_id WHERE a.booking_id = %s",
        (booking,),
    ).fetchall()
    assert allocations == [("table", True)]
    assert conn.execute(
        "SELECT count(*) FROM table_holds WHERE booking_id = %s", (booking,)
    ).fetchone() == (0,)


def test_auto_assign_confirms_a_combination(any_url: str) -> None:
    with psycopg.connect(any_url) as conn:
        _confirm_a_combination(conn)


def _confirm_a_combination(conn: psycopg.Connection) -> None:
    _, booking, result = _auto_assigned(conn, {"T1": 2, "T2": 2, "T3": 4, "T4": 4}, 5)
    assert result["status"] == "confirmed" and result["is_combination"] is True
    assert result["total_capacity"] == 6 and result["evaluated"] > 0
    assert allocation_kinds(conn, booking) == [("merge_group", 1), ("table", 2)]
    groups = conn.execute(
        "SELECT count(DISTINCT merge_group_id), count(*) FROM booking_table_assignments "
        "WHERE booking_id = %s",
        (booking,),
    ).fetchone()
    assert groups == (1, 2)


def test_auto_assign_reports_no_tables_for_fifty(conn: psycopg.Connection) -> None:
    floor = Floor(conn)
    for i in range(6):
        floor.table(f"T{i}", 4)
    booking = floor.booking(50)
    result = auto_assign(conn, booking)
    assert result["status"] == "no_tables"
    assert result["evaluated"] == 20 + 15  # C(6, 3) triples after C(6, 2) pairs, none seats 50
    conn.commit()
    assert conn.execute("SELECT status FROM bookings WHERE id = %s", (booking,)).fetchone() == (
        "pending",
    )


def test_auto_assign_skips_bookings_not_pending_or_assigned(conn: psycopg.Connection) -> None:
    floor, booking, result = _auto_assigned(conn, {"A": 4, "B": 4}, 4)
    assert result["status"] == "confirmed"
    skipped = auto_assign(conn, booking)
    assert _outcome(skipped) == {
        "status": "skipped",
        "reason": "not_pending",
        "booking_status": "confirmed",
    }
    other = floor.booking(4, start="2030-01-02 19:00+00")
    conn.execute(
        "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES (%s, %s)",
        (other, floor.tables["A"]),
    )
    assert _outcome(auto_assign(conn, other)) == {"status": "skipped", "reason": "already_assigned"}


def _zone_key(zone: str) -> str:
    return f"venuedb.zone:{zone}"


def _wait_for_lock_waiter(url: str, timeout: float = 30) -> None:
    with psycopg.connect(url, autocommit=True) as observer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = observer.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no session waited for a lock")


def _in_thread(url: str, booking: str, results: dict[str, Any], **options: Any) -> threading.Thread:
    """auto_assign(booking, options) in a thread of its own: its result, or what it raised,
    goes to results[booking]."""

    def run() -> None:
        try:
            with psycopg.connect(url) as other:
                results[booking] = auto_assign(other, booking, **options)
                other.commit()
        except Exception as exc:  # reported by the test
            results[booking] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_held_zone_lock_is_recorded_and_waited_for(url: str) -> None:
    with psycopg.connect(url) as holder:
        floor = Floor(holder)
        floor.table("T", 4)
        booking = floor.booking(4)
        holder.commit()
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (_zone_key(floor.zones["Main"]),),
        )
        results: dict[str, Any] = {}
        thread = _in_thread(url, booking, results)
        _wait_for_lock_waiter(url)
        assert booking not in results  # still waiting for the zone
        holder.commit()  # releases the zone
        thread.join(timeout=20)
        assert not thread.is_alive()
        result = results[booking]
        assert not isinstance(result, Exception), result
        assert result["status"] == "confirmed"
        events = holder.execute(
            "SELECT source, severity, restaurant_id, context ->> 'zone_id' "
            "FROM observability_events WHERE event_type = 'zone_lock_conflict' AND booking_id = %s",
            (booking,),
        ).fetchall()
        assert [(s, sev, str(r), z) for s, sev, r, z in events] == [
            ("auto_assign", "warning", floor.restaurant, floor.zones["Main"])
        ]


def _overlaps(conn: psycopg.Connection, restaurant: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM allocations a JOIN allocations b ON a.id < b.id "
        "AND a.resource_type = b.resource_type AND a.resource_id = b.resource_id "
        'AND a."window" && b."window" AND NOT a.shadow AND NOT b.shadow '
        "WHERE a.restaurant_id = %s",
        (restaurant,),
    ).fetchone()
    assert row
    return row[0]


@pytest.mark.parametrize("tables", [1, 2])
def test_concurrent_auto_assigns_never_overlap(url: str, tables: int) -> None:
    with psycopg.connect(url) as first:
        floor = Floor(first)
        for i in range(tables):
            floor.table(f"T{i}", 4)
        early = floor.booking(4, start="2030-01-01 19:00+00")
        late = floor.booking(4, start="2030-01-01 20:00+00")
        first.commit()
        assert auto_assign(first, early)["status"] == "confirmed"  # holds the zone lock
        results: dict[str, Any] = {}
        thread = _in_thread(url, late, results)
        _wait_for_lock_waiter(url)
        first.commit()
        thread.join(timeout=20)
        assert not thread.is_alive()
        result = results[late]
        assert not isinstance(result, Exception), result
        if tables == 1:
            assert result["status"] in ("no_tables", "conflict")
        else:
            assert result["status"] == "confirmed"
        assert _overlaps(first, floor.restaurant) == 0


def test_racing_auto_assigns_never_overlap(url: str) -> None:
    with psycopg.connect(url) as setup:
        floor = Floor(setup)
        for i in range(3):
            floor.table(f"T{i}", 4)
        bookings = [floor.booking(4, start=f"2030-01-01 19:{m:02}+00") for m in (0, 10, 20, 30)]
        setup.commit()
        barrier = threading.Barrier(len(bookings))
        results: dict[str, Any] = {}

        def run(booking: str) -> None:
            try:
                with psycopg.connect(url) as other:
                    barrier.wait(timeout=10)
                    results[booking] = auto_assign(other, booking)
                    other.commit()
            except Exception as exc:  # reported below
                results[booking] = exc

        threads = [threading.Thread(target=run, args=(b,), daemon=True) for b in bookings]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        statuses = sorted(
            r["status"] if isinstance(r, dict) else type(r).__name__ for r in results.values()
        )
        assert statuses == ["confirmed", "confirmed", "confirmed", "no_tables"]
        assert _overlaps(setup, floor.restaurant) == 0


@contextmanager
def _planned_table_taken_meanwhile(
    url: str, **options: Any
) -> Iterator[tuple[Floor, dict[str, Any]]]:
    """auto_assign (with `options`) of a booking of 4 at tables BEST (4) and NEXT (6), while a
    writer that does not take the zone lock allocates BEST over the booking's time: not yet
    committed when the planner plans, committed once its immediate check waits for it.
    Inside: the floor (its connection still open) and auto_assign's result."""
    with psycopg.connect(url) as writer:
        floor = Floor(writer)
        floor.table("BEST", 4)
        floor.table("NEXT", 6)
        booking = floor.booking(4)
        writer.commit()
        floor.allocate("BEST", OVERLAPPING)  # uncommitted: the planner does not see it
        results: dict[str, Any] = {}
        thread = _in_thread(url, booking, results, **options)
        _wait_for_lock_waiter(url)  # the immediate check waits for the writer
        writer.commit()
        thread.join(timeout=20)
        assert not thread.is_alive()
        result = results[booking]
        assert not isinstance(result, Exception), result
        yield floor, result


def test_an_exclusion_violation_is_retried_with_another_table(any_url: str) -> None:
    """A writer that does not take the zone lock takes the planned table meanwhile."""
    with _planned_table_taken_meanwhile(any_url) as (floor, result):
        assert result["status"] == "confirmed" and result["attempts"] == 2
        assert floor.numbers(result["table_ids"]) == ["NEXT"]
        assert _overlaps(floor.conn, floor.restaurant) == 0


def test_conflict_after_max_attempts(any_url: str) -> None:
    with _planned_table_taken_meanwhile(any_url, max_attempts=1) as (_, result):
        outcome = _outcome(result)
        assert outcome.pop("reason", "tables_taken") == "tables_taken"  # v2 names it
        assert outcome == {"status": "conflict", "attempts": 1}
