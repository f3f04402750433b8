"""Every release applied to a database that holds 1,000,000 bookings, allocations and
sales while the application keeps writing at 100 writes/s, twice: the way venuedb
applies it, and a deliberately naive way; the writers' stalls side by side.

    .venv/bin/python -m bench.migrations_under_load [--scale 1.0] [--seed 1] [--rate 100]

The starting point is the two baselines (core, booking-baseline, bar-baseline) loaded
with bench/data/booking.py and bench/data/bar.py, built once into database
venuedb_bench_migrate_base and cloned for each run. Then, in apply order, each release:

- venuedb: `toolkit.engine.migrate.run` exactly as `venuedb apply RELEASE` runs it (one
  transaction per revision, lock_timeout 1 s with retries, CONCURRENTLY, NOT VALID then
  VALIDATE outside the transaction, the shadow-table swap for the exclusion constraint),
  and for mode-switching the server_id backfills through the batched engine.
- naive: the same revisions with the plain forms, each revision one transaction, no
  lock_timeout: CREATE INDEX without CONCURRENTLY, constraints validated inside the
  transaction that added them (the locks of ADD COLUMN / ADD CONSTRAINT held through the
  scan, as a plain ADD CONSTRAINT does), the exclusion constraint replaced by ALTER TABLE,
  and each backfill as one UPDATE over the whole table.

The writers, one connection per kind of write, share the rate: bookings inserted and
updated, allocations inserted (maintenance blocks, never overlapping) and updated, sales
inserted and updated. A write "stalled" when it took more than 200 ms.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.common import (
    Goal,
    LatencyProbe,
    Write,
    clone_database,
    database_url,
    report,
    scratch_database,
    settle,
)
from bench.data import bar as bar_data
from bench.data import booking as booking_data
from bench.options import add_write_rate, scaled_parser
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import Release, load_releases
from toolkit.runbook import backfill as backfills
from toolkit.server.connection import Target

BASE = "venuedb_bench_migrate_base"
STALL_MS = 200
BACKFILL_BATCH = 2000  # as bench.server_id_backfill: same rate, shorter row locks
# Where the allocation writer puts its maintenance blocks: far beyond any booking.
MAINTENANCE_EPOCH = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Phase:
    """One timed step of a run: a release, or the backfills of one."""

    name: str
    started: float
    ended: float
    note: str = ""


def _base_database(scale: float, seed: int) -> str:
    """The two baselines holding the generated rows; built once per (scale, seed)."""
    url = database_url(BASE)
    marker = f"scale={scale} seed={seed}"
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT obj_description('public.bookings'::regclass)").fetchone()
        if row and row[0] == f"bench base {marker}":
            print(f"reusing {BASE} ({marker})")
            return url
    except psycopg.Error:
        pass
    url = scratch_database(BASE)
    target = Target(url, "bench")
    for release in ("booking-baseline", "bar-baseline"):
        run(target, "upgrade", release, RunOptions(actor="bench"))
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        counts = booking_data.load(conn, scale=scale, seed=seed)
        counts |= bar_data.load(conn, scale=scale, seed=seed)
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"COMMENT ON TABLE public.bookings IS 'bench base {marker}'")
    print(
        f"generated {BASE} in {time.monotonic() - started:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    return url


def _samples(url: str) -> dict[str, list[Any]]:
    """Ids the writers pick from: existing rows to update, parents for new rows."""
    with psycopg.connect(url) as conn:

        def ids(sql: str) -> list[Any]:
            return [r[0] for r in conn.execute(sql)]

        def sampled(table: str) -> list[Any]:
            # A 1 % page sample of a small table (a small --scale) may hit no row at all.
            return ids(f"SELECT id FROM {table} TABLESAMPLE SYSTEM (1) LIMIT 5000") or ids(
                f"SELECT id FROM {table} LIMIT 5000"
            )

        return {
            "restaurants": ids("SELECT id FROM restaurants ORDER BY id LIMIT 200"),
            "tables": [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT id, restaurant_id FROM table_inventory ORDER BY id LIMIT 500"
                )
            ],
            "bookings": sampled("bookings"),
            "allocations": sampled("allocations"),
            "bars": ids("SELECT id FROM bars ORDER BY id LIMIT 500"),
            "sales": sampled("sales"),
        }


def _writes(sample: dict[str, list[Any]], seed: int) -> dict[str, Write]:
    """The application's writes, each valid before, during and after every release."""
    rng = random.Random(seed)
    today = dt.date.today()

    def booking_insert(i: int) -> tuple[str, tuple[Any, ...]]:
        start = dt.datetime.combine(today, dt.time(19), dt.UTC) + dt.timedelta(days=i % 60)
        return (
            "INSERT INTO bookings (restaurant_id, party_size, booking_date, start_at, end_at, "
            "status, source) VALUES (%s, 2, %s, %s, %s, 'pending', 'bench-load')",
            (rng.choice(sample["restaurants"]), start.date(), start, start + dt.timedelta(hours=2)),
        )

    def booking_update(i: int) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE bookings SET updated_at = now() WHERE id = %s",
            (rng.choice(sample["bookings"]),),
        )

    def allocation_insert(i: int) -> tuple[str, tuple[Any, ...]]:
        table_id, restaurant_id = rng.choice(sample["tables"])
        start = MAINTENANCE_EPOCH + dt.timedelta(hours=i)  # one hour per write: no overlap
        return (
            'INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", '
            "is_maintenance) VALUES (%s, 'table', %s, tstzrange(%s, %s, '[)'), true)",
            (restaurant_id, table_id, start, start + dt.timedelta(hours=1)),
        )

    def allocation_update(i: int) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE allocations SET updated_at = now() WHERE id = %s",
            (rng.choice(sample["allocations"]),),
        )

    def sale_insert(i: int) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO sales (bar_id, server_name, items, total, payment_method) "
            "VALUES (%s, 'Bench Server', '[{\"product\": \"Beer\", \"qty\": 1}]', 4.5, 'card')",
            (rng.choice(sample["bars"]),),
        )

    def sale_update(i: int) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE sales SET updated_at = now() WHERE id = %s",
            (rng.choice(sample["sales"]),),
        )

    return {
        "booking insert": booking_insert,
        "booking update": booking_update,
        "allocation insert": allocation_insert,
        "allocation update": allocation_update,
        "sale insert": sale_insert,
        "sale update": sale_update,
    }


