"""capacity-overlap's rollback level 2 and its restore, run by venuedb as an operator runs
them, while the application keeps writing: does the level run online?

    .venv/bin/python -m bench.rollback_level2 [--scale 1.0] [--seed 1] [--rate 100]

On bench.data.booking's data set (scale 1.0: 1,000,000 bookings and allocations) at every
head, the database bench.allocation_overlaps builds and keeps (reused when scale and seed
match), cloned for this run (the level changes it). Writers as in
bench.migrations_under_load (bookings inserted and updated, allocations inserted and
updated; the inserted allocations are maintenance blocks far in the future, one hour
apart, so none overlaps under either constraint) share --rate writes/s while, each a new
`venuedb` process with DATABASE_URL pointing at the clone:

1. `venuedb rollback capacity-overlap --level 2 --yes --json`: allocations_no_overlap
   swapped back to allocations_resource_window_excl by the shadow-table swap;
2. `venuedb verify --json`: must be clean, the level named;
3. `venuedb rollout capacity-overlap --yes --json`: the restore, the same swap forward;
4. `venuedb verify --json`: clean at the heads, no level.

Per phase: its duration, the lock the swap held, the WAL written, the writers' worst
write and failures, and the allocations that existed when the phase started and are gone
(or changed, updated_at aside) after it: every id with a digest of its row, held by this
process and compared exactly. Each write slower than 100 ms is placed in the command's
progress and named by what pg_stat_activity showed it waiting on (a lock, or the WAL
flush). After the writers stop, every allocation a writer inserted must be there.
First the writers run alone (--baseline-seconds, 120): what this disk does to their
commits without any level. Targets (issue 18): level 2 and its restore each with no write
blocked > 200 ms by the level (waiting on a lock, or on nothing the sampler saw: cause
unknown, so counted), none failed, no row lost. A commit waiting for the WAL flush is
reported with the baseline's numbers beside it, not counted: the writers alone wait on it
too.

`rollout` runs the post-deploy health checks after the restore, and some fail on this
synthetic data set whatever the level does; the restore is judged by its own step in the
rollout's record, and the failing checks are printed beside it.

Below 50,000 allocations the swap takes its plain path (one ALTER TABLE); --swap-min-rows
lowers that threshold (VENUEDB_SHADOW_SWAP_MIN_ROWS) so that a small scale measures the
online path too. A phase that took the plain path does not meet the target.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.allocation_overlaps import NAME as TEMPLATE
from bench.cli_help import venuedb_executable
from bench.common import BackgroundLoop, Goal, LatencyProbe, clone_database, report, settle
from bench.confirm import prepare
from bench.migrations_under_load import MAINTENANCE_EPOCH, STALL_MS, writers
from bench.options import add_write_rate, scaled_parser
from toolkit.server.connection import scalar

NAME = "venuedb_bench_level2"
RELEASE = "capacity-overlap"
KINDS = ("booking insert", "booking update", "allocation insert", "allocation update")
LEVEL_CONSTRAINT = "allocations_resource_window_excl"
HEAD_CONSTRAINT = "allocations_no_overlap"
# The rows the allocation writer inserts (bench.migrations_under_load): nothing else in the
# data set is a maintenance block that far out.
WRITER_ROWS = f"is_maintenance AND lower(\"window\") >= '{MAINTENANCE_EPOCH.isoformat()}'"
HELD = re.compile(r"swap held the lock for (\d+) ms")
PATH = re.compile(r"path: (shadow table|plain ALTER TABLE)[^\n]*")


@dataclass(frozen=True)
class Phase:
    name: str
    argv: tuple[str, ...]
    constraint: str  # the exclusion constraint allocations must carry afterwards
    level: bool  # whether verify must name the level afterwards
    swaps: bool  # a phase the target is about (it swaps the constraint)


def steps(records_dir: str) -> list[Phase]:
    return [
        Phase(
            "rollback level 2",
            ("rollback", RELEASE, "--level", "2", "--yes", "--json"),
            LEVEL_CONSTRAINT,
            True,
            True,
        ),
        Phase("verify at level 2", ("verify", "--json"), LEVEL_CONSTRAINT, True, False),
        Phase(
            "rollout (restore)",
            ("rollout", RELEASE, "--yes", "--json", "--records-dir", records_dir),
            HEAD_CONSTRAINT,
            False,
            True,
        ),
        Phase("verify at the heads", ("verify", "--json"), HEAD_CONSTRAINT, False, False),
    ]


class Ledger:
    """The allocations that existed when a phase started, held by this process (no
    temporary table whose writes would compete with the writers' WAL flushes): each id
    with a digest of its values but updated_at (the one column the writers change),
    compared exactly afterwards."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.before: dict[bytes, bytes] = {}
        self.wal_at: Any = None

    def _rows(self) -> tuple[dict[bytes, bytes], set[bytes]]:
        """Every allocation (id -> digest), and the ids of the rows a writer inserted; one
        snapshot."""
        every: dict[bytes, bytes] = {}
        written: set[bytes] = set()
        rows = self.conn.execute(
            "SELECT uuid_send(id), decode(md5((to_jsonb(a) - 'updated_at')::text), 'hex'), "
            f"{WRITER_ROWS} FROM public.allocations a"
        )
        for key, digest, by_writer in rows:
            every[bytes(key)] = bytes(digest)
            if by_writer:
                written.add(bytes(key))
        return every, written

    def mark(self) -> int:
        self.before, _ = self._rows()
        self.wal_at = self._wal()
        return len(self.before)

    def _wal(self) -> Any:
        return scalar(self.conn, "SELECT pg_current_wal_lsn()")

    def wal_mb(self) -> float:
        """WAL the server wrote since mark() (every session's: the writers' share is small)."""
        written = scalar(
            self.conn,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
            (str(self.wal_at),),
        )
        return round(float(written) / 2**20, 1)

    def compare(self) -> dict[str, int]:
        """Rows lost and rows whose values changed since mark(); rows added, and of those
        any not from the writer."""
        now, written = self._rows()
        added = now.keys() - self.before.keys()
        return {
            "lost": len(self.before.keys() - now.keys()),
            "changed": sum(
                1 for key, digest in self.before.items() if key in now and now[key] != digest
            ),
            "added": len(added),
            "added_not_by_writer": len(added - written),
        }

    def constraints(self) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'public.allocations'::regclass "
                "AND contype = 'x' ORDER BY 1"
            )
        ]

    def writer_rows(self) -> int:
        return int(
            scalar(self.conn, f"SELECT count(*) FROM public.allocations WHERE {WRITER_ROWS}")
        )


