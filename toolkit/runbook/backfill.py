"""Batched, throttled, resumable data backfills.

A backfill is declared once in migrations/backfills.toml: the table, the key it walks,
the PL/pgSQL batch function it calls, the predicate of rows still to do. The engine
walks the key in order (keyset, never OFFSET), one short transaction per batch: it
locks the batch's rows FOR NO KEY UPDATE (bounded by lock_timeout, so a live writer
waits at most one batch), calls `function(from_key, to_key)` for the rows with
from_key < key <= to_key, and records progress in the same transaction. A killed run
therefore resumes from the last committed batch: nothing done twice, nothing skipped.

Progress belongs to one apply of the backfill's release: a rollback drops what the
backfill filled, so progress older than the release's current apply is stale. That is
told from the toolkit's revision_checksums (written on every upgrade, removed on every
downgrade, whoever ran it: venuedb or plain alembic), so `status` shows a stale run as
"not started" and `run` archives it in the records and starts from the first key.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import backoff
from toolkit.deployments import store as records
from toolkit.durations import to_postgres
from toolkit.engine import locks
from toolkit.errors import BadInput, LockBusy, OperationFailed, VenuedbError
from toolkit.ops.cluster_throttle import Limits, Throttle
from toolkit.paths import migrations_dir, read_toml
from toolkit.progress import tracking
from toolkit.server import connection as db
from toolkit.server.urls import masked_first_line


@dataclass(frozen=True)
class Backfill:
    name: str
    table: str
    key: str
    function: str
    todo: str  # SQL predicate of the rows still to do (dry runs, totals)
    description: str
    release: str | None = None


def backfills_file() -> Path:
    override = os.environ.get("VENUEDB_BACKFILLS_FILE")
    return Path(override) if override else migrations_dir() / "backfills.toml"


def load_backfills(path: Path | None = None) -> list[Backfill]:
    path = path or backfills_file()
    if not path.exists():
        return []
    data = read_toml(path, "the backfill list")
    out = []
    for entry in data.get("backfill", []):
        try:
            out.append(
                Backfill(
                    name=entry["name"],
                    table=entry["table"],
                    key=entry["key"],
                    function=entry["function"],
                    todo=entry.get("todo", "true"),
                    description=entry.get("description", ""),
                    release=entry.get("release"),
                )
            )
        except KeyError as exc:
            raise BadInput(f"malformed backfill entry in {path}: missing {exc}") from None
    return out


def find_backfill(name: str, path: Path | None = None) -> Backfill:
    for backfill in load_backfills(path):
        if backfill.name == name:
            return backfill
    known = ", ".join(b.name for b in load_backfills(path)) or "none declared"
    raise BadInput(f"unknown backfill {name!r} (known: {known})")


@dataclass
class Options:
    batch_size: int = 1000
    sleep: float = 0.0
    max_rows: int | None = None
    max_duration: float | None = None
    adaptive: bool = False
    target_ms: float = 200.0
    min_batch: int = 10
    max_batch: int = 50_000
    lock_timeout: float = 1.0
    statement_timeout: float = 30.0
    batch_retries: int = 5
    dry_run: bool = False
    restart: bool = False
    resume: bool = False
    # The health of the standbys and the WAL stream (toolkit.ops.cluster_throttle).
    limits: Limits = field(default_factory=Limits)


@dataclass
class Report:
    name: str
    state: str
    rows: int = 0
    changed: int = 0
    batches: int = 0
    retries: int = 0
    seconds: float = 0.0
    total: int | None = None
    dry_run: bool = False
    stopped_by: str | None = None
    batch_sizes: list[int] = field(default_factory=list)
    reset: str | None = None  # why an earlier run's progress was archived and started over
    throttle: dict[str, Any] | None = None  # Throttle.summary(): pauses, lag seen, standbys lost

    def to_dict(self) -> dict[str, Any]:
        rate = self.rows / self.seconds if self.seconds > 0 else None
        return {
            "name": self.name,
            "state": self.state,
            "rows": self.rows,
            "changed": self.changed,
            "batches": self.batches,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(rate, 1) if rate else None,
            "total": self.total,
            "dry_run": self.dry_run,
            "stopped_by": self.stopped_by,
            "batch_size_last": self.batch_sizes[-1] if self.batch_sizes else None,
            "batch_size_min": min(self.batch_sizes) if self.batch_sizes else None,
            "batch_size_max": max(self.batch_sizes) if self.batch_sizes else None,
            "reset": self.reset,
            "throttle": self.throttle,
        }


OnBatch = Callable[[Report], None]


_lock_id = locks.backfill_lock_id


def _key_type(conn: Any, backfill: Backfill) -> str:
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
        (f"public.{backfill.table}", backfill.key),
    ).fetchone()
    if row is None:
        raise BadInput(
            f"backfill {backfill.name}: table public.{backfill.table} or its key "
            f"{backfill.key!r} does not exist (is its release applied?)"
        )
    function = conn.execute("SELECT to_regproc(%s)", (f"public.{backfill.function}",)).fetchone()
    if function[0] is None:
        raise BadInput(
            f"backfill {backfill.name}: function public.{backfill.function} "
            "does not exist (is its release applied?)"
        )
    return str(row[0])


def _progress(conn: Any, name: str) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM venuedb.backfill_progress WHERE name = %s", (name,))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d.name for d in cur.description], row, strict=True))


def stale_reason(conn: Any, backfill: Backfill, progress: dict[str, Any]) -> str | None:
    """Why `progress` no longer describes this database's data (None: it does).

    Stale when the backfill's release is not applied at all (its rollback dropped what the
    run filled), or when one of its revisions was applied after the run started (rolled
    back and applied again: the run's work went with the rollback). Without a release, or
    without checksum rows to date the apply (a stamped database), progress is trusted.
    """
    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import current_heads
    from toolkit.engine.releases import find_release

    release = find_release(backfill.release) if backfill.release else None
    if release is None:
        return None
    applied = revs.applied_revisions(current_heads(conn))
    if not any(r in applied for r in release.revisions):
        return (
            f"release {release.name} is not applied: its rollback undid the run started at "
            f"{_when(progress['started_at'])}"
        )
    if not db.table_exists(conn, "venuedb.revision_checksums"):
        return None
    row = conn.execute(
        "SELECT revision, applied_at FROM venuedb.revision_checksums "
        "WHERE revision = ANY(%s) AND applied_at > %s ORDER BY applied_at DESC LIMIT 1",
        (list(release.revisions), progress["started_at"]),
    ).fetchone()
    if row is None:
        return None
    return (
        f"release {release.name} was applied again ({row[0]} at {_when(row[1])}) after "
        f"the run started at {_when(progress['started_at'])}"
    )


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)


def _plain(progress: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else v)
        for k, v in progress.items()
        if k != "name"
    }


def status(target: db.Target, name: str | None = None) -> list[dict[str, Any]]:
    declared = load_backfills()
    if name is not None:
        declared = [find_backfill(name)]
    with db.connect(target, purpose="backfill status") as conn:
        records.reap(conn)
        known = records.schema_exists(conn) and db.table_exists(conn, "venuedb.backfill_progress")
        out = []
        for backfill in declared:
            progress = _progress(conn, backfill.name) if known else None
            entry: dict[str, Any] = {
                "name": backfill.name,
                "table": backfill.table,
                "description": backfill.description,
                "state": "not started",
            }
            stale = stale_reason(conn, backfill, progress) if progress else None
            if progress and stale:
                # Read-only: the next run archives and resets it; until then the truth is
                # that nothing of the current apply's data was backfilled.
                entry["note"] = f"{stale}; the next run starts from the first key"
                entry["earlier_run"] = _plain(progress)
            elif progress:
                entry.update(_plain(progress))
                entry.update(_estimate(conn, backfill, progress))
            out.append(entry)
    return out


def _estimate(conn: Any, backfill: Backfill, progress: dict[str, Any]) -> dict[str, Any]:
    """How far a run is, from what it recorded: percent of rows done against those done
    plus those still to do after its last key (counted now, as the exporter counts them),
    and an ETA at the run's rate since it started. The progress row keeps no per-batch
    history, so that rate includes any pause: a resumed run's ETA errs long."""
    if progress["state"] == "finished":
        return {"percent": 100.0, "remaining_rows": 0, "eta_seconds": None}
    try:
        key_type = _key_type(conn, backfill)
    except BadInput:  # its table or function is gone: nothing to count
        return {}
    remaining = _count_todo(conn, backfill, key_type, progress)
    done = int(progress["rows_done"])
    seconds = (progress["updated_at"] - progress["started_at"]).total_seconds()
    rate = done / seconds if done and seconds > 0 else None
    return {
        "percent": round(100.0 * done / (done + remaining), 1) if done + remaining else 100.0,
        "remaining_rows": remaining,
        "eta_seconds": round(remaining / rate, 1) if rate else None,
    }


def pause(target: db.Target, name: str) -> str:
    find_backfill(name)
    with db.connect(target, purpose="backfill pause") as conn:
        records.ensure_schema(conn)
        row = conn.execute(
            "UPDATE venuedb.backfill_progress SET pause_requested = true, "
            "state = CASE WHEN state = 'running' AND NOT pg_try_advisory_lock(%s, %s) "
            "THEN state ELSE 'paused' END, updated_at = clock_timestamp() "
            "WHERE name = %s AND state IN ('running', 'paused', 'interrupted') RETURNING state",
            (locks.NAMESPACE, _lock_id(name), name),
        ).fetchone()
        conn.execute("SELECT pg_advisory_unlock_all()")
    if row is None:
        raise BadInput(f"backfill {name} is not running or resumable; nothing to pause")
    if row[0] == "running":
        return "pause requested: the runner stops after its current batch"
    return "paused"


def run(
    target: db.Target, backfill: Backfill, options: Options, on_batch: OnBatch | None = None
) -> Report:
    report = Report(backfill.name, "running", dry_run=options.dry_run)
    control = db.connect(target, purpose=f"backfill {backfill.name} (control)")
    with control:
        key_type = _key_type(control, backfill)
        if options.dry_run:
            return _dry_run(control, backfill, key_type, report)
        records.ensure_schema(control)
        lock_id = _lock_id(backfill.name)
        try:
            locks.acquire(control, lock_id, 0, f"runner of backfill {backfill.name}")
        except LockBusy as exc:
            raise LockBusy(
                str(exc).replace("wait longer with --lock-wait", "wait for it or pause it")
            ) from None
        try:
            return _run_locked(target, control, backfill, key_type, options, report, on_batch)
        finally:
            locks.release(control, lock_id)


def run_recorded(
    target: db.Target, backfill: Backfill, options: Options, on_batch: OnBatch | None = None
) -> Report:
    """`run`, then a deployment record (database and Markdown) spanning the whole run, so
    its duration is the run's and not the few milliseconds of writing the record."""
    from datetime import UTC, datetime

    started = datetime.now(UTC)
    try:
        report = run(target, backfill, options, on_batch)
    except LockBusy:
        raise  # another runner has it: nothing ran, nothing to record
    except VenuedbError as exc:
        _record(target, backfill.name, started, None, str(exc))
        raise
    if not report.dry_run:
        _record(target, backfill.name, started, report, None)
    return report


def _record(
    target: db.Target, name: str, started: Any, report: Report | None, error: str | None
) -> None:
    from datetime import UTC, datetime

    from toolkit.deployments.operation import RecordStep, record_operation

    detail = f"{report.rows} rows, {report.changed} changed" if report else ""
    record_operation(
        target,
        command="backfill",
        what=name,
        title=f"backfill {name} Deployment Record",
        status=f"FAILED: {error}" if error else "SUCCESS",
        step=RecordStep(
            f"backfill {name}", started, datetime.now(UTC), "failed" if error else "ok", detail
        ),
        lines=[f"{k}: {v}" for k, v in report.to_dict().items()] if report else [],
        error=error,
    )


def _current_progress(conn: Any, backfill: Backfill) -> dict[str, Any] | None:
    """The progress row of the backfill's current run; None when there is none, or when it
    is stale (the next run resets it: every row still to do counts)."""
    if not (records.schema_exists(conn) and db.table_exists(conn, "venuedb.backfill_progress")):
        return None
    progress = _progress(conn, backfill.name)
    if progress and stale_reason(conn, backfill, progress):
        return None
    return progress


def _count_todo(conn: Any, backfill: Backfill, key_type: str, progress: Any) -> int:
    last = progress["last_key"] if progress and progress["state"] != "finished" else None
    return int(
        conn.execute(
            f"SELECT count(*) FROM public.{backfill.table} "
            f"WHERE ({backfill.todo}) AND (%(last)s::{key_type} IS NULL "
            f"OR {backfill.key} > %(last)s::{key_type})",
            {"last": last},
        ).fetchone()[0]
    )


def _dry_run(conn: Any, backfill: Backfill, key_type: str, report: Report) -> Report:
    report.total = _count_todo(conn, backfill, key_type, _current_progress(conn, backfill))
    report.state = "dry-run"
    return report


@dataclass(frozen=True)
class Standing:
    remaining: int  # rows still to do, as `venuedb backfill run NAME --dry-run` counts them
    done: int  # rows its current run did (0: no run, or a stale one)


def standing(conn: Any, backfill: Backfill) -> Standing | None:
    """Where a backfill stands (the exporter's progress metrics), read once; None when its
    table or function does not exist (its release is not applied)."""
    try:
        key_type = _key_type(conn, backfill)
    except BadInput:
        return None
    progress = _current_progress(conn, backfill)
    done = int(progress["rows_done"]) if progress else 0
    return Standing(_count_todo(conn, backfill, key_type, progress), done)


def _reset_if_stale(control: Any, backfill: Backfill) -> str | None:
    """Archive a stale run's progress as a `backfill-reset` record and delete it, in one
    transaction, under the runner's lock; say why (None: nothing was stale)."""
    progress = _progress(control, backfill.name)
    why = stale_reason(control, backfill, progress) if progress else None
    if progress is None or why is None:
        return None
    # Archived, not just deleted: `venuedb records` keeps what the earlier run did.
    with control.transaction():
        records.record_once(
            control,
            command="backfill-reset",
            target=backfill.name,
            actor=records.default_actor(),
            result="succeeded",
            output=[f"reset: {why}"] + [f"{k}: {v}" for k, v in _plain(progress).items()],
        )
        control.execute("DELETE FROM venuedb.backfill_progress WHERE name = %s", (backfill.name,))
    return why


def _start(control: Any, backfill: Backfill, options: Options) -> dict[str, Any]:
    name = backfill.name
    if options.restart:
        control.execute("DELETE FROM venuedb.backfill_progress WHERE name = %s", (name,))
    control.execute(
        "INSERT INTO venuedb.backfill_progress (name, batch_size) VALUES (%s, %s) "
        "ON CONFLICT (name) DO NOTHING",
        (name, options.batch_size),
    )
    progress = _progress(control, name)
    assert progress is not None
    if progress["state"] == "finished":
        raise BadInput(
            f"backfill {name} already finished at {progress['finished_at']}; "
            "run it again from the start with --restart"
        )
    if progress["pause_requested"] and not options.resume:
        raise BadInput(
            f"backfill {name} was paused; continue it with `venuedb backfill resume {name}`"
        )
    control.execute(
        "UPDATE venuedb.backfill_progress SET state = 'running', pause_requested = false, "
        "runner = %s, last_error = NULL, failing_range = NULL, updated_at = clock_timestamp(), "
        "backend_pid = pg_backend_pid(), interrupted_at = NULL WHERE name = %s",
        (f"pid {os.getpid()} on {socket.gethostname()}", name),
    )
    return progress


def _run_locked(
    target: db.Target,
    control: Any,
    backfill: Backfill,
    key_type: str,
    options: Options,
    report: Report,
    on_batch: OnBatch | None,
) -> Report:
    import psycopg.errors

    report.reset = _reset_if_stale(control, backfill)
    progress = _start(control, backfill, options)
    last = progress["last_key"]
    report.total = int(
        control.execute(
            f"SELECT count(*) FROM public.{backfill.table} WHERE %(last)s::{key_type} IS NULL "
            f"OR {backfill.key} > %(last)s::{key_type}",
            {"last": last},
        ).fetchone()[0]
    )
    size = options.batch_size
    started = time.monotonic()
    work = db.connect(target, autocommit=False, purpose=f"backfill {backfill.name}")
    shown = tracking(f"backfill {backfill.name}", report.total, "rows")
    with work, shown as reporter:
        throttle = Throttle(f"public.{backfill.table}", options.limits, reporter.note)
        work.execute(f"SET lock_timeout = '{to_postgres(options.lock_timeout)}'")
        work.execute(f"SET statement_timeout = '{to_postgres(options.statement_timeout)}'")
        work.commit()
        attempt = 0
        while True:
            report.seconds = time.monotonic() - started
            stop = _stop_reason(control, backfill, options, report)
            if stop is None:
                stop = throttle.wait_until_healthy(
                    control,
                    lambda: _stop_reason(control, backfill, options, _aged(report, started)),
                )
            report.throttle = throttle.summary()
            if stop:
                return _finish(control, backfill, report, "paused", stop)
            if options.max_rows is not None:
                size = max(1, min(size, options.max_rows - report.rows))
            t0 = time.perf_counter()
            try:
                keys, changed = _batch(work, backfill, key_type, last, size)
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
                work.rollback()
                attempt += 1
                report.retries += 1
                _record_error(control, backfill, last, size, exc)
                if attempt > options.batch_retries:
                    return _fail(control, backfill, report, last, size, exc)
                size = max(options.min_batch, size // 2) if options.adaptive else size
                time.sleep(backoff.delay(0.1, attempt, cap=2.0))
                continue
            except psycopg.Error as exc:
                work.rollback()
                _record_error(control, backfill, last, size, exc)
                return _fail(control, backfill, report, last, size, exc)
            attempt = 0
            elapsed_ms = (time.perf_counter() - t0) * 1000
            if not keys:
                return _finish(control, backfill, report, "finished", None)
            last = keys[-1]
            report.rows += len(keys)
            reporter.advance(len(keys))
            report.changed += changed
            report.batches += 1
            report.batch_sizes.append(size)
            report.seconds = time.monotonic() - started
            if on_batch:
                on_batch(report)
            if len(keys) < size and options.max_rows is None:
                return _finish(control, backfill, report, "finished", None)
            if options.adaptive:
                size = _adapt(size, elapsed_ms, options)
            if options.sleep:
                time.sleep(options.sleep)


def _aged(report: Report, started: float) -> Report:
    """The report with its clock brought up to now, for --max-duration during a pause."""
    report.seconds = time.monotonic() - started
    return report


def _batch(
    work: Any, backfill: Backfill, key_type: str, last: Any, size: int
) -> tuple[list[Any], int]:
    """One transaction: lock the next `size` rows, run the batch function, record progress."""
    rows = work.execute(
        # The alias matters: ORDER BY an output column named like the key would sort as text.
        f"SELECT t.{backfill.key}::text AS batch_key FROM public.{backfill.table} AS t "
        f"WHERE %(last)s::{key_type} IS NULL OR t.{backfill.key} > %(last)s::{key_type} "
        f"ORDER BY t.{backfill.key} LIMIT %(size)s FOR NO KEY UPDATE",
        {"last": last, "size": size},
    ).fetchall()
    if not rows:
        work.rollback()
        return [], 0
    keys = [r[0] for r in rows]
    changed = work.execute(
        f"SELECT public.{backfill.function}(%(lo)s::{key_type}, %(hi)s::{key_type})",
        {"lo": last, "hi": keys[-1]},
    ).fetchone()[0]
    work.execute(
        "UPDATE venuedb.backfill_progress SET last_key = %(hi)s, rows_done = rows_done + %(n)s, "
        "rows_changed = rows_changed + %(c)s, batches = batches + 1, batch_size = %(size)s, "
        "updated_at = clock_timestamp() WHERE name = %(name)s",
        {
            "hi": keys[-1],
            "n": len(keys),
            "c": int(changed or 0),
            "size": size,
            "name": backfill.name,
        },
    )
    work.commit()
    return keys, int(changed or 0)


def _adapt(size: int, elapsed_ms: float, options: Options) -> int:
    """Halve a batch that took longer than the target; grow one that took under half of it."""
    if elapsed_ms > options.target_ms:
        return max(options.min_batch, size // 2)
    if elapsed_ms < options.target_ms / 2:
        return min(options.max_batch, int(size * 1.5) + 1)
    return size


def _stop_reason(control: Any, backfill: Backfill, options: Options, report: Report) -> str | None:
    if options.max_rows is not None and report.rows >= options.max_rows:
        return f"--max-rows {options.max_rows}"
    if options.max_duration is not None and report.seconds >= options.max_duration:
        return f"--max-duration {options.max_duration:g}s"
    row = control.execute(
        "SELECT pause_requested FROM venuedb.backfill_progress WHERE name = %s", (backfill.name,)
    ).fetchone()
    if row and row[0]:
        return "pause requested"
    return None


def _record_error(
    control: Any, backfill: Backfill, last: Any, size: int, exc: BaseException
) -> None:
    control.execute(
        "UPDATE venuedb.backfill_progress SET errors = errors + 1, last_error = %s, "
        "failing_range = %s, updated_at = clock_timestamp() WHERE name = %s",
        (
            masked_first_line(exc),
            f"after {last if last is not None else '(start)'}, next {size} rows",
            backfill.name,
        ),
    )


def _finish(
    control: Any, backfill: Backfill, report: Report, state: str, why: str | None
) -> Report:
    control.execute(
        "UPDATE venuedb.backfill_progress SET state = %s, updated_at = clock_timestamp(), "
        "finished_at = CASE WHEN %s = 'finished' THEN clock_timestamp() END, runner = NULL, "
        "backend_pid = NULL WHERE name = %s",
        (state, state, backfill.name),
    )
    report.state = state
    report.stopped_by = why
    return report


def _fail(
    control: Any, backfill: Backfill, report: Report, last: Any, size: int, exc: BaseException
) -> Report:
    _finish(control, backfill, report, "failed", None)
    raise OperationFailed(
        f"backfill {backfill.name} failed in the batch after key "
        f"{last if last is not None else '(start)'} (next {size} rows): {masked_first_line(exc)}. "
        f"{report.rows} rows in {report.batches} batches are committed and kept; fix the "
        f"cause and run `venuedb backfill run {backfill.name}` to continue from there."
    )
