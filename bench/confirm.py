"""confirm_hold_assignment_tx under 4 concurrent clients, and overlapping allocations
rejected, on 1,000,000 existing allocations (bench/data/booking.py at scale 1.0).

    .venv/bin/python -m bench.confirm [--scale 1.0] [--seed 1] [--clients 4] [--seconds 20]

The data is generated once into database venuedb_bench_confirm (migrated to all heads)
and reused by later runs with the same scale, seed and day; each run first deletes what
the previous run added. Each client is a process of its own (the target is the
database's throughput, not Python's), on its own connection, one transaction per call.

Half the holds are confirmed on the schema at every head; the other half, unless
--no-compare, with idx_allocations_resource_id dropped, i.e. as before the
allocation-lookups release (booking_009), which this benchmark's first runs called for:
without that index the function's evidence snapshot read the whole allocations table.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.common import (
    Goal,
    as_comparison,
    database_comment,
    database_url,
    latency_summary,
    report,
    scratch_database,
    settle,
)
from bench.data import booking
from bench.options import add_no_compare, scaled_parser
from toolkit.engine.migrate import RunOptions, run
from toolkit.server.connection import Target, scalar

NAME = "venuedb_bench_confirm"
SOURCE = "bench-confirm"  # bookings.source of the pending bookings this benchmark adds
TARGET_PER_S = 1000.0
TARGET_P99_MS = 20.0
TARGET_REJECT_P50_MS = 1.0
# The snapshot query of confirm_hold_assignment_tx v12 (allocations of the hold's tables
# overlapping the window, shadow ones included) cannot use allocations_no_overlap, whose
# index is partial (WHERE NOT shadow); booking_009 added this one for it. The comparison
# run drops it; reset() puts it back exactly as the revision builds it.
LOOKUP_INDEX = "idx_allocations_resource_id"
CREATE_LOOKUP_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {LOOKUP_INDEX} ON public.allocations USING btree (resource_id)"
)

# One pending booking per (table, future day) in the generator's free afternoon window
# (local 15:00-16:30, inside booking.FREE_WINDOW), each with a one-table hold on its table.
PENDING = """
CREATE TEMP TABLE _confirm_work ON COMMIT DROP AS
SELECT md5('confirm:' || n)::uuid AS booking_id, md5('confirm-hold:' || n)::uuid AS hold_id,
       n, table_id, zone_id, restaurant_id, capacity, day,
       (day + time '15:00') AT TIME ZONE timezone AS start_at,
       (day + time '16:30') AT TIME ZONE timezone AS end_at
FROM (
    SELECT t.id AS table_id, t.zone_id, t.restaurant_id, t.capacity, r.timezone,
           d::date AS day, row_number() OVER (ORDER BY d, t.id) AS n
    FROM table_inventory t
    JOIN restaurants r ON r.id = t.restaurant_id AND r.slug LIKE 'bench-%%'
    CROSS JOIN generate_series(%(first)s::date, %(first)s::date + 400, interval '1 day') AS d
) AS slots
WHERE n <= %(count)s;

INSERT INTO bookings (id, restaurant_id, customer_name, party_size, booking_date, start_time,
                      end_time, start_at, end_at, status, source)
SELECT booking_id, restaurant_id, 'Bench Confirm ' || n, greatest(1, capacity - 1), day,
       time '15:00', time '16:30', start_at, end_at, 'pending', %(source)s
FROM _confirm_work ORDER BY n;

INSERT INTO table_holds (id, restaurant_id, booking_id, zone_id, start_at, end_at, expires_at)
SELECT hold_id, restaurant_id, booking_id, zone_id, start_at, end_at, now() + interval '1 day'
FROM _confirm_work ORDER BY n;

INSERT INTO table_hold_members (hold_id, table_id)
SELECT hold_id, table_id FROM _confirm_work ORDER BY n
"""


@dataclass(frozen=True)
class Work:
    """One client's share: (hold, booking) pairs to confirm, and when to stop."""

    url: str
    pairs: list[tuple[str, str]]
    seconds: float


def dataset_tag(scale: float, seed: int, anchor: dt.date) -> str:
    """What the scratch database's comment says about the data it holds."""
    # v3: no booking created after the anchor, past share of the filled days (older
    # databases are built again).
    return f"bench.data.booking v3 scale={scale} seed={seed} anchor={anchor.isoformat()}"


