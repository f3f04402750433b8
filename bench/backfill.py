"""Backfill of 1,000,000 rows through the engine vs one naive UPDATE, with a writer
running 100 single-row updates per second on the same table throughout.

    .venv/bin/python -m bench.backfill [--scale 1.0] [--rows N] [--batch-size 5000]

The engine on a plain table, against the naive statement; the real server_id backfill
has a benchmark of its own (bench/server_id_backfill.py).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import LatencyProbe, report, scratch_database, settle
from bench.options import scaled_parser
from toolkit.runbook.backfill import Options, find_backfill, run
from toolkit.server.connection import Target

SETUP = """
CREATE TABLE bench_items (id bigint PRIMARY KEY, value int NOT NULL, doubled int);
INSERT INTO bench_items (id, value) SELECT g, g % 1000 FROM generate_series(1, %(rows)s) g;
CREATE FUNCTION bench_double(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    UPDATE bench_items SET doubled = value * 2
    WHERE id > coalesce(p_from, -1) AND id <= p_to AND doubled IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
"""

REGISTRY = """
[[backfill]]
name = "bench_double"
table = "bench_items"
key = "id"
function = "bench_double"
todo = "doubled IS NULL"
description = "benchmark"
"""


def main() -> None:
    parser = scaled_parser(
        __doc__, scale_help="1.0: 1,000,000 rows", seed_help="seeds the writer's row choice"
    )
    parser.add_argument("--rows", type=int, help="default 1,000,000 x scale")
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    args.rows = args.rows or max(1000, round(1_000_000 * args.scale))
    random.seed(args.seed)
    url = scratch_database("venuedb_bench_backfill")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SETUP.replace("%(rows)s", str(args.rows)))
        conn.execute("VACUUM ANALYZE bench_items")
    settle()

    def write(i: int) -> tuple[str, tuple[int]]:
        return "UPDATE bench_items SET value = value + 1 WHERE id = %s", (
            random.randint(1, args.rows),
        )

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "backfills.toml"
        registry.write_text(REGISTRY)
        os.environ["VENUEDB_BACKFILLS_FILE"] = str(registry)
        probe = LatencyProbe(url, write)
        with probe.running():
            started = time.monotonic()
            outcome = run(
                Target(url, "bench"),
                find_backfill("bench_double"),
                Options(batch_size=args.batch_size),
            )
            seconds = time.monotonic() - started
        results.append(
            {
                "method": f"venuedb backfill (batch {args.batch_size})",
                "rows": outcome.rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(outcome.rows / seconds),
                **probe.summary(),
            }
        )

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE bench_items SET doubled = NULL")
        conn.execute("VACUUM ANALYZE bench_items")
    settle()
    probe = LatencyProbe(url, write)
    with probe.running(), psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        changed = conn.execute(
            "UPDATE bench_items SET doubled = value * 2 WHERE doubled IS NULL"
        ).rowcount
        seconds = time.monotonic() - started
    results.append(
        {
            "method": "one naive UPDATE",
            "rows": changed,
            "seconds": round(seconds, 2),
            "rows_per_s": round(changed / seconds),
            **probe.summary(),
        }
    )
    report(
        "backfill",
        results,
        {"table_rows": args.rows, "target_rows_per_s": 50_000, "target_max_writer_stall_ms": 200},
    )


if __name__ == "__main__":
    main()