# The statement each writer runs begins so (bench.migrations_under_load._writes).
STATEMENTS = {
    "booking insert": "INSERT INTO bookings",
    "booking update": "UPDATE bookings",
    "allocation insert": "INSERT INTO allocations",
    "allocation update": "UPDATE allocations",
}


class WaitSampler(BackgroundLoop):
    """What the writers' statements are waiting on, sampled from pg_stat_activity every
    20 ms: a slow write is then named a lock wait (and who held the lock) or something
    else (WAL flush, I/O, CPU: no wait event while on the CPU)."""

    QUERY = """
    SELECT left(a.query, 40), a.wait_event_type || ':' || a.wait_event,
           (SELECT string_agg(left(b.query, 80), ' | ') FROM pg_stat_activity b
            WHERE b.pid = ANY (pg_blocking_pids(a.pid)))
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.state = 'active'
      AND a.pid <> pg_backend_pid() AND a.wait_event_type IS NOT NULL
      AND a.wait_event_type <> 'Client'
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, str, str, str | None]] = []

    def loop(self, stop: threading.Event) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not stop.is_set():
                at = time.monotonic()
                for query, event, blockers in conn.execute(self.QUERY).fetchall():
                    self.samples.append((at, query, event, blockers))
                stop.wait(0.02)

    def waits(self, kind: str, started: float, ms: float) -> list[str]:
        """The distinct wait events of write `kind` seen while it ran, with the blockers."""
        prefix = STATEMENTS[kind]
        ended = started + ms / 1000
        seen: list[str] = []
        for at, query, event, blockers in list(self.samples):
            if started <= at <= ended and query.startswith(prefix):
                what = event + (f" behind [{blockers}]" if blockers else "")
                if what not in seen:
                    seen.append(what)
        return seen


def run_step(exe: str, step: Phase, env: dict[str, str]) -> dict[str, Any]:
    """One `venuedb` process: its wall time, exit code, JSON document, and its progress
    lines each stamped with when it arrived (to place a slow write in the swap's steps)."""
    lines: list[tuple[float, str]] = []
    with tempfile.TemporaryFile("w+") as stdout:
        t0 = time.monotonic()
        process = subprocess.Popen(
            [exe, *step.argv], stdout=stdout, stderr=subprocess.PIPE, text=True, env=env
        )
        assert process.stderr is not None
        for line in process.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))
        code = process.wait()
        ended = time.monotonic()
        stdout.seek(0)
        out = stdout.read()
    try:
        document = json.loads(out)
    except json.JSONDecodeError:
        document = {"status": f"no JSON document (stdout {out[-300:]!r})"}
    said = "\n".join(text for _, text in lines)
    paths = [m.group(0) for m in PATH.finditer(said)]
    return {
        "started": t0,
        "ended": ended,
        "exit_code": code,
        "status": document.get("status"),
        "document": document,
        "lines": lines,
        "swap_path": "; ".join(paths) or "-",
        "lock_held_ms": max((int(m) for m in HELD.findall(said)), default=None),
        "retries": said.count("retry: "),
        "stderr_tail": said[-2000:] if code else "",
    }


