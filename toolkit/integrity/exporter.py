"""`venuedb exporter`: one scrape of the database for Prometheus, and scrapes serialized.

A scrape runs the health checks (toolkit/integrity/health_checks.py) and reads which releases are applied,
when the last deployment record ended and how far each backfill is, then renders the
Prometheus text format (toolkit/integrity/metrics_text.py). It opens its connections itself
(application_name 'venuedb exporter'), ends every transaction and closes them before it
answers: between two scrapes the exporter has no session at all, so it can never leave
one idle in transaction, and a terminated backend or a restarted server costs one scrape.

The database unreachable (or lost mid-scrape) is a scrape like any other: `venuedb_up 0`
and nothing else, never a 500 (postgres_exporter's convention); the next scrape connects
again. Only one scrape runs at a time: a request that arrives while one runs waits for
it and gets its result (single flight), so two Prometheus servers, or a burst of
requests, run the checks once, and a scrape is never older than the request's arrival
by more than one scrape's duration.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from toolkit.deployments import store as records
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import current_heads
from toolkit.errors import BadInput
from toolkit.integrity import health_checks as health
from toolkit.runbook import backfill as backfills
from toolkit.server import connection as db
from toolkit.server.urls import mask_text, masked_first_line

PURPOSE = "exporter"  # application_name 'venuedb exporter'
# The toolkit's own reads (releases, deployments, backfills) wait this long for a lock at
# most: a migration's ALTER on the records must not hold a scrape until Prometheus gives up.
LOCK_TIMEOUT_MS = 1000

Log = Callable[[str], None]


@dataclass(frozen=True)
class BackfillProgress:
    name: str
    remaining: int  # rows the backfill's `todo` predicate selects that its run has not passed
    done: int  # rows the current run visited (0: not started, or its progress is stale)

    @property
    def ratio(self) -> float:
        total = self.done + self.remaining
        return 1.0 if total == 0 else self.done / total  # nothing to do: nothing left


@dataclass
class Snapshot:
    """What one scrape found. up False: nothing else is filled, nothing else is served."""

    up: bool
    results: list[health.CheckResult] = field(default_factory=list)
    windows: dict[str, float] = field(default_factory=dict)  # check name -> seconds
    releases: list[dict[str, Any]] | None = None  # None: could not be read this scrape
    last_deployment: float | None = None  # Unix seconds; None: no record has ended
    backfills: list[BackfillProgress] | None = None
    error: str | None = None  # why up is 0, password masked
    warnings: list[str] = field(default_factory=list)  # parts left out, with why
    unreachable: bool = False  # up 0 because the database could not be reached or was lost

    @property
    def status(self) -> str:
        """The `venuedb check` status of these results; bad_input when it was unreachable."""
        if not self.up:
            return "bad_input" if self.unreachable else "failed"
        return health.overall(self.results)

    @property
    def exit_code(self) -> int:
        """`venuedb check`'s exit code for the same results; 2 unreachable, 1 a failure."""
        if not self.up:
            return 2 if self.unreachable else 1
        return health.exit_code(self.status)


def run_the_checks(
    target: db.Target, checks: list[health.HealthCheck], timeout_ms: int
) -> tuple[list[health.CheckResult], dict[str, float]]:
    """The one call into the check runner: the results, and each check's look-back window
    in seconds (venuedb_check_window_seconds)."""
    # Each check over its own window (its `window:` header), as its alert rule reads it.
    results = health.run_checks(target, checks, timeout_ms=timeout_ms, purpose=PURPOSE)
    return results, {r.check.name: float(r.window.seconds) for r in results if r.window}


def collect(
    target: db.Target,
    checks: list[health.HealthCheck],
    declared_backfills: list[backfills.Backfill],
    *,
    timeout_ms: int = 5000,
) -> Snapshot:
    """One scrape: never raises for a database that is down, slow or refusing."""
    import psycopg

    try:
        results, windows = run_the_checks(target, checks, timeout_ms)
        snapshot = Snapshot(up=True, results=results, windows=windows)
        with db.connect(target, purpose=PURPOSE) as conn:
            _read_state(conn, snapshot, declared_backfills, timeout_ms)
        return snapshot
    except BadInput as exc:  # db.connect: unreachable, refused, no such database
        return Snapshot(up=False, error=str(exc), unreachable=True)
    except psycopg.Error as exc:  # the session was lost (terminated, server restarted)
        return Snapshot(
            up=False,
            error=f"the scrape lost the database: {masked_first_line(exc)}",
            unreachable=True,
        )


