"""auto_assign_booking (plan + hold + confirm) for one booking at a time: a restaurant of
60 tables on a busy evening, k_max 3.

    .venv/bin/python -m bench.auto_assign [--seed 1] [--pending 100] [--scale 1.0]

Database venuedb_bench_auto_assign (all heads) gets the bench/data/booking.py data set at
--scale as background (other restaurants' allocations), then one evening restaurant per
planner mode: the same floor (3 zones, 60 tables in rows, neighbours in
table_adjacencies), the same existing bookings (most of the floor taken) and the same
pending bookings of mixed party sizes. Each pending booking is auto-assigned in its own
transaction, oldest seating first, as `venuedb assign` does; each call is timed
client-side, commit included.

Each mode runs at every head, then (unless --no-compare) on a fresh copy of the evening
without idx_allocations_resource_id, as before the allocation-lookups release:
confirm_hold_assignment_tx v12, which auto_assign_booking calls, then scans all of
allocations for its snapshot, so the latency grows with the background.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.common import (
    as_comparison,
    latency_summary,
    report,
    row_goals,
    scratch_database,
    settle,
)
from bench.confirm import CREATE_LOOKUP_INDEX, LOOKUP_INDEX
from bench.data import booking
from bench.options import add_no_compare, scaled_parser
from toolkit.engine.migrate import RunOptions, run
from toolkit.server.connection import Target, scalar
from toolkit.venue.flags import planner_options

NAME = "venuedb_bench_auto_assign"
TARGET_P95_MS = 10.0
K_MAX = 3
ZONES = (("Main", 30), ("Terrace", 18), ("Bar", 12))  # 60 tables
PER_ROW = 5
# Table sizes and party sizes by weight, as toolkit/venue/sample_data.py.
TABLE_SIZES = ((2, 30), (4, 35), (6, 15), (8, 12), (10, 5), (12, 3))
PARTY_SIZES = ((1, 4), (2, 34), (3, 14), (4, 22), (5, 7), (6, 7), (7, 3), (8, 3), (10, 2))
# Existing seatings of the evening and the share of tables each already takes.
TAKEN = ((dt.time(17, 30), 120, 0.55), (dt.time(19, 45), 120, 0.6))
PENDING_STARTS = (dt.time(17, 30), dt.time(21, 0))
# Planner modes measured: the seed's defaults (any movable tables of a zone), and
# combinations restricted to neighbouring tables.
MODES = {"any tables": {}, "adjacent only": {"require_adjacency": True}}


@dataclass(frozen=True)
class Table:
    """A table of the evening restaurant."""

    id: uuid.UUID
    zone: int
    number: str
    capacity: int
    mobility: str
    row: int
    column: int


def _id(seed: int, *parts: object) -> uuid.UUID:
    """A deterministic uuid from the seed and a name."""
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"venuedb-bench-auto-assign:{seed}:" + ":".join(map(str, parts))
    )


def _weighted(rng: random.Random, choices: tuple[tuple[int, int], ...]) -> int:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def floor(rng: random.Random, seed: int, mode: str) -> list[Table]:
    """60 tables in rows of PER_ROW per zone; 10+ seaters and a few others are fixed."""
    tables = []
    for zone, (name, size) in enumerate(ZONES):
        for i in range(size):
            capacity = _weighted(rng, TABLE_SIZES)
            fixed = capacity >= 10 or rng.random() < 0.1
            tables.append(
                Table(
                    _id(seed, mode, "table", zone, i),
                    zone,
                    f"{name[:2].upper()}{i + 1:02}",
                    capacity,
                    "fixed" if fixed else "movable",
                    i // PER_ROW,
                    i % PER_ROW,
                )
            )
    return tables


def neighbours(tables: list[Table]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Side by side in a row, and front to back, within a zone."""
    at = {(t.zone, t.row, t.column): t for t in tables}
    pairs = []
    for t in tables:
        for other in (at.get((t.zone, t.row, t.column + 1)), at.get((t.zone, t.row + 1, t.column))):
            if other is not None:
                pairs.append((t.id, other.id))
    return pairs