def slow_writes(
    outcome: dict[str, Any],
    probes: dict[str, LatencyProbe],
    sampler: WaitSampler,
    over_ms: float = 100.0,
) -> list[dict[str, Any]]:
    """The phase's writes slower than over_ms, each with the progress line the command had
    printed last when the write began (what the swap was doing) and what it waited on."""
    lines = outcome["lines"]
    found = []
    for kind, probe in probes.items():
        for at, ms in list(probe.samples):
            if outcome["started"] <= at < outcome["ended"] and ms > over_ms:
                before = [text for stamp, text in lines if stamp <= at]
                found.append(
                    {
                        "write": kind,
                        "ms": round(ms, 1),
                        "at_s": round(at - outcome["started"], 2),
                        "after": before[-1][:200] if before else "(process starting)",
                        "waited_on": sampler.waits(kind, at, ms) or ["no wait event sampled"],
                    }
                )
    return sorted(found, key=lambda w: -w["ms"])


def expected(step: Phase, outcome: dict[str, Any], constraints: list[str]) -> list[str]:
    """What is wrong with a step's outcome (empty: it did what it must)."""
    problems = []
    document = outcome["document"]
    if outcome["exit_code"] != 0 and not _only_health_checks(step, outcome):
        problems.append(f"exit {outcome['exit_code']} ({outcome['status']})")
    if step.argv[0] == "verify":
        if document.get("status") != "clean":
            problems.append(f"verify said {document.get('status')}")
        named = [(lv.get("release"), lv.get("level")) for lv in document.get("levels", [])]
        if step.level and (RELEASE, 2) not in named:
            problems.append(f"verify does not name {RELEASE} level 2 (levels: {named})")
        if not step.level and named:
            problems.append(f"verify still names levels {named}")
    elif document.get("status") != "ok" and not _only_health_checks(step, outcome):
        problems.append(f"status {document.get('status')}")
    if constraints != [step.constraint]:
        problems.append(f"allocations carries {constraints}, expected {[step.constraint]}")
    if step.swaps and not outcome["swap_path"].startswith("path: shadow table"):
        problems.append(f"not the online path: {outcome['swap_path']}")
    return problems


def _restore_step(document: dict[str, Any]) -> dict[str, Any] | None:
    """The rollout's step that restored the level (its record's step list)."""
    return next(
        (
            s
            for s in document.get("steps", [])
            if isinstance(s, dict) and str(s.get("name", "")).startswith("restore ")
        ),
        None,
    )


def _only_health_checks(step: Phase, outcome: dict[str, Any]) -> bool:
    """The rollout restored the level and then failed only on its post-deploy health checks.

    Those judge the synthetic data set (e.g. combination_usage_rate: its bookings sit at one
    table each), not the swap: the restore is judged by its own step, the constraint and the
    writers; the checks that failed are reported beside the row."""
    document = outcome["document"]
    restored = _restore_step(document)
    return (
        step.argv[0] == "rollout"
        and outcome["exit_code"] == 1
        and document.get("status") == "failed"
        and bool(document.get("failed_checks"))
        and restored is not None
        and restored.get("status") == "ok"
    )


def health_note(step: Phase, outcome: dict[str, Any]) -> str:
    if not _only_health_checks(step, outcome):
        return ""
    names = ", ".join(
        f"{c.get('name')} {c.get('status')}" for c in outcome["document"]["failed_checks"]
    )
    return f"restore ok; post-deploy health checks on the synthetic data: {names}"


