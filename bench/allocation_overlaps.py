"""The overlap queries over allocations: the `allocation_overlaps` health check and the
pre-flight that capacity-overlap's rollback runs before its shadow-table swap.

    .venv/bin/python -m bench.allocation_overlaps [--scale 1.0] [--seed 1] [--old SECONDS]

On bench.data.booking's data set (scale 1.0: 1,000,000 allocations) at every head. Each
query is timed as the toolkit runs it, the check also with its constraint dropped (in a
transaction rolled back); --old SECONDS also times the forms they replaced (the plain
self-joins; minutes at scale 1.0), each stopped after SECONDS.

Targets (issue 16, point 7): the check < 1 s; the pre-flight < 10 % of the copy it
guards. The copy is not run here (it is `bench.migrations_under_load`'s job and takes a
minute at scale 1.0), so its time is the rows over the copy's measured rate:
COPY_ROWS_PER_S, the 1,000,000 rows of capacity-overlap copied in 65 s under load
(bench/README.md), which matches the 15,000 rows/s into the GiST-indexed shadow noted
in toolkit/ops/shadow_swap.py.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import Goal, report, settle
from bench.confirm import prepare
from bench.options import scaled_parser
from toolkit.ops.shadow_swap import find_violations, pairs_sql, tuned
from toolkit.server.connection import scalar

NAME = "venuedb_bench_overlaps"
COPY_ROWS_PER_S = 15_000
CHECK = Path(__file__).parent.parent / "sql" / "checks" / "allocation_overlaps.sql"

# The forms this issue replaced, kept to measure against (and their plans to compare).
OLD_CHECK = """
SELECT a.id, b.id FROM public.allocations a JOIN public.allocations b
  ON a.restaurant_id = b.restaurant_id AND a.resource_type = b.resource_type
 AND a.resource_id = b.resource_id AND a."window" && b."window" AND a.id < b.id
WHERE NOT a.shadow AND NOT b.shadow AND upper(a."window") > now() - interval '1 day'
ORDER BY a.id, b.id LIMIT 100
"""
OLD_PREFLIGHT = """
SELECT a.id, b.id FROM public.allocations a JOIN public.allocations b
  ON a.resource_type = b.resource_type AND a.resource_id = b.resource_id
 AND a."window" && b."window" AND a.id < b.id
WHERE (NOT a.shadow) AND (NOT b.shadow) LIMIT 20
"""


def timed(conn: psycopg.Connection, sql: str, repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        conn.execute(sql).fetchall()
        runs.append(time.perf_counter() - t0)
    return runs


def downgrade_swap() -> Any:
    """capacity-overlap's rollback swap, as its revision file declares it."""
    from toolkit.ops import revision_module

    return tuned(revision_module("booking_005").DOWNGRADE)


def preflight_seconds(url: str, repeat: int) -> tuple[list[float], list[str]]:
    """The rollback's pre-flight query as the revision runs it, with what it says."""
    swap = downgrade_swap()
    runs: list[float] = []
    said: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(repeat):
            said.clear()
            t0 = time.perf_counter()
            found = find_violations(conn, swap, 20, said.append)
            runs.append(time.perf_counter() - t0)
            if found:
                raise SystemExit(f"the data set has overlaps: {found[:3]}")
    return runs, said


def plan_line(conn: psycopg.Connection, sql: str) -> str:
    """The plan's node types, outermost first, on one line."""
    lines = [r[0] for r in conn.execute("EXPLAIN " + sql)]
    nodes = [ln.strip().lstrip("-> ").split("  (")[0] for ln in lines if "(cost=" in ln]
    return " > ".join(nodes)


def row(what: str, runs: list[float], target_s: float | None) -> dict[str, Any]:
    median = statistics.median(runs)
    return {
        "measured": what,
        "median_s": round(median, 3),
        "max_s": round(max(runs), 3),
        "target_s": round(target_s, 2) if target_s is not None else "-",
        "met": median < target_s if target_s is not None else "-",
    }


