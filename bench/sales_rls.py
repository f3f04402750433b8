"""Sales created through the row-level-security path, as authenticated bar managers.

    .venv/bin/python -m bench.sales_rls [--scale 1.0] [--seed 1] [--clients 4] [--seconds 20]

Database venuedb_bench_sales on the benchmark server: all heads, bench/data/bar.py at the
given scale (1,000,000 sales in 500 bars at scale 1), reused by later runs. Each client is
its own process (the target is the database's throughput, not the GIL's) and acts as the
managers of a share of the simplified-mode bars the way Supabase (PostgREST) does: per
transaction, role `authenticated` and request.jwt.claim.sub = the manager's user id, set
with set_config(..., true). Each sale is its own transaction. Two paths, the two the
mode-switching release gives the app (seed 002):

* insert: INSERT INTO sales ... RETURNING id, the server chosen in the UI (server_id), let
  through by the policy sales_insert_simplified_mode_by_manager;
* rpc: SELECT create_sale_by_server_name(bar, typed name, items, total), the server
  resolved from the name typed on the till. The database decides whether switching mode
  is on (the ENABLE_SWITCHING_MODE row of feature_flags, release bar-integrity): the
  benchmark turns it on for every bar, so the rpc resolves the server as in production.

The sales a run creates are deleted at its end (and at the start of the next run).

Unless --no-compare, both paths are measured again without idx_bars_owner_id, as before
the bar-owner-lookups release (bar_008) that this benchmark's first runs called for: every
policy calls bar_ids_with_role(), whose owner branch (bars.owner_id = auth.uid()) then
scans all bars, evaluating auth.uid() per bar: about 0.1 ms per call at 500 bars, growing
with the number of bars, two or three calls per INSERT ... RETURNING. The index is put
back afterwards exactly as the revision builds it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import random
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.common import as_comparison, latency_summary, report, row_goals, settle
from bench.data.bar import prepare
from bench.options import add_no_compare, scaled_parser

NAME = "venuedb_bench_sales"
TARGET_PER_S = 2_000
TARGET_P95_MS = 10.0
PATHS = ("insert", "rpc")
OWNER_INDEX = "idx_bars_owner_id"
CREATE_OWNER_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {OWNER_INDEX} ON public.bars USING btree (owner_id)"
)

INSERT_SALE = (
    "INSERT INTO public.sales (bar_id, created_by, server_id, server_name, items, total, "
    "payment_method) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
CREATE_SALE = "SELECT public.create_sale_by_server_name(%s::uuid, %s, %s::jsonb, %s::numeric)"
# As PostgREST does it: one round trip, both settings local to the transaction.
AUTHENTICATE = (
    "SELECT set_config('role', 'authenticated', true), "
    "set_config('request.jwt.claim.sub', %s, true)"
)

# Every simplified-mode bar with one of its managers and its active, mapped servers.
STAFF = """
SELECT b.id::text, mgr.user_id::text,
       array_agg(m.user_id::text ORDER BY m.server_name),
       array_agg(m.server_name ORDER BY m.server_name)
FROM public.bars AS b
JOIN LATERAL (SELECT user_id FROM public.bar_members
              WHERE bar_id = b.id AND role = 'manager' AND is_active
              ORDER BY user_id LIMIT 1) AS mgr ON true
JOIN public.server_name_mappings AS m ON m.bar_id = b.id
JOIN public.bar_members AS bm
  ON bm.bar_id = b.id AND bm.user_id = m.user_id AND bm.is_active
WHERE b.settings ->> 'operatingMode' = 'simplified'
GROUP BY b.id, mgr.user_id
ORDER BY b.id
"""


@dataclass(frozen=True)
class Shift:
    """One bar a client serves: the bar, the manager acting, its servers (id, mapped name)."""

    bar_id: str
    manager_id: str
    servers: tuple[tuple[str, str], ...]


@dataclass
class ClientResult:
    """What one client process measured."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def typed(rng: random.Random, name: str) -> str:
    """The name as a manager types it on the till: case and spacing vary."""
    return rng.choice((name, name.lower(), name.upper(), f" {name.replace(' ', '  ')} "))


def one_sale(conn: psycopg.Connection, path: str, shift: Shift, rng: random.Random) -> None:
    """One sale in its own transaction, as the shift's manager, through `path`."""
    server_id, name = rng.choice(shift.servers)
    qty = rng.randint(1, 4)
    items = json.dumps([{"product": "Beer", "qty": qty, "price": 4.5}])
    with conn.transaction():
        conn.execute(AUTHENTICATE, (shift.manager_id,))
        if path == "insert":
            conn.execute(
                INSERT_SALE,
                (shift.bar_id, shift.manager_id, server_id, name, items, 4.5 * qty, "bench"),
            ).fetchone()
        else:
            conn.execute(CREATE_SALE, (shift.bar_id, typed(rng, name), items, 4.5 * qty))