def phase_row(
    step: Phase,
    outcome: dict[str, Any],
    probes: dict[str, LatencyProbe],
    rows_before: int,
    rows: dict[str, int],
    problems: list[str],
) -> dict[str, Any]:
    window = (outcome["started"], outcome["ended"])
    stats = {kind: probe.summary(*window) for kind, probe in probes.items()}
    worst = max(stats, key=lambda k: stats[k]["max_ms"])
    # A writer whose thread died (an exception in it is printed, not raised) writes nothing:
    # its silence must not read as "no write was slow".
    idle = [kind for kind, s in stats.items() if s["writes"] == 0]
    if idle:
        problems = [*problems, f"no writes from: {', '.join(idle)}"]
    return {
        "phase": step.name,
        "seconds": round(outcome["ended"] - outcome["started"], 2),
        "exit": outcome["exit_code"],
        "status": outcome["status"],
        "swap": _path(outcome["swap_path"]),
        "lock_held_ms": outcome["lock_held_ms"] if outcome["lock_held_ms"] is not None else "-",
        "writes": sum(s["writes"] for s in stats.values()),
        "failed": sum(s["failed"] for s in stats.values()),
        "writer_p99_ms": max(s["p99_ms"] for s in stats.values()),
        "writer_max_ms": stats[worst]["max_ms"],
        "slowest_write": worst,
        "stalled_over_200ms": sum(s["stalled_over_200ms"] for s in stats.values()),
        "allocations_before": rows_before,
        "rows_lost": rows["lost"],
        "rows_changed": rows["changed"],
        "rows_added": rows["added"],
        "problems": "; ".join(problems) or "-",
    }