def _read_state(
    conn: Any, snapshot: Snapshot, declared: list[backfills.Backfill], timeout_ms: int
) -> None:
    """Releases, last deployment, backfills: one read-only transaction, ended before the
    answer. A part that fails (e.g. a monitoring role without access to schema venuedb)
    is left out and named in the warnings; a lost connection fails the whole scrape."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        snapshot.releases = _part(conn, snapshot, "releases", lambda: _releases(conn))
        snapshot.last_deployment = _part(
            conn, snapshot, "last deployment", lambda: _last_deployment_end(conn)
        )
        snapshot.backfills = _part(conn, snapshot, "backfills", lambda: _backfills(conn, declared))


def _part(conn: Any, snapshot: Snapshot, what: str, read: Callable[[], Any]) -> Any:
    import psycopg

    try:
        with conn.transaction():  # a savepoint: a failed part does not abort the others
            return read()
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise
        snapshot.warnings.append(f"{what} left out: {masked_first_line(exc)}")
        return None


def _releases(conn: Any) -> list[dict[str, Any]]:
    return revs.releases_applied(current_heads(conn))


def _last_deployment_end(conn: Any) -> float | None:
    """The end of the newest deployment record that has ended (a running or interrupted
    one has no end), in Unix seconds."""
    if not records.schema_exists(conn):
        return None
    row = conn.execute(
        "SELECT extract(epoch FROM max(finished_at))::float8 FROM venuedb.deployments"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _backfills(conn: Any, declared: list[backfills.Backfill]) -> list[BackfillProgress]:
    """Per declared backfill: what `venuedb backfill run NAME --dry-run` counts as still to
    do, and the rows its current run did. A backfill whose table or function does not exist
    (its release is not applied) has nothing to say and is left out."""
    out = []
    for backfill in declared:
        found = backfills.standing(conn, backfill)
        if found is not None:
            out.append(BackfillProgress(backfill.name, found.remaining, found.done))
    return out


def log_to_stderr(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stderr.write(f"{stamp} venuedb exporter: {mask_text(message)}\n")
    sys.stderr.flush()


class Exporter:
    """Scrapes on demand, one at a time; a request during a scrape gets that scrape."""

    def __init__(
        self,
        target: db.Target,
        checks: list[health.HealthCheck],
        declared_backfills: list[backfills.Backfill] | None = None,
        *,
        timeout_ms: int = 5000,
        log: Log = log_to_stderr,
    ) -> None:
        self.target = target
        self.checks = checks
        self.backfills = (
            backfills.load_backfills() if declared_backfills is None else declared_backfills
        )
        self.timeout_ms = timeout_ms
        self.log = log
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._running = False
        self._generation = 0
        self._latest: Snapshot | None = None
        self._reported: tuple[bool, str | None, tuple[str, ...]] | None = None
        self.runs = 0  # scrapes that ran the checks
        self.waiting = 0  # requests waiting for the scrape in flight

    def scrape(self) -> Snapshot:
        with self._lock:
            if self._running:
                return self._wait_for_the_running_scrape()
            self._running = True
            self.runs += 1
        snapshot = Snapshot(up=False, error="the scrape stopped on an unexpected error")
        try:
            snapshot = self._collect()
        finally:
            with self._lock:
                self._latest = snapshot
                self._running = False
                self._generation += 1
                self._finished.notify_all()
                self._report(snapshot)
        return snapshot

    def _wait_for_the_running_scrape(self) -> Snapshot:
        generation = self._generation
        self.waiting += 1
        try:
            while self._generation == generation:
                self._finished.wait()
        finally:
            self.waiting -= 1
        assert self._latest is not None
        return self._latest

    def _collect(self) -> Snapshot:
        try:
            return collect(self.target, self.checks, self.backfills, timeout_ms=self.timeout_ms)
        except Exception as exc:  # a bug must not take the endpoint down: up 0, logged
            self.log("unexpected error, venuedb_up 0:\n" + traceback.format_exc())
            return Snapshot(up=False, error=f"unexpected error: {masked_first_line(exc)}")

    def _report(self, snapshot: Snapshot) -> None:
        """Log when the state changes (down, back up, a part left out), not every scrape."""
        state = (snapshot.up, snapshot.error, tuple(snapshot.warnings))
        if state == self._reported:
            return
        was_up = self._reported is None or self._reported[0]
        self._reported = state
        if not snapshot.up:
            self.log(f"venuedb_up 0: {snapshot.error}")
        elif not was_up:
            self.log(f"venuedb_up 1: {self.target.masked} answers again")
        for warning in snapshot.warnings:
            self.log(f"warning: {warning}")