def client(
    url: str,
    path: str,
    shifts: list[Shift],
    number: int,
    warmup: float,
    seconds: float,
    start: Any,
    out: Any,
) -> None:
    """A client process: waits for the others, warms up, then creates sales for `seconds`."""
    rng = random.Random(number)
    result = ClientResult()
    with psycopg.connect(url, autocommit=True) as conn:
        # Plans and caches of this connection warm, as on a pooled production connection.
        start.wait()
        until = time.perf_counter() + warmup
        while time.perf_counter() < until:
            # Errors are counted in the measured part, where they matter.
            with contextlib.suppress(psycopg.Error):
                one_sale(conn, path, rng.choice(shifts), rng)
        until = time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < until:
            try:
                one_sale(conn, path, rng.choice(shifts), rng)
            except psycopg.Error as exc:
                kind = type(exc).__name__
                result.errors[kind] = result.errors.get(kind, 0) + 1
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    out.put((result.latencies_ms, result.errors))


def load_shifts(url: str) -> list[Shift]:
    """The simplified-mode bars with a manager and at least one active, mapped server."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(STAFF).fetchall()
    return [Shift(bar, mgr, tuple(zip(ids, names, strict=True))) for bar, mgr, ids, names in rows]


def share(shifts: list[Shift], client: int, clients: int) -> list[Shift]:
    """The bars one client serves: its round-robin share, or all of them when there are
    fewer bars than clients (a tiny --scale)."""
    return shifts[client::clients] or shifts


def run_path(
    url: str, variant: str, path: str, shifts: list[Shift], args: argparse.Namespace
) -> dict[str, Any]:
    """`args.clients` processes creating sales through `path`; the row for the report."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(args.clients)
    out = ctx.Queue()
    # Each client serves its own share of the bars, as separate tills would.
    procs = [
        ctx.Process(
            target=client,
            args=(
                url,
                path,
                share(shifts, i, args.clients),
                i,
                args.warmup,
                args.seconds,
                start,
                out,
            ),
        )
        for i in range(args.clients)
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    for _ in procs:
        # A client that died would never report: do not wait for it forever.
        values, errs = out.get(timeout=args.warmup + args.seconds + 60)
        latencies += values
        for kind, n in errs.items():
            errors[kind] = errors.get(kind, 0) + n
    for proc in procs:
        proc.join()
    rate = len(latencies) / args.seconds
    summary = latency_summary(latencies)
    return {
        "variant": variant,
        "path": path,
        "clients": args.clients,
        "sales": len(latencies),
        "sales_per_s": round(rate),
        **summary,
        "errors": sum(errors.values()),
        "target": f">= {TARGET_PER_S}/s, p95 < {TARGET_P95_MS:g} ms",
        "met": rate >= TARGET_PER_S and summary["p95_ms"] < TARGET_P95_MS and not errors,
        "error_kinds": errors,
    }


def clean(url: str, anchor: dt.date) -> int:
    """Delete the sales benchmark runs created (all generated sales are before `anchor`)."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            # returns.sale_id (ON DELETE SET NULL) has no index: the FK trigger would scan
            # all returns once per deleted sale. No return points at these new sales, so
            # the triggers are skipped for this cleanup only.
            conn.execute("SET LOCAL session_replication_role = replica")
            gone = conn.execute(
                "DELETE FROM public.sales WHERE created_at >= %s",
                (dt.datetime(anchor.year, anchor.month, anchor.day, tzinfo=dt.UTC),),
            ).rowcount
        if gone:
            conn.execute("VACUUM (ANALYZE) public.sales")
    return gone


def set_switching_mode(url: str, enabled: bool) -> None:
    """ENABLE_SWITCHING_MODE for every bar, as `venuedb flags set ENABLE_SWITCHING_MODE on`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE public.feature_flags SET enabled = %s, updated_at = now(), "
            "updated_by = 'bench.sales_rls' WHERE name = 'ENABLE_SWITCHING_MODE'",
            (enabled,),
        )


def set_owner_index(url: str, present: bool) -> None:
    """Put idx_bars_owner_id in place (as bar_008 builds it) or drop it for the comparison."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CREATE_OWNER_INDEX if present else f"DROP INDEX IF EXISTS {OWNER_INDEX}")
        conn.execute("ANALYZE public.bars")


def main() -> None:
    parser = scaled_parser(__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    add_no_compare(parser, OWNER_INDEX, "bar-owner-lookups")
    args = parser.parse_args()
    url, anchor = prepare(NAME, scale=args.scale, seed=args.seed, reuse=True)
    set_owner_index(url, True)  # a run killed mid-comparison left it dropped
    set_switching_mode(url, True)
    clean(url, anchor)
    settle()
    shifts = load_shifts(url)
    rows = []
    variants = ("all heads",) if args.no_compare else ("all heads", f"without {OWNER_INDEX}")
    for variant in variants:
        set_owner_index(url, variant == "all heads")
        for path in args.paths:
            row = run_path(url, variant, path, shifts, args)
            if variant != "all heads":
                as_comparison(row)
            rows.append(row)
            clean(url, anchor)
    set_owner_index(url, True)
    goals = row_goals(
        rows,
        lambda r: (
            f"sales through the RLS-protected path ({r['path']}), {r['clients']} "
            f"authenticated managers, {args.scale * 1_000_000:,.0f} sales"
        ),
        lambda r: f"{r['sales_per_s']:,}/s, p95 {r['p95_ms']} ms, {r['errors']} errors",
    )
    report(
        "sales_rls",
        rows,
        {
            "scale": args.scale,
            "seed": args.seed,
            "seconds": args.seconds,
            "bars_served": len(shifts),
            "target_sales_per_s": TARGET_PER_S,
            "target_p95_ms": TARGET_P95_MS,
        },
        goals,
    )


if __name__ == "__main__":
    main()