@contextmanager
def writers(
    url: str, seed: int, rate: float, kinds: Collection[str] | None = None
) -> Iterator[dict[str, LatencyProbe]]:
    """The writers (all six, or those `kinds` names), sharing `rate` writes/s; also used by
    bench.rollback_level2."""
    writes = _writes(_samples(url), seed)
    if kinds is not None:
        writes = {kind: write for kind, write in writes.items() if kind in kinds}
    probes = {
        kind: LatencyProbe(url, write, per_second=rate / len(writes))
        for kind, write in writes.items()
    }
    with ExitStack() as stack:
        for probe in probes.values():
            stack.enter_context(probe.running())
        time.sleep(1.0)  # the writers are warm before the first release starts
        yield probes


def _apply_online(url: str, release: Release) -> list[Phase]:
    target = Target(url, "bench")
    t0 = time.monotonic()
    result = run(target, "upgrade", release.name, RunOptions(actor="bench"))
    phases = [Phase(release.name, t0, time.monotonic(), f"{result.attempts} attempt(s)")]
    names = [b.name for b in backfills.load_backfills() if b.release == release.name]
    if names:
        t0 = time.monotonic()
        rows = 0
        for name in names:
            outcome = backfills.run(
                target, backfills.find_backfill(name), backfills.Options(batch_size=BACKFILL_BATCH)
            )
            rows += outcome.rows
        phases.append(
            Phase(f"{release.name} backfill", t0, time.monotonic(), f"{rows:,} rows, batched")
        )
    return phases