def unguarded_seconds(conn: psycopg.Connection, sql: str, repeat: int) -> list[float]:
    """The check when the constraint is gone (the case it alarms on): dropped in a
    transaction that is rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE allocations DROP CONSTRAINT allocations_no_overlap")
        return timed(conn, sql, repeat)


def capped(conn: psycopg.Connection, sql: str, cap_s: int) -> list[float]:
    """One run of a replaced query, stopped after cap_s (reported as the cap)."""
    conn.execute(f"SET statement_timeout = '{cap_s}s'")
    try:
        return timed(conn, sql, 1)
    except psycopg.errors.QueryCanceled:
        return [float(cap_s)]
    finally:
        conn.execute("RESET statement_timeout")


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="1.0: 1,000,000 allocations")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--old",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also time the replaced queries, each stopped after SECONDS (0: not run)",
    )
    args = parser.parse_args()
    url = prepare(args.scale, args.seed, dt.datetime.now(dt.UTC).date(), name=NAME)
    settle()
    check_sql = CHECK.read_text()
    swap = downgrade_swap()
    with psycopg.connect(url, autocommit=True) as conn:
        # The check reads its look-back from venuedb.lookback, as `venuedb check` sets it.
        conn.execute("SELECT set_config('venuedb.lookback', '1 day', false)")
        rows_n = int(scalar(conn, "SELECT count(*) FROM allocations"))
        # The plan of the pre-flight's first chunk, its bound written in.
        first = conn.execute(
            f"SELECT {swap.chunk_column}::text FROM allocations ORDER BY 1 "
            f"OFFSET {swap.preflight_chunk - 1} LIMIT 1"
        ).fetchone()
        chunk_sql = pairs_sql(
            swap,
            f"a.{swap.chunk_column} IS NOT NULL"
            + (f" AND a.{swap.chunk_column} <= '{first[0]}'" if first else ""),
            20,
        )
        check_runs = timed(conn, check_sql, args.repeat)
        unguarded_runs = unguarded_seconds(conn, check_sql, args.repeat)
        plans = {
            "check": plan_line(conn, check_sql),
            "pre-flight chunk": plan_line(conn, chunk_sql),
        }
        old_rows = []
        if args.old:
            old_check = capped(conn, OLD_CHECK, args.old)
            old_rows.append(row("old check (self-join)", old_check, None))
            old_pre = capped(conn, OLD_PREFLIGHT, args.old)
            old_rows.append(row("old pre-flight (self-join)", old_pre, None))
            plans["old check"] = plan_line(conn, OLD_CHECK)
            plans["old pre-flight"] = plan_line(conn, OLD_PREFLIGHT)
    preflight_runs, notices = preflight_seconds(url, args.repeat)
    copy_s = rows_n / COPY_ROWS_PER_S
    rows = [
        row(f"allocation_overlaps check, {rows_n:,} allocations", check_runs, 1.0),
        row(f"rollback pre-flight, {rows_n:,} allocations", preflight_runs, copy_s * 0.1),
        row("allocation_overlaps check, constraint dropped", unguarded_runs, None),
        *old_rows,
    ]
    report(
        "allocation_overlaps",
        rows,
        {
            "allocations": rows_n,
            "copy_s_estimate": round(copy_s, 1),
            "plans": plans,
            "preflight_notices": notices,
        },
        [
            Goal(
                f"allocation_overlaps check on {rows_n:,} allocations",
                "< 1 s",
                f"{rows[0]['median_s']} s median",
                bool(rows[0]["met"]),
            ),
            Goal(
                f"rollback pre-flight on {rows_n:,} allocations",
                f"< 10 % of the copy ({copy_s:.0f} s at {COPY_ROWS_PER_S:,} rows/s)",
                f"{rows[1]['median_s']} s median",
                bool(rows[1]["met"]),
            ),
        ],
    )
    for name, plan in plans.items():
        print(f"plan, {name}: {plan}")
    print("pre-flight said:", *notices, sep="\n  ")


if __name__ == "__main__":
    main()