def causes(slow: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst write that waited on a lock, and the worst that waited on the WAL flush
    (its commit queued behind the copy's WAL): a lock wait is the swap blocking writers,
    a WAL wait is the disk."""

    def worst(marks: tuple[str, ...]) -> float | str:
        found = [w["ms"] for w in slow if any(e.startswith(marks) for e in w["waited_on"])]
        return max(found, default="-")

    # Lock:relation, Lock:tuple, Lock:transactionid ...; the WAL: LWLock:WALWrite (queued
    # behind another flush), IO:WalSync (flushing).
    return {
        "worst_lock_wait_ms": worst(("Lock:",)),
        "worst_wal_wait_ms": worst(("LWLock:WALWrite", "IO:WalSync", "IO:WalWrite")),
    }


WAL_FLUSH = ("LWLock:WALWrite", "IO:WalSync", "IO:WalWrite")


def blocked(slow: list[dict[str, Any]], over_ms: float = STALL_MS) -> list[dict[str, Any]]:
    """The writes slower than over_ms that something other than the WAL flush held up: a
    lock (the level blocking writers), or nothing sampled (cause unknown, so counted).
    A commit waiting for the disk to flush the WAL is not blocked by the level: the
    baseline (writers alone) shows the same waits on this disk."""
    return [
        w
        for w in slow
        if w["ms"] > over_ms and not all(e.startswith(WAL_FLUSH) for e in w["waited_on"])
    ]


def baseline_row(
    probes: dict[str, LatencyProbe], sampler: WaitSampler, started: float, ended: float
) -> dict[str, Any]:
    """The writers alone, before any command: what this disk does without the level."""
    window = {"started": started, "ended": ended, "lines": []}
    stats = [probe.summary(started, ended) for probe in probes.values()]
    slow = slow_writes(window, probes, sampler)
    return {
        "phase": "baseline (writers alone)",
        "seconds": round(ended - started, 2),
        **dict.fromkeys(("exit", "swap", "lock_held_ms", "wal_mb", "allocations_before"), "-"),
        "rows_lost": "-",
        "writes": sum(s["writes"] for s in stats),
        "failed": sum(s["failed"] for s in stats),
        "writer_p99_ms": max(s["p99_ms"] for s in stats),
        "writer_max_ms": max(s["max_ms"] for s in stats),
        "stalled_over_200ms": sum(s["stalled_over_200ms"] for s in stats),
        "blocked_over_200ms": len(blocked(slow)),
        "slow_writes": slow,
        **causes(slow),
    }


def _path(said: str) -> str:
    if said.startswith("path: shadow table"):
        return "online"
    return "plain" if said.startswith("path: plain") else "-"


# The printed table's columns (every figure is in the JSON's "phases").
SHOWN = {
    "phase": "phase",
    "seconds": "s",
    "exit": "exit",
    "swap": "swap",
    "lock_held_ms": "lock ms",
    "wal_mb": "WAL MB",
    "writes": "writes",
    "failed": "failed",
    "writer_p99_ms": "p99 ms",
    "writer_max_ms": "worst ms",
    "stalled_over_200ms": "> 200 ms",
    "blocked_over_200ms": "blocked > 200 ms",
    "worst_lock_wait_ms": "lock-waiting ms",
    "worst_wal_wait_ms": "WAL-waiting ms",
    "allocations_before": "allocations",
    "rows_lost": "lost",
}


def shown(row: dict[str, Any]) -> dict[str, Any]:
    return {label: row[key] for key, label in SHOWN.items()}


def command_ms(step: Phase, outcome: dict[str, Any]) -> int | str:
    """The duration the command reports for the level's own work (the rest of a process's
    wall time is start-up, the plan, the deployment record and, for rollout, its checks)."""
    document = outcome["document"]
    if step.argv[0] == "rollback":
        return document.get("result", {}).get("duration_ms", "-")
    if step.argv[0] == "rollout":
        restored = _restore_step(document)
        return round(restored["seconds"] * 1000) if restored else "-"
    return "-"


def main() -> None:
    parser = scaled_parser(__doc__, scale_help="1.0: 1,000,000 allocations")
    add_write_rate(parser)
    parser.add_argument(
        "--swap-min-rows",
        type=int,
        help="VENUEDB_SHADOW_SWAP_MIN_ROWS for the venuedb processes (default: venuedb's, "
        "50,000): lower it to take the online path at a small scale",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=120.0,
        help="how long the writers run alone before the first command (0: no baseline)",
    )
    parser.add_argument(
        "--template",
        default=TEMPLATE,
        help=f"the cached database at every head to clone (default {TEMPLATE}, shared with "
        "bench.allocation_overlaps; another name keeps a different scale beside it)",
    )
    args = parser.parse_args()
    prepare(args.scale, args.seed, dt.datetime.now(dt.UTC).date(), name=args.template)
    url = clone_database(args.template, NAME)
    settle()
    # Progress lines unwrapped, so that the swap's notices can be read from them.
    env = os.environ | {"DATABASE_URL": url, "COLUMNS": "250", "NO_COLOR": "1"}
    if args.swap_min_rows is not None:
        env["VENUEDB_SHADOW_SWAP_MIN_ROWS"] = str(args.swap_min_rows)
    exe = venuedb_executable()
    phases: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as records_dir,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        ledger = Ledger(conn)
        with (
            WaitSampler(url).running() as sampler,
            writers(url, args.seed, args.rate, KINDS) as probes,
        ):
            print(f"baseline: the writers alone for {args.baseline_seconds:g} s ...", flush=True)
            started = time.monotonic()
            time.sleep(args.baseline_seconds)
            baseline = baseline_row(probes, sampler, started, time.monotonic())
            for slow in baseline["slow_writes"][:3]:
                print(
                    f"  slow: {slow['write']} {slow['ms']} ms; waited on: "
                    f"{'; '.join(slow['waited_on'])}"
                )
            print(
                f"  worst write {baseline['writer_max_ms']} ms, "
                f"{baseline['stalled_over_200ms']} > {STALL_MS} ms",
                flush=True,
            )
            for step in steps(records_dir):
                rows_before = ledger.mark()
                print(f"{step.name}: venuedb {' '.join(step.argv)} ...", flush=True)
                outcome = run_step(exe, step, env)
                wal_mb = ledger.wal_mb()
                found = ledger.compare()
                problems = expected(step, outcome, ledger.constraints())
                if found["changed"]:
                    problems.append(f"{found['changed']} rows changed (beyond updated_at)")
                if found["added_not_by_writer"]:
                    problems.append(f"{found['added_not_by_writer']} rows added not by a writer")
                row = phase_row(step, outcome, probes, rows_before, found, problems)
                row["command_ms"] = command_ms(step, outcome)
                row["wal_mb"] = wal_mb
                row["note"] = health_note(step, outcome)
                row["slow_writes"] = slow_writes(outcome, probes, sampler)
                row |= causes(row["slow_writes"])
                row["blocked_over_200ms"] = len(blocked(row["slow_writes"]))
                for slow in row["slow_writes"][:3]:
                    print(
                        f"  slow: {slow['write']} {slow['ms']} ms at +{slow['at_s']} s, "
                        f"after: {slow['after']}; waited on: {'; '.join(slow['waited_on'])}"
                    )
                print(
                    f"  {row['seconds']} s, exit {row['exit']}, worst write "
                    f"{row['writer_max_ms']} ms, {row['rows_lost']} rows lost"
                    + (f"; {row['problems']}" if problems else ""),
                    flush=True,
                )
                phases.append(row)
                commands.append(
                    {
                        "phase": step.name,
                        "argv": ["venuedb", *step.argv],
                        "document": outcome["document"],
                        "stderr_tail": outcome["stderr_tail"],
                    }
                )
            time.sleep(1.0)
        inserter = probes["allocation insert"]
        inserted = len(inserter.samples) - inserter.failures
        kept = ledger.writer_rows()
    errors = sorted({e for p in probes.values() for e in p.errors})
    if errors:
        print("writer errors: " + "; ".join(errors[:5]))
    report(
        "rollback_level2",
        [shown(r) for r in [baseline, *phases]],
        {
            "scale": args.scale,
            "seed": args.seed,
            "rate": args.rate,
            "swap_min_rows": args.swap_min_rows,
            "baseline": baseline,
            "phases": phases,
            "writer_errors": errors,
            "writer_allocations": {"inserted": inserted, "kept": kept},
            "commands": commands,
        },
        goals(phases, args.rate, inserted, kept, baseline),
    )
    for r in phases:
        if r["note"]:
            print(f"{r['phase']}: {r['note']}")


def goals(
    phases: list[dict[str, Any]],
    rate: float,
    inserted: int,
    kept: int,
    baseline: dict[str, Any],
) -> list[Goal]:
    def extra(r: dict[str, Any]) -> str:
        return "".join(f"; {r[k]}" for k in ("problems", "note") if r[k] not in ("-", ""))

    total = phases[0]["allocations_before"] if phases else 0
    found = [
        Goal(
            f"capacity-overlap {r['phase']}, {total:,} allocations, {rate:g} writes/s",
            f"online (shadow-table swap), no write blocked > {STALL_MS} ms (on a lock, or "
            "on anything but the WAL flush the writers alone wait on too), none failed, "
            "no row lost, the level's step succeeded",
            f"{r['seconds']} s ({r['command_ms']} ms the level's work), swap {r['swap']} "
            f"(lock held {r['lock_held_ms']} ms), {r['blocked_over_200ms']} writes blocked "
            f"> {STALL_MS} ms; worst write {r['writer_max_ms']} ms "
            f"({r['slowest_write']}; worst waiting on a lock {r['worst_lock_wait_ms']} ms, "
            f"on the WAL flush {r['worst_wal_wait_ms']} ms; {r['stalled_over_200ms']} writes "
            f"> {STALL_MS} ms, writers alone {baseline.get('stalled_over_200ms', '-')} in "
            f"{baseline.get('seconds', '-')} s, worst {baseline.get('writer_max_ms', '-')} ms), "
            f"{r['failed']} failed, {r['rows_lost']} rows lost, {r['rows_changed']} changed"
            + extra(r),
            r["blocked_over_200ms"] == 0
            and r["failed"] == 0
            and r["rows_lost"] == 0
            and r["problems"] == "-",
        )
        for r in phases
        if not r["phase"].startswith("verify")
    ]
    found += [
        Goal(
            r["phase"],
            f"clean, {'the level named' if 'level' in r['phase'] else 'no level'}, "
            "no row lost, none failed",
            f"{r['status']}, {r['seconds']} s, {r['rows_lost']} rows lost, {r['failed']} failed"
            + extra(r),
            r["problems"] == "-" and r["rows_lost"] == 0 and r["failed"] == 0,
        )
        for r in phases
        if r["phase"].startswith("verify")
    ]
    found.append(
        Goal(
            "allocations the writer inserted during the run, all kept",
            "every one still there",
            f"{kept:,} of {inserted:,} there",
            kept == inserted and inserted > 0,
        )
    )
    return found


if __name__ == "__main__":
    main()