def prepare(scale: float, seed: int, anchor: dt.date, name: str = NAME) -> str:
    """The URL of database `name` at all heads holding the booking data set (reused, and
    migrated to the heads, when it already holds it)."""
    tag = dataset_tag(scale, seed, anchor)
    url = database_url(name)
    if database_comment(url) == tag:
        print(f"reusing {name}: {tag}")
        run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
        return url
    url = scratch_database(name)
    run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        counts = booking.load(conn, scale=scale, seed=seed, anchor=anchor)
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{tag}'")
    print(f"generated in {time.monotonic() - started:.0f} s: {counts}")
    return url


def reset(url: str) -> None:
    """Delete what earlier runs added (cascades to holds, assignments, allocations, results)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CREATE_LOOKUP_INDEX)
        conn.execute("DELETE FROM bookings WHERE source = %s", (SOURCE,))
        conn.execute("DELETE FROM allocations WHERE booking_id IS NULL")
        conn.execute(
            "VACUUM (ANALYZE) bookings, booking_table_assignments, allocations, table_holds, "
            "table_hold_members, booking_confirmation_results"
        )


def add_pending(url: str, count: int, anchor: dt.date) -> list[tuple[str, str]]:
    """`count` pending bookings, each with a one-table hold: the (hold, booking) pairs."""
    params = {"source": SOURCE, "first": anchor + dt.timedelta(days=1), "count": count}
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            for statement in PENDING.split(";\n"):
                conn.execute(statement, params)
        conn.execute("VACUUM (ANALYZE) bookings, table_holds, table_hold_members")
        rows = conn.execute(
            "SELECT h.id::text, h.booking_id::text FROM table_holds h "
            "JOIN bookings b ON b.id = h.booking_id WHERE b.source = %s ORDER BY h.id",
            (SOURCE,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def client(work: Work, start: Any, results: Any) -> None:
    """One client process: confirm its holds one call (one transaction) at a time."""
    latencies: list[float] = []
    confirmed = refused = 0
    with psycopg.connect(work.url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        start.wait()
        deadline = time.perf_counter() + work.seconds
        for hold, booking_id in work.pairs:
            t0 = time.perf_counter()
            row = conn.execute(
                "SELECT bool_and(confirmed) FROM confirm_hold_assignment_tx(%s, %s)",
                (hold, booking_id),
            ).fetchone()
            t1 = time.perf_counter()
            latencies.append((t1 - t0) * 1000)
            if row is not None and row[0]:
                confirmed += 1
            else:
                refused += 1
            if t1 >= deadline:
                break
    results.put({"latencies": latencies, "confirmed": confirmed, "refused": refused, "end": t1})


def confirm_run(
    url: str, pairs: list[tuple[str, str]], clients: int, seconds: float
) -> dict[str, Any]:
    """Run `clients` processes over the pairs (dealt round-robin); their combined result."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(Work(url, pairs[i::clients], seconds), start, results))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    start.wait()
    began = time.perf_counter()
    outcomes = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(o["end"] for o in outcomes) - began
    latencies = [ms for o in outcomes for ms in o["latencies"]]
    return {
        "calls": len(latencies),
        "confirmed": sum(o["confirmed"] for o in outcomes),
        "refused": sum(o["refused"] for o in outcomes),
        "seconds": elapsed,
        "latencies": latencies,
    }


def overlap_run(url: str, attempts: int, seed: int) -> dict[str, Any]:
    """INSERT allocations overlapping existing ones (same table, window shifted 30 min)."""
    latencies: list[float] = []
    rejected = 0
    with psycopg.connect(url, autocommit=True) as conn:
        # A deterministic sample of live future allocations spread over the whole table.
        victims = conn.execute(
            """
            SELECT restaurant_id, resource_id, "window" FROM allocations
            WHERE resource_type = 'table' AND NOT shadow AND lower("window") > now()
            ORDER BY hashtext(id::text || %s) LIMIT %s
            """,
            (str(seed), attempts),
        ).fetchall()
        for restaurant, table, window in victims:
            shifted = (
                window.lower + dt.timedelta(minutes=30),
                window.upper + dt.timedelta(minutes=30),
            )
            t0 = time.perf_counter()
            try:
                conn.execute(
                    "INSERT INTO allocations (restaurant_id, resource_type, resource_id, "
                    "\"window\") VALUES (%s, 'table', %s, tstzrange(%s, %s, '[)'))",
                    (restaurant, table, *shifted),
                )
            except psycopg.errors.ExclusionViolation:
                rejected += 1
            latencies.append((time.perf_counter() - t0) * 1000)
    return {"attempts": len(latencies), "rejected": rejected, "latencies": latencies}


