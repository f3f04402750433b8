"""Run a level-2 rollback (or its restore) like a deploy: under the deploy lock, on a
migration session with lock_timeout and bounded retries, every run recorded.

The steps (migrations/levels/<steps>.py) are forward changes, not Alembic revisions:
alembic_version does not move. They run inside Alembic's operations context (the same
`op` and helpers as a revision, the shadow-table swap included), and the state they
leave is recorded in venuedb.release_levels: "applying" (or "restoring") is committed
before the first step, "applied" (or the row's removal) in the last step's transaction.
A run that dies in between leaves the first word behind, and verify reports the level
as interrupted rather than as applied or as drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from toolkit.deployments import store as records
from toolkit.engine import checksums, locks
from toolkit.engine import revisions as revs
from toolkit.engine.alembic_context import operations
from toolkit.engine.blockers import Blocker, BlockerWatcher
from toolkit.engine.migrate import (
    Emit,
    RunOptions,
    current_heads,
    error_text,
    migration_session,
    quiet,
    refuse_an_orphaned_migration,
    retry_on_lock_timeout,
)
from toolkit.errors import BadInput, LockBusy, OperationFailed
from toolkit.integrity import catalog as snapshot
from toolkit.runbook import levels
from toolkit.server import connection as db

APPLY, RESTORE = "apply", "restore"


@dataclass
class LevelResult:
    release: str
    level: int
    direction: str  # apply | restore
    done: bool = False  # False: nothing to do (already in that state)
    notices: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    deployment_id: int | None = None
    duration_ms: int = 0
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "level": self.level,
            "direction": self.direction,
            "done": self.done,
            "notices": self.notices,
            "details": self.details,
            "deployment_id": self.deployment_id,
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
        }


def run_level(
    target: db.Target,
    level: levels.Level,
    direction: str,
    options: RunOptions,
    emit: Emit = quiet,
) -> LevelResult:
    """Apply the level's steps (direction "apply") or restore what they removed ("restore")."""
    assert level.steps is not None and direction in (APPLY, RESTORE)
    module = levels.steps_module(level.steps)
    result = LevelResult(level.release, level.level, direction)
    for accepted in checksums.refuse_changed_files_of(target):
        emit("warning", accepted)
    started = time.monotonic()
    command = "rollback" if direction == APPLY else "rollout"
    control = db.connect(target, purpose=f"{command} level {level.level} (control)")
    with control:
        records.ensure_schema(control)
        locks.acquire(control, locks.DEPLOY_LOCK, options.lock_wait, "deploy")
        try:
            refuse_an_orphaned_migration(control)
            state = _state_under_the_lock(control, level)
            if (direction == APPLY and state is not None and state.state == levels.APPLIED) or (
                direction == RESTORE and state is None
            ):
                emit("info", _nothing_to_do(level, direction, state))
                return result
            if state is not None and state.state != levels.APPLIED:
                emit("warning", f"{state.describe()}; this run finishes the job")
            heads = revs.heads_by_branch(current_heads(control))
            what = f"{level.release} level {level.level}" + (
                "" if direction == APPLY else " (restore)"
            )
            deployment = records.start(
                control,
                command=command,
                target=what,
                actor=options.actor,
                from_revisions=heads,
                planned=[what],
                lock_id=locks.DEPLOY_WORK_LOCK,
            )
            result.deployment_id = deployment.id
            deployment.output.extend(f"info: {line}" for line in options.record_notes)
            details = dict(state.details) if state is not None else {}
            # Committed before the first step: a run that dies before its last step
            # leaves "applying"/"restoring" behind, which verify reports.
            schema_before = snapshot.take(control)
            levels.record_start(
                control,
                level.release,
                levels.APPLYING if direction == APPLY else levels.RESTORING,
                deployment.id,
                options.actor,
            )

            def note(kind: str, message: str) -> None:
                deployment.output.append(f"{kind}: {message}")
                if kind == "notice":
                    result.notices.append(message)
                emit(kind, message)

            try:
                _attempts(
                    _LevelRun(target, module, level, direction, details, options, result, note)
                )
            except (OperationFailed, LockBusy) as exc:
                control = _reconnected(control, target)
                said = _after_a_failure(control, level, state, schema_before)
                records.finish(
                    control,
                    deployment,
                    result="failed",
                    to_revisions=heads,
                    done=[],
                    error=f"{exc} {said}",
                )
                raise type(exc)(f"{exc} {said}") from None
            result.done = True
            result.details = details
            result.duration_ms = round((time.monotonic() - started) * 1000)
            verb = "applied" if direction == APPLY else "restored"
            note("step", f"{verb} {level.release} level {level.level} ({result.duration_ms} ms)")
            records.finish(
                _reconnected(control, target),
                deployment,
                result="succeeded",
                to_revisions=heads,
                done=[what],
            )
            return result
        finally:
            if not control.closed and not control.broken:
                locks.release(control, locks.DEPLOY_LOCK)


