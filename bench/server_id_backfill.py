"""The server_id backfills of release mode-switching (seed 002) on 1,000,000 sales, with a
writer doing 100 writes per second on sales (new sales and single-row updates) throughout.

    .venv/bin/python -m bench.server_id_backfill [--scale 1.0] [--seed 1] [--batch-size 5000]

Database venuedb_bench_server_id on the benchmark server, built fresh every run (the
backfill consumes its data): all heads, then bench/data/bar.py (server_id NULL
everywhere). The backfills are the ones declared in migrations/backfills.toml
(sales_server_id, consignments_server_id, returns_server_id), run through toolkit.runbook.backfill
as `venuedb backfill run NAME` runs them.

With --prototype, a second fresh database measures the fix this benchmark found for the
released design's miss (scratch database only, nothing released changes): during the
backfill the tables carry neither idx_<table>_server_id nor <table>_server_id_fkey (each
updated row otherwise pays one more index insert and a foreign key check), and
backfill_server_id_batch joins its UPDATE on the ctid it read instead of a second primary
key lookup; afterwards the foreign keys come back NOT VALID + VALIDATE and the indexes
CONCURRENTLY (timed, the writer still running), as a post-backfill revision would do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.common import Goal, LatencyProbe, Write, report, settle
from bench.data.bar import counts_for, prepare
from bench.options import scaled_parser
from toolkit.runbook.backfill import Options, find_backfill, run
from toolkit.server.connection import Target, scalar

NAME = "venuedb_bench_server_id"
BACKFILLS = ("sales_server_id", "consignments_server_id", "returns_server_id")
TARGET_ROWS_PER_S = 50_000
TARGET_STALL_MS = 200
TARGET = f">={TARGET_ROWS_PER_S // 1000}k/s, stall<={TARGET_STALL_MS}ms"
TABLES = ("sales", "consignments", "returns")
RELEASED_BATCH_FUNCTION = (
    Path(__file__).parent.parent / "sql/functions/backfill_server_id_batch/v1.sql"
)
# The prototype's changes to the released batch function: carry each row's ctid from the
# read to the UPDATE, which then fetches the row by TID instead of probing sales_pkey.
CTID_JOIN = (
    ("SELECT t.id, t.bar_id,", "SELECT t.ctid AS row_ctid, t.id, t.bar_id,"),
    ("SELECT todo.id, todo.bar_id,", "SELECT todo.row_ctid, todo.id, todo.bar_id,"),
    (
        "SELECT r.id, r.bar_id, r.server_name,\n",
        "SELECT r.row_ctid, r.id, r.bar_id, r.server_name,\n",
    ),
    (
        "WHERE t.id = d.id AND d.server_id IS NOT NULL",
        "WHERE t.ctid = d.row_ctid AND d.server_id IS NOT NULL",
    ),
)

NEW_SALE = (
    "INSERT INTO public.sales (bar_id, created_by, server_name, items, total, payment_method) "
    "VALUES (%s, %s, %s, %s, %s, 'card')"
)
VOID_SALE = (
    "UPDATE public.sales SET status = 'voided', updated_at = now() "
    "WHERE id = %s AND status = 'completed'"
)


def sale_id(seed: int, n: int) -> uuid.UUID:
    """The id bench/data/bar.py gives generated sale n: md5('seed:sale:n')."""
    return uuid.UUID(hashlib.md5(f"{seed}:sale:{n}".encode()).hexdigest())


def writer(url: str, seed: int, sales: int) -> Write:
    """The app's writes during the backfill: a new sale, then a sale voided, alternately.

    New sales come in as the app records them before the flag is on (server_name only,
    server_id NULL: the backfill may pick them up too); the voided sale is any generated
    sale, so it may sit in the batch the backfill holds at that moment.
    """
    with psycopg.connect(url) as conn:
        manager_row = conn.execute(
            "SELECT bar_id, user_id FROM public.bar_members WHERE role = 'manager' "
            "ORDER BY bar_id, user_id LIMIT 1"
        ).fetchone()
    assert manager_row is not None, "bench.data.bar gives every bar a manager"
    bar_id, manager = manager_row
    rng = random.Random(seed)
    items = json.dumps([{"product": "Beer", "qty": 1, "price": 4.5}])

    def statement(i: int) -> tuple[str, tuple[Any, ...]]:
        if i % 2 == 0:
            return NEW_SALE, (bar_id, manager, "Marie Claire", items, 4.5)
        return VOID_SALE, (sale_id(seed, rng.randint(1, sales)),)

    return statement


def outcome_counts(url: str) -> dict[str, Any]:
    """How the sales were resolved: by mapping, by the creator, not at all; log rows."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT fallback_used), "
            "count(*) FILTER (WHERE fallback_used AND resolved_server_id IS NOT NULL), "
            "count(*) FILTER (WHERE resolved_server_id IS NULL), count(*) "
            "FROM public.migration_server_id_log WHERE table_name = 'sales'"
        ).fetchone()
        assert row is not None  # an aggregate without GROUP BY: always one row
        left = scalar(conn, "SELECT count(*) FROM public.sales WHERE server_id IS NULL")
    return {
        "sales_by_mapping": row[0],
        "sales_by_creator": row[1],
        "sales_unresolved": row[2],
        "sales_logged": row[3],
        "sales_server_id_null_after": left,
    }