def drop_lookup_index(url: str) -> None:
    """The schema as before allocation-lookups (reset() restores the index)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {LOOKUP_INDEX}")
        conn.execute("ANALYZE allocations")


def confirm_row(label: str, clients: int, confirm: dict[str, Any]) -> dict[str, Any]:
    """A result row for one confirmation run, with its target and whether it was met."""
    per_s = confirm["confirmed"] / confirm["seconds"]
    latency = latency_summary(confirm["latencies"])
    return {
        "what": f"confirm_hold_assignment_tx, {clients} clients, {label}",
        "calls": confirm["calls"],
        "ok": confirm["confirmed"],
        "per_s": round(per_s),
        **latency,
        "target": f">= {TARGET_PER_S:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms",
        "met": per_s >= TARGET_PER_S
        and latency["p99_ms"] < TARGET_P99_MS
        and confirm["refused"] == 0,
    }


def overlap_row(overlap: dict[str, Any]) -> dict[str, Any]:
    """The result row of the overlapping-allocation attempts."""
    latency = latency_summary(overlap["latencies"])
    return {
        "what": "overlapping allocation rejected",
        "calls": overlap["attempts"],
        "ok": overlap["rejected"],
        "per_s": "-",
        **latency,
        "target": f"p50 < {TARGET_REJECT_P50_MS:.0f} ms, all rejected",
        "met": latency["p50_ms"] < TARGET_REJECT_P50_MS
        and overlap["rejected"] == overlap["attempts"] > 0,
    }


def main() -> None:
    parser = scaled_parser(__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="per confirmation run")
    parser.add_argument("--bookings", type=int, default=120_000, help="pending bookings to offer")
    parser.add_argument("--overlaps", type=int, default=2000, help="overlapping inserts tried")
    add_no_compare(parser, LOOKUP_INDEX, "allocation-lookups")
    args = parser.parse_args()
    anchor = dt.datetime.now(dt.UTC).date()
    url = prepare(args.scale, args.seed, anchor)
    reset(url)
    with psycopg.connect(url) as conn:
        existing = scalar(conn, "SELECT count(*) FROM allocations")
    pairs = add_pending(url, args.bookings, anchor)
    settle()
    print(f"{existing:,} allocations; {len(pairs):,} pending bookings with holds")
    # Half the holds for the schema at every head, half for the comparison without the index.
    heads = confirm_run(url, pairs[0::2], args.clients, args.seconds)
    rows = [confirm_row("all heads", args.clients, heads)]
    overlap = overlap_run(url, args.overlaps, args.seed)
    extra: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "clients": args.clients,
        "existing_allocations": existing,
        "refused": heads["refused"],
    }
    if not args.no_compare:
        drop_lookup_index(url)
        before = confirm_run(url, pairs[1::2], args.clients, args.seconds)
        row = confirm_row(f"without {LOOKUP_INDEX}", args.clients, before)
        as_comparison(row)
        rows.append(row)
        reset(url)
    over = overlap_row(overlap)
    rows.append(over)
    confirm = rows[0]
    goals = [
        Goal(
            f"confirm_hold_assignment_tx, {args.clients} clients, {existing:,} allocations",
            confirm["target"],
            f"{confirm['per_s']:,}/s, p99 {confirm['p99_ms']} ms, {heads['refused']} refused",
            bool(confirm["met"]),
        ),
        Goal(
            f"overlapping allocation rejected, {existing:,} allocations",
            over["target"],
            f"p50 {over['p50_ms']} ms, {over['ok']} of {over['calls']} rejected",
            bool(over["met"]),
        ),
    ]
    report("confirm", rows, extra, goals)


if __name__ == "__main__":
    main()