def _after_a_failure(
    control: Any,
    level: levels.Level,
    previous: levels.AppliedLevel | None,
    schema_before: dict[str, dict[str, str]],
) -> str:
    """A failed run that changed nothing puts the level's record back as it was; one that
    changed the schema part way keeps "applying"/"restoring", so verify says so."""
    if snapshot.take(control) != schema_before:
        return (
            "The schema was changed part way: `venuedb verify` reports the level as "
            "interrupted until the same command (or `venuedb rollout "
            f"{level.release}`) finishes it."
        )
    if previous is None:
        levels.forget(control, level.release)
    else:
        levels.record_start(
            control, level.release, previous.state, previous.deployment_id, previous.actor
        )
    return "The schema is as it was before the run."


def _state_under_the_lock(control: Any, level: levels.Level) -> levels.AppliedLevel | None:
    """The release must be applied (a level works on the release's objects); its
    recorded level-2 state, if any."""
    states = revs.releases_applied(current_heads(control))
    state = next((s["state"] for s in states if s["release"] == level.release), "pending")
    if state != "applied":
        raise BadInput(
            f"release {level.release} is {state}, not applied: level {level.level} works on "
            f"its objects. Nothing was changed. `venuedb status` shows what is applied"
        )
    return next((a for a in levels.recorded(control) if a.release == level.release), None)


def _nothing_to_do(level: levels.Level, direction: str, state: Any) -> str:
    if direction == APPLY:
        return f"nothing to do: {state.describe()}"
    return (
        f"nothing to restore: release {level.release} is applied and its level {level.level} is not"
    )


def _reconnected(control: Any, target: db.Target) -> Any:
    if not control.closed and not control.broken:
        return control
    return db.connect(target, purpose="record (reconnected)")


@dataclass
class _LevelRun:
    """One level run under way: what each of its attempts works with."""

    target: db.Target
    module: Any  # the level's steps (migrations/levels/<steps>.py)
    level: levels.Level
    direction: str
    details: dict[str, Any]  # what the steps decided; changes only when an attempt commits
    options: RunOptions
    result: LevelResult
    note: Emit


def _attempts(run: _LevelRun) -> None:
    level, direction = run.level, run.direction

    def once(blockers: list[Blocker]) -> None:
        run.result.attempts += 1
        _once(run, blockers)

    retry_on_lock_timeout(
        once,
        run.options,
        run.note,
        what=lambda: f"{level.release} level {level.level}",
        failed=lambda exc: OperationFailed(
            f"{level.release} level {level.level} ({direction}) failed: {error_text(exc)}. "
            "Its open transaction was rolled back; steps that run outside it (a "
            "shadow-table swap's copy) are kept and resumed by running the same command again"
        ),
        after=lambda blockers: (
            "Its open transaction was rolled back; steps that ran outside it (a shadow-table "
            "swap's copy) are kept, and running the same command again resumes them"
        ),
    )


def _once(run: _LevelRun, blockers: list[Blocker]) -> None:
    """One attempt; `details` changes only when it commits (a retry starts from the same)."""
    working = dict(run.details)
    engine = db.engine(run.target, purpose=f"level {run.level.level}")
    try:
        with engine.connect() as conn:
            driver = conn.connection.driver_connection
            pid = migration_session(conn, run.options, run.note)
            with BlockerWatcher(run.target, pid) as watcher:
                try:
                    with operations(conn):
                        if run.direction == APPLY:
                            run.module.apply(working)
                            levels.record_applied(driver, run.level.release, working)
                        else:
                            run.module.restore(working)
                            levels.forget(driver, run.level.release)
                finally:
                    blockers.extend(watcher.seen)
                    if conn.in_transaction():
                        conn.rollback()
            run.details.clear()
            run.details.update(working)
    finally:
        engine.dispose()


def replay(url: str, states: list[levels.AppliedLevel]) -> None:
    """Run the applied levels' steps on a scratch database (verify's reference), following
    the decisions each recorded on the live database."""
    from toolkit.server.connection import Target

    target = Target(url, "scratch")
    for state in states:
        level = levels.find_level(state.release, state.level)
        assert level.steps is not None
        module = levels.steps_module(level.steps)
        engine = db.engine(target, purpose="verify reference")
        try:
            with engine.connect() as conn, operations(conn):
                module.apply(dict(state.details))
        finally:
            engine.dispose()


def plan_level(
    target: db.Target, level: levels.Level
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]], levels.AppliedLevel | None]:
    """What level 2 of `level.release` would do, read before asking: every release's
    state, the level's steps, the rows of the tables it copies (every one kept) and the
    level state already recorded. BadInput, with nothing changed, unless the release is
    applied."""
    assert level.steps is not None
    module = levels.steps_module(level.steps)
    with db.connect(target, purpose="rollback level plan") as conn:
        states = revs.releases_applied(current_heads(conn))
        state = next(s["state"] for s in states if s["release"] == level.release)
        if state != "applied":
            raise BadInput(
                f"release {level.release} is {state}, not applied: level 2 works on its "
                "objects. Nothing was changed. `venuedb status` shows what is applied"
            )
        steps = module.describe(conn)
        counted = [
            {
                "table": t,
                "rows": db.scalar(conn, f"SELECT count(*) FROM public.{t}"),
                "rows_lost": 0,
            }
            for t in getattr(module, "TABLES", ())
        ]
        current = next((a for a in levels.recorded(conn) if a.release == level.release), None)
    return states, steps, counted, current
