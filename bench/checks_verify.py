"""`venuedb check` (every check) and `venuedb verify` on a big database: 1,000,000 bookings
(each with its table assignment and allocation, bench.data.booking), 1,000,000 sales with
their consignments and returns (bench.data.bar), and 10,000,000 observability events
spread over 30 days, at every head.

    .venv/bin/python -m bench.checks_verify [--scale 1.0] [--repeat 5]

Each is timed twice: the toolkit function in this process (the database's share), and
the command as a person or a pipeline runs it, a new `venuedb` process from exec to
exit (Python start-up, imports, connection, queries, rendering). The targets apply to
the command, and a check that errored (its statement_timeout) misses the target whatever
the time: it measured nothing. The data is generated once into database
venuedb_bench_checks and reused (migrated to new heads) by later runs with the same
scale and seed.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import time

import psycopg

from bench.cli_help import venuedb_executable
from bench.common import Goal, database_comment, database_url, report, scratch_database
from bench.data import bar, booking
from bench.options import scaled_parser
from toolkit.engine.migrate import RunOptions, run
from toolkit.integrity import health_checks as health
from toolkit.integrity.verify import verify
from toolkit.server.connection import Target, scalar

NAME = "venuedb_bench_checks"

# The events the checks read, spread over 30 days (the bookings and sales come from
# bench.data: rows the triggers would accept, with assignments and allocations).
EVENTS = """
INSERT INTO observability_events (source, event_type, severity, context, created_at)
SELECT (ARRAY['assignment.coordinator', 'assignment.state_machine', 'auto_assign',
              'auto_assign', 'app'])[1 + g % 5],
       (ARRAY['coordinator.confirmed', 'booking.assignment_state_transition',
              'auto_assign.summary', 'zone_lock_conflict', 'page.view'])[1 + g % 5],
       'info',
       jsonb_build_object('status', 'confirmed', 'latency_ms', g % 40, 'reason', NULL),
       now() - make_interval(secs => g * 0.26)
FROM generate_series(1, %(events)s) g
"""


def _tag(scale: float, seed: int, events: int, past_share: float) -> str:
    """What the database's comment starts with (then the anchor) when prepare() built it."""
    return (
        f"venuedb bench checks v4: scale={scale:g} seed={seed} events={events} "
        f"past_share={past_share:g}"
    )


def prepare(scale: float, seed: int, events: int, past_share: float) -> str:
    """The database at every head holding the data set (reused when its tag matches)."""
    url = database_url(NAME)
    comment = database_comment(url) or ""
    if comment.startswith(_tag(scale, seed, events, past_share) + " "):
        print(f"reusing {NAME}: {comment}")
        run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
        return url
    url = scratch_database(NAME)
    run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
    anchor = dt.datetime.now(dt.UTC).date()
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        counts = booking.load(conn, scale=scale, seed=seed, anchor=anchor, past_share=past_share)
        counts |= bar.load(conn, scale=scale, seed=seed, anchor=anchor)
        with conn.transaction():
            # The rules are not under test here; replica mode skips the row triggers.
            conn.execute("SET LOCAL session_replication_role = replica")
            counts["observability_events"] = conn.execute(
                EVENTS.replace("%(events)s", str(events))
            ).rowcount
        conn.execute("VACUUM (ANALYZE)")
        conn.execute(
            f"COMMENT ON DATABASE \"{NAME}\" IS '{_tag(scale, seed, events, past_share)} anchor={anchor}'"
        )
    print(f"generated {counts} in {time.monotonic() - started:.0f} s")
    return url


def command_seconds(argv: list[str], ok_codes: tuple[int, ...]) -> float:
    """Wall-clock seconds of one `venuedb` process; its exit code must be one of ok_codes."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode not in ok_codes:
        raise SystemExit(f"{argv[1]} exited {done.returncode}: {done.stdout[-500:]!r}")
    return seconds


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="1.0: 1M bookings, 10M events")
    parser.add_argument("--events", type=int, help="default 10,000,000 x scale")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--past-share",
        type=float,
        default=0.9,
        help="share of the bookings' days before today (0.9: a venue's database is mostly "
        "history, about 100,000 of a million bookings still to come; the integrity checks "
        "read what is still to come, 0.1 puts about 900,000 ahead)",
    )
    args = parser.parse_args()
    args.events = args.events or max(1, round(10_000_000 * args.scale))
    url = prepare(args.scale, args.seed, args.events, args.past_share)
    with psycopg.connect(url) as conn:
        args.bookings = scalar(conn, "SELECT count(*) FROM bookings")
    target = Target(url, "bench")
    every = health.load_checks()
    check_runs: list[float] = []
    verify_runs: list[float] = []
    per_check: dict[str, list[float]] = {}
    errored: dict[str, str] = {}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        results = health.run_checks(target, every)
        check_runs.append(time.perf_counter() - t0)
        for r in results:
            per_check.setdefault(r.check.name, []).append(r.ms)
            if r.status == "error":
                errored.setdefault(r.check.name, (r.error or "error")[:120])
        t0 = time.perf_counter()
        verify(target)
        verify_runs.append(time.perf_counter() - t0)
    exe = venuedb_executable()
    # check exits 1 when a check is critical (the synthetic events are not all healthy),
    # 5 when one had no data: the timing is what is measured here, not the verdict.
    check_cli = [
        command_seconds([exe, "check", "--json", "--database-url", url], (0, 1, 5))
        for _ in range(args.repeat)
    ]
    verify_cli = [
        command_seconds([exe, "verify", "--json", "--database-url", url], (0,))
        for _ in range(args.repeat)
    ]

    def row(what: str, runs: list[float], target_s: float) -> dict[str, object]:
        median = statistics.median(runs)
        return {
            "measured": what,
            "median_s": round(median, 3),
            "max_s": round(max(runs), 3),
            "target_s": target_s,
            "met": median < target_s,
        }

    rows = [
        row(f"venuedb check ({len(every)} checks), new process", check_cli, 1.0),
        row("venuedb verify, new process", verify_cli, 2.0),
        row(
            f"toolkit.integrity.health_checks.run_checks ({len(every)} checks), in process",
            check_runs,
            1.0,
        ),
        row("toolkit.integrity.verify.verify, in process", verify_runs, 2.0),
    ]
    slowest = sorted(((statistics.median(v), k) for k, v in per_check.items()), reverse=True)[:5]
    report(
        "checks_verify",
        rows,
        {
            "bookings": args.bookings,
            "events": args.events,
            "past_share": args.past_share,
            "slowest_checks_ms": {k: round(v, 1) for v, k in slowest},
            "errored_checks": errored,
        },
        [
            Goal(
                f"{rows[i]['measured']} on {args.bookings:,} bookings, {args.events:,} events",
                f"< {rows[i]['target_s']:g} s",
                f"{rows[i]['median_s']} s median",
                bool(rows[i]["met"]),
            )
            for i in (0, 1)
        ]
        + [
            Goal(
                "every check measured something (none errored or timed out)",
                "0 errored",
                f"{len(errored)} errored" + "".join(f"; {k}: {v}" for k, v in errored.items()),
                not errored,
            )
        ],
    )
    print("slowest checks (median ms):", ", ".join(f"{k} {v:.0f}" for v, k in slowest))


if __name__ == "__main__":
    main()