def _apply_naive(url: str, release: Release) -> list[Phase]:
    """The same revisions, each one transaction, with the plain forms and no lock_timeout."""
    from alembic import command
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    t0 = time.monotonic()
    try:
        with engine.connect() as conn:
            config = revs.alembic_config(conn)
            # The toolkit's online helpers fall back to their plain transactional forms
            # under this flag (it is what `apply --rehearse` uses); here it is committed.
            config.attributes["venuedb_rehearse"] = True
            for revision in release.revisions:
                with conn.begin():
                    command.upgrade(config, revision)
    finally:
        engine.dispose()
    phases = [Phase(release.name, t0, time.monotonic(), "plain DDL, one transaction each")]
    names = [b for b in backfills.load_backfills() if b.release == release.name]
    if names:
        t0 = time.monotonic()
        rows = 0
        with psycopg.connect(url, autocommit=True) as conn:
            for backfill in names:
                # The batch function over the whole key range: one UPDATE of every row.
                found = conn.execute(
                    f"SELECT {backfill.function}(NULL, "
                    f"(SELECT {backfill.key} FROM {backfill.table} "
                    f"ORDER BY {backfill.key} DESC LIMIT 1))"
                ).fetchone()
                rows += found[0] if found else 0
        phases.append(
            Phase(f"{release.name} backfill", t0, time.monotonic(), f"{rows:,} rows, one UPDATE")
        )
    return phases


def _releases_after_baselines() -> list[Release]:
    """Every release in apply order but the first of each branch (core and the baselines)."""
    seen: set[str] = set()
    later = []
    for release in load_releases():
        if release.branch in seen:
            later.append(release)
        seen.add(release.branch)
    return later


def _run(
    method: str, url: str, releases: list[Release], seed: int, rate: float
) -> list[dict[str, Any]]:
    apply = _apply_online if method == "venuedb" else _apply_naive
    phases: list[Phase] = []
    with writers(url, seed, rate) as probes:
        for release in releases:
            print(f"{method}: applying {release.name} under load ...", flush=True)
            phases += apply(url, release)
        time.sleep(1.0)
    rows = []
    for phase in phases:
        stats = [p.summary(phase.started, phase.ended) for p in probes.values()]
        worst = max(probes, key=lambda k: probes[k].summary(phase.started, phase.ended)["max_ms"])
        rows.append(
            {
                "method": method,
                "phase": phase.name,
                "seconds": round(phase.ended - phase.started, 2),
                "writes": sum(s["writes"] for s in stats),
                "failed": sum(s["failed"] for s in stats),
                "writer_p99_ms": max(s["p99_ms"] for s in stats),
                "writer_max_ms": max(s["max_ms"] for s in stats),
                "slowest_write": worst,
                "stalled_over_200ms": sum(s["stalled_over_200ms"] for s in stats),
                "note": phase.note,
            }
        )
    errors = sorted({e for p in probes.values() for e in p.errors})
    if errors:
        print(f"{method}: writer errors: " + "; ".join(errors[:5]))
    return rows


def _side_by_side(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per phase: venuedb's figures beside the naive run's."""
    by_phase: dict[str, dict[str, Any]] = {}
    for r in rows:
        line = by_phase.setdefault(r["phase"], {"phase": r["phase"]})
        m = r["method"]
        line[f"{m} s"] = r["seconds"]
        line[f"{m} worst write ms"] = r["writer_max_ms"]
        line[f"{m} writes > 200 ms"] = r["stalled_over_200ms"]
        line[f"{m} failed"] = r["failed"]
    return list(by_phase.values())


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="1.0 = 1,000,000 rows each")
    add_write_rate(parser)
    parser.add_argument(
        "--only", choices=("venuedb", "naive"), help="run one method (default: both)"
    )
    args = parser.parse_args()
    base = _base_database(args.scale, args.seed)
    base_name = base.rsplit("/", 1)[-1]
    releases = _releases_after_baselines()
    rows: list[dict[str, Any]] = []
    for method in ("venuedb", "naive"):
        if args.only and args.only != method:
            continue
        url = clone_database(base_name, f"venuedb_bench_migrate_{method}")
        settle()
        rows += _run(method, url, releases, args.seed, args.rate)
    goals = [
        Goal(
            f"{r['phase']} applied by venuedb, {args.scale * 1_000_000:,.0f} rows per table, "
            f"{args.rate:g} writes/s",
            f"no write stalled > {STALL_MS} ms, none failed",
            f"worst write {r['writer_max_ms']} ms, {r['failed']} failed",
            r["stalled_over_200ms"] == 0 and r["failed"] == 0,
        )
        for r in rows
        if r["method"] == "venuedb"
    ]
    report(
        "migrations_under_load",
        _side_by_side(rows),
        {"scale": args.scale, "seed": args.seed, "rate": args.rate, "detail": rows},
        goals,
    )


if __name__ == "__main__":
    main()
