"""Running one job per database: canaries first, a concurrency limit, stop on the first
failure (the databases not started are `skipped`; those in flight finish), or go on past
failures (keep_going)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from toolkit.errors import VenuedbError
from toolkit.fleet.inventory import FleetDatabase
from toolkit.server.urls import mask_text, masked_first_line

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class JobResult:
    """What one database's command said: its exit code, its JSON status word, one line for
    a person, and its whole JSON document (None when it printed none)."""

    exit_code: int
    word: str
    detail: str
    document: dict[str, Any] | None


Job = Callable[[FleetDatabase], JobResult]


@dataclass(frozen=True)
class Outcome:
    database: FleetDatabase
    status: str  # ok | failed | skipped
    exit_code: int | None
    word: str | None
    detail: str
    started_at: datetime | None
    finished_at: datetime | None
    document: dict[str, Any] | None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.database.name,
            "url": self.database.masked_url,
            "canary": self.database.canary,
            "status": self.status,
            "exit_code": self.exit_code,
            "detail": self.detail,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": self.duration_ms,
            "result": self.document,
        }


def run(
    databases: list[FleetDatabase],
    job: Job,
    *,
    concurrency: int,
    keep_going: bool,
    on_finish: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Run `job` on every database (in `databases`' order, canaries first), at most
    `concurrency` at a time; the outcomes in that order. The canaries all finish before
    any other database starts. Without keep_going the first failure stops the run."""
    outcomes: dict[str, Outcome] = {}
    canaries = [d for d in databases if d.canary]
    others = [d for d in databases if not d.canary]
    failed: FleetDatabase | None = None
    for group in (canaries, others):
        if failed is not None and not keep_going:
            for database in group:
                outcomes[database.name] = _skipped(database, failed)
            continue
        failed = _run_group(group, job, concurrency, keep_going, outcomes, on_finish) or failed
    return [outcomes[d.name] for d in databases]


def _run_group(
    group: list[FleetDatabase],
    job: Job,
    concurrency: int,
    keep_going: bool,
    outcomes: dict[str, Outcome],
    on_finish: Callable[[Outcome], None],
) -> FleetDatabase | None:
    """Run one group; the first database of it that failed, if any."""
    if not group:
        return None
    waiting: Iterator[FleetDatabase] = iter(group)
    first_failed: FleetDatabase | None = None
    with ThreadPoolExecutor(max_workers=min(concurrency, len(group))) as pool:
        running: dict[Future[Outcome], FleetDatabase] = {}

        def start_more() -> None:
            while len(running) < concurrency and (keep_going or first_failed is None):
                database = next(waiting, None)
                if database is None:
                    return
                running[pool.submit(_attempt, job, database)] = database

        start_more()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                del running[future]
                outcome = future.result()
                outcomes[outcome.database.name] = outcome
                on_finish(outcome)
                if outcome.status == FAILED and first_failed is None:
                    first_failed = outcome.database
            start_more()
    for database in waiting:  # not started: the group stopped at a failure
        assert first_failed is not None
        outcomes[database.name] = _skipped(database, first_failed)
    return first_failed


def _attempt(job: Job, database: FleetDatabase) -> Outcome:
    """One database's job, timed; an expected failure is its outcome, never an exception
    that would take the other databases' results with it."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    try:
        result = job(database)
    except VenuedbError as exc:
        result = JobResult(exc.exit_code, exc.status, mask_text(str(exc)), None)
    except Exception as exc:  # a database error, or a bug: reported for this database only
        result = JobResult(1, "failed", f"{type(exc).__name__}: {masked_first_line(exc)}", None)
    finished = started + timedelta(seconds=time.monotonic() - clock)
    status = OK if result.exit_code == 0 else FAILED
    return Outcome(
        database,
        status,
        result.exit_code,
        result.word,
        result.detail,
        started,
        finished,
        result.document,
    )


def _skipped(database: FleetDatabase, failed: FleetDatabase) -> Outcome:
    return Outcome(
        database,
        SKIPPED,
        None,
        None,
        f"not started: {failed.name} failed first (--continue runs every database)",
        None,
        None,
        None,
    )


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    return {word: sum(o.status == word for o in outcomes) for word in (OK, FAILED, SKIPPED)}


def fleet_ok(outcomes: list[Outcome]) -> bool:
    """Every selected database ran and was ok (and there was one at least)."""
    return bool(outcomes) and all(o.status == OK for o in outcomes)