def writer_columns(writes: dict[str, Any]) -> dict[str, Any]:
    """The probe's summary as short report columns (w_ = the concurrent writer)."""
    return {
        "w_writes": writes["writes"],
        "w_failed": writes["failed"],
        "w_p50_ms": writes["p50_ms"],
        "w_p99_ms": writes["p99_ms"],
        "w_max_ms": writes["max_ms"],
        "w_stalled": writes["stalled_over_200ms"],
    }


def prototype_function() -> str:
    """The released backfill_server_id_batch v1, changed as CTID_JOIN says (same rules)."""
    sql = RELEASED_BATCH_FUNCTION.read_text()
    sql = sql[sql.index("CREATE OR REPLACE FUNCTION") : sql.index("COMMENT ON FUNCTION")]
    for old, new in CTID_JOIN:
        if sql.count(old) != 1:
            raise RuntimeError(f"released function changed, cannot prototype: {old!r}")
        sql = sql.replace(old, new)
    return sql


def apply_prototype(url: str) -> None:
    """The prototype, in the scratch database: no server_id index nor foreign key during
    the backfill, the ctid-joined batch function."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"DROP INDEX public.idx_{table}_server_id")
            conn.execute(f"ALTER TABLE public.{table} DROP CONSTRAINT {table}_server_id_fkey")
        conn.execute(prototype_function())


def restore_after_backfill(url: str, probe: LatencyProbe) -> tuple[dict[str, Any], dict]:
    """What the prototype defers, done online after the backfill: per table ANALYZE, the
    foreign key NOT VALID then VALIDATE (writers keep going), the index CONCURRENTLY.
    Its report row, and the seconds of each step."""
    steps: dict[str, float] = {}
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            for step, sql in (
                # Without fresh statistics (server_id was all NULL at the last ANALYZE)
                # VALIDATE plans a nested loop: 52 s instead of 0.2 s on 1M sales.
                ("analyze", f"ANALYZE public.{table}"),
                (
                    "add_fk_not_valid",
                    f"ALTER TABLE public.{table} ADD CONSTRAINT {table}_server_id_fkey "
                    "FOREIGN KEY (server_id) REFERENCES auth.users (id) ON DELETE SET NULL "
                    "NOT VALID",
                ),
                (
                    "validate_fk",
                    f"ALTER TABLE public.{table} VALIDATE CONSTRAINT {table}_server_id_fkey",
                ),
                (
                    "create_index_concurrently",
                    f"CREATE INDEX CONCURRENTLY idx_{table}_server_id ON public.{table} (server_id)",
                ),
            ):
                t0 = time.monotonic()
                conn.execute(sql)
                steps[f"{table}.{step}"] = round(time.monotonic() - t0, 3)
    finished = time.monotonic()
    writes = probe.summary(since=started, until=finished)
    row = {
        "variant": "prototype",
        "backfill": "after: FK VALIDATE, index CONCURRENTLY",
        "state": "finished",
        "rows": "-",
        "changed": "-",
        "seconds": round(finished - started, 2),
        "rows_per_s": "-",
        **writer_columns(writes),
        "target": f"stall<={TARGET_STALL_MS}ms",
        "met": writes["stalled_over_200ms"] == 0 and writes["failed"] == 0,
    }
    return row, steps


def run_backfill(
    url: str, variant: str, name: str, probe: LatencyProbe, batch_size: int
) -> dict[str, Any]:
    """One registered backfill through the engine, timed: its report row, with the writes
    the probe started while it ran."""
    started = time.monotonic()
    outcome = run(Target(url, "bench"), find_backfill(name), Options(batch_size=batch_size))
    finished = time.monotonic()
    seconds = finished - started
    writes = probe.summary(since=started, until=finished)
    rate = outcome.rows / seconds if seconds else 0.0
    return {
        "variant": variant,
        "backfill": name,
        "state": outcome.state,
        "rows": outcome.rows,
        "changed": outcome.changed,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rate),
        **writer_columns(writes),
        "target": TARGET,
        "met": rate >= TARGET_ROWS_PER_S
        and writes["stalled_over_200ms"] == 0
        and writes["failed"] == 0
        and outcome.state == "finished",
    }


def measure(variant: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict]:
    """A fresh database, the variant applied, the three backfills under the writer; the
    report rows and how the sales were resolved."""
    url, _ = prepare(NAME, scale=args.scale, seed=args.seed, reuse=False)
    settle()
    if variant == "prototype":
        apply_prototype(url)
    probe = LatencyProbe(url, writer(url, args.seed, counts_for(args.scale)["sales"]))
    rows = []
    with probe.running():
        time.sleep(1.0)  # the writer connected and at its pace before the first batch
        for name in BACKFILLS:
            rows.append(run_backfill(url, variant, name, probe, args.batch_size))
        outcome = outcome_counts(url)
        if variant == "prototype":
            row, outcome["after_steps_seconds"] = restore_after_backfill(url, probe)
            rows.append(row)
    return rows, outcome


def main() -> None:
    parser = scaled_parser(__doc__)
    # 2000: as fast as 5000 (25.7k vs 25.9k rows/s) and a write waiting on a batch waits
    # 55 ms at worst instead of 197 ms (a batch holds its rows until it commits).
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument(
        "--prototype", action="store_true", help="also measure the prototyped fix (see above)"
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    outcomes: dict[str, Any] = {}
    for variant in ("released", "prototype") if args.prototype else ("released",):
        variant_rows, outcomes[variant] = measure(variant, args)
        rows += variant_rows
    if args.prototype:
        # Deferring the FK and index is only a gain if their online rebuild is cheap too.
        sales, after = rows[-4], rows[-1]
        outcomes["prototype_sales_rows_per_s_including_after_steps"] = round(
            sales["rows"] / (sales["seconds"] + after["seconds"])
        )
    goals = [
        Goal(
            f"server_id backfill {r['backfill']}, {r['rows']:,} rows, 100 writes/s beside it",
            f">= {TARGET_ROWS_PER_S:,} rows/s, no write stalled > {TARGET_STALL_MS} ms",
            f"{r['rows_per_s']:,} rows/s, {r['w_stalled']} writes > {TARGET_STALL_MS} ms",
            bool(r["met"]),
        )
        for r in rows
        if r["variant"] == "released" and "backfill" in r
    ]
    report(
        "server_id_backfill",
        rows,
        {
            "scale": args.scale,
            "seed": args.seed,
            "batch_size": args.batch_size,
            "writer_per_s": 100.0,
            "w_stalled_means": f"writes that took > {TARGET_STALL_MS} ms",
            "target_rows_per_s": TARGET_ROWS_PER_S,
            "target_max_writer_stall_ms": TARGET_STALL_MS,
            "resolution": outcomes,
        },
        goals,
    )


if __name__ == "__main__":
    main()