def build_evening(
    conn: psycopg.Connection, seed: int, mode: str, evening: dt.date, pending: int
) -> list[uuid.UUID]:
    """One evening restaurant: floor, existing confirmed bookings, pending ones (returned)."""
    # Every mode gets the same floor and bookings: the generator restarts from the seed.
    rng = random.Random(seed)
    restaurant = _id(seed, mode, "restaurant")
    tables = floor(rng, seed, mode)
    conn.execute(
        "INSERT INTO restaurants (id, name, slug) VALUES (%s, %s, %s)",
        (
            restaurant,
            f"Busy Evening ({mode})",
            f"bench-auto-assign-{seed}-{mode.replace(' ', '-')}",
        ),
    )
    for zone, (name, _) in enumerate(ZONES):
        conn.execute(
            "INSERT INTO zones (id, restaurant_id, name) VALUES (%s, %s, %s)",
            (_id(seed, mode, "zone", zone), restaurant, name),
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity, "
            "min_party_size, max_party_size, mobility) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    t.id,
                    restaurant,
                    _id(seed, mode, "zone", t.zone),
                    t.number,
                    t.capacity,
                    1 if t.capacity <= 4 else t.capacity // 2,
                    t.capacity,
                    t.mobility,
                )
                for t in tables
            ],
        )
        cur.executemany(
            "INSERT INTO table_adjacencies (restaurant_id, table_a, table_b) VALUES (%s, %s, %s)",
            [(restaurant, a, b) for a, b in neighbours(tables)],
        )
        taken = [
            (t, start, minutes)
            for start, minutes, share in TAKEN
            for t in tables
            if rng.random() < share
        ]
        for n, (table, start, minutes) in enumerate(taken):
            booking_id = _id(seed, mode, "taken", n)
            begin = dt.datetime.combine(evening, start, dt.UTC)
            end = begin + dt.timedelta(minutes=minutes)
            party = max(1, table.capacity - rng.randrange(2))
            cur.execute(
                "INSERT INTO bookings (id, restaurant_id, party_size, booking_date, start_at, "
                "end_at, status, source) VALUES (%s, %s, %s, %s, %s, %s, 'confirmed', 'bench')",
                (booking_id, restaurant, party, evening, begin, end),
            )
            cur.execute(
                "INSERT INTO booking_table_assignments (booking_id, table_id) VALUES (%s, %s)",
                (booking_id, table.id),
            )
            cur.execute(
                "INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "
                "\"window\") VALUES (%s, %s, 'table', %s, tstzrange(%s, %s, '[)'))",
                (restaurant, booking_id, table.id, begin, end),
            )
        first = PENDING_STARTS[0].hour * 60 + PENDING_STARTS[0].minute
        last = PENDING_STARTS[1].hour * 60 + PENDING_STARTS[1].minute
        ids = []
        for n in range(pending):
            booking_id = _id(seed, mode, "pending", n)
            minute = rng.randrange(first, last + 1, 15)
            begin = dt.datetime.combine(evening, dt.time(minute // 60, minute % 60), dt.UTC)
            end = begin + dt.timedelta(minutes=rng.choice((90, 105, 120)))
            cur.execute(
                "INSERT INTO bookings (id, restaurant_id, party_size, booking_date, start_at, "
                "end_at, status, source) VALUES (%s, %s, %s, %s, %s, %s, 'pending', 'bench')",
                (booking_id, restaurant, _weighted(rng, PARTY_SIZES), evening, begin, end),
            )
            ids.append(booking_id)
    conn.commit()
    # Oldest seating first, as toolkit.venue.assign.pending_bookings orders them.
    rows = conn.execute(
        "SELECT id FROM bookings WHERE restaurant_id = %s AND status = 'pending' "
        "ORDER BY start_at, id",
        (restaurant,),
    ).fetchall()
    conn.commit()
    return [r[0] for r in rows]


def assign_all(url: str, bookings: list[uuid.UUID], options: dict[str, Any]) -> dict[str, Any]:
    """auto_assign_booking for each booking, one transaction each; latencies and outcomes."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    combinations = 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        for booking_id in bookings:
            t0 = time.perf_counter()
            result = scalar(
                conn, "SELECT auto_assign_booking(%s, %s)", (booking_id, Jsonb(options))
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            status = str(result.get("status"))
            outcomes[status] = outcomes.get(status, 0) + 1
            combinations += int(bool(result.get("is_combination")))
    return {"latencies": latencies, "outcomes": outcomes, "combinations": combinations}


def measure(
    url: str, args: argparse.Namespace, evening: dt.date, label: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """Build one evening restaurant, auto-assign its pending bookings: the result row."""
    with psycopg.connect(url) as conn:
        pending = build_evening(conn, args.seed, label, evening, args.pending)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    options = {**planner_options(), "k_max": K_MAX, **extra}
    result = assign_all(url, pending, options)
    summary = latency_summary(result["latencies"])
    seated = result["outcomes"].get("confirmed", 0)
    return {
        "planner": f"{label}, k_max {K_MAX}",
        "bookings": len(pending),
        "seated": seated,
        "combinations": result["combinations"],
        "not_seated": len(pending) - seated,
        **summary,
        "target": f"p95 < {TARGET_P95_MS:.0f} ms",
        "met": summary["p95_ms"] < TARGET_P95_MS,
        "outcomes": result["outcomes"],
    }


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="background data set scale")
    parser.add_argument("--pending", type=int, default=100, help="pending bookings to assign")
    add_no_compare(parser, LOOKUP_INDEX, "allocation-lookups")
    args = parser.parse_args()
    anchor = dt.datetime.now(dt.UTC).date()
    evening = anchor + dt.timedelta(days=(4 - anchor.weekday()) % 7 or 7)  # next Friday
    url = scratch_database(NAME)
    run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
    with psycopg.connect(url, autocommit=True) as conn:
        counts = booking.load(conn, scale=args.scale, seed=args.seed, anchor=anchor)
    print(f"background: {counts['allocations']:,} allocations")
    settle()
    rows = []
    for with_index in (True, False) if not args.no_compare else (True,):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(CREATE_LOOKUP_INDEX if with_index else f"DROP INDEX {LOOKUP_INDEX}")
        for mode, extra in MODES.items():
            label = f"{mode}, all heads" if with_index else f"{mode}, without {LOOKUP_INDEX}"
            row = measure(url, args, evening, label, {**extra})
            if not with_index:
                as_comparison(row)
            rows.append(row)
    goals = row_goals(
        rows,
        lambda r: (
            f"auto_assign_booking ({r['planner']}), 60 tables, busy evening, "
            f"{counts['allocations']:,} allocations elsewhere"
        ),
        lambda r: f"p95 {r['p95_ms']} ms, {r['seated']} of {r['bookings']} seated",
    )
    report(
        "auto_assign",
        rows,
        {"seed": args.seed, "evening": evening, "tables": 60, "background": counts},
        goals,
    )


if __name__ == "__main__":
    main()
