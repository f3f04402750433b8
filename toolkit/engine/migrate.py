"""Apply and roll back revisions: one deploy at a time, one transaction per revision,
short lock_timeout with bounded retries, every run recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from toolkit import backoff
from toolkit.deployments import store as records
from toolkit.deployments.markdown import RecordStep
from toolkit.durations import to_postgres
from toolkit.engine import checksums, locks
from toolkit.engine import revisions as revs
from toolkit.engine.blockers import Blocker, BlockerWatcher
from toolkit.errors import LockBusy, OperationFailed, VenuedbError
from toolkit.integrity import catalog as snapshot
from toolkit.ops import cluster_throttle
from toolkit.ops.cluster_throttle import Limits
from toolkit.server import connection as db
from toolkit.server.urls import mask_text

Emit = Callable[[str, str], None]  # (kind, message): kind is info | notice | step | retry | warning


def quiet(kind: str, message: str) -> None:
    pass


@dataclass
class RunOptions:
    lock_wait: float = 30.0
    lock_timeout: float = 1.0
    statement_timeout: float = 0.0
    retries: int = 3
    backoff: float = 0.5
    actor: str = field(default_factory=records.default_actor)
    rehearse: bool = False
    # A rehearsal runs on a scratch copy of the target unless this says in place: the plain,
    # blocking forms under the real locks on the real tables (see toolkit/engine/rehearsal.py).
    rehearse_in_place: bool = False
    scratch_url: str | None = None  # the server to create the scratch copy on (default: target's)
    rehearsal_copy_of: str | None = None  # set on the copy's run: the masked URL it copies
    # toolkit.integrity.lint_gate.LintGate: an upgrade's plan is linted before anything changes.
    lint_gate: Any = None
    # Lines for the deployment record only (rollback: the backup it took before the run).
    record_notes: list[str] = field(default_factory=list)
    # The cluster-aware throttle of a revision's batched work (the shadow-table copy).
    throttle: Limits = field(default_factory=Limits)


@dataclass
class RunResult:
    command: str
    target: str
    release: str | None
    planned: list[revs.PlannedRevision]
    done: list[str] = field(default_factory=list)
    from_heads: dict[str, str | None] = field(default_factory=dict)
    to_heads: dict[str, str | None] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    changes: list[snapshot.Change] = field(default_factory=list)
    deployment_id: int | None = None
    duration_ms: int = 0
    attempts: int = 1
    steps: list[RecordStep] = field(default_factory=list)  # each revision, with when it really ran
    locks: list[dict[str, Any]] = field(default_factory=list)  # rehearsal: per revision
    rehearsal: dict[str, Any] = field(default_factory=dict)  # rehearsal: where, caveats

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "target": self.target,
            "release": self.release,
            "planned": [s.to_dict() for s in self.planned],
            "done": self.done,
            "from": self.from_heads,
            "to": self.to_heads,
            "notices": self.notices,
            "changes": [c.to_dict() for c in self.changes],
            "deployment_id": self.deployment_id,
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
            "rehearsal": self.rehearsal,
            "locks": self.locks,
        }


def current_heads(conn: Any) -> tuple[str, ...]:
    """Heads recorded in alembic_version, sorted (empty before the first apply), read inside
    the caller's transaction (its uncommitted changes seen) and leaving it open.

    A SQLAlchemy connection is read through Alembic (MigrationContext.get_current_heads).
    A psycopg connection, what every caller in the toolkit holds, is read here: wrapped in
    a SQLAlchemy Connection for Alembic it would lose the caller's transaction, since
    SQLAlchemy rolls back a new engine's first connection after initialising its dialect
    and rolls back the transaction a Connection began when that closes (inside psycopg's
    `conn.transaction()` the rollback raises, and SQLAlchemy closes the connection).
    """
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy, without importing it for psycopg
        from alembic.runtime.migration import MigrationContext

        return tuple(sorted(MigrationContext.configure(connection=conn).get_current_heads()))
    if not db.table_exists(conn, "public.alembic_version"):
        return ()
    return tuple(sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version")))


def is_lock_timeout(exc: BaseException) -> bool:
    import psycopg.errors

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.errors.LockNotAvailable):
            return True
        orig = getattr(current, "orig", None)
        if isinstance(orig, psycopg.errors.LockNotAvailable):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_text(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line for line in str(orig).strip().splitlines() if line.strip()]
    return mask_text(lines[0] if lines else exc.__class__.__name__)


def run(
    target: db.Target,
    direction: revs.Direction,
    target_name: str | None,
    options: RunOptions | None = None,
    emit: Emit = quiet,
) -> RunResult:
    """Upgrade or downgrade under the deploy lock; raise VenuedbError subclasses on failure.
    ValueError, before anything is read or written, for a direction that is neither."""
    revs.checked_direction(direction)
    options = options or RunOptions()
    if options.rehearse and not options.rehearse_in_place:
        from toolkit.engine import rehearsal

        return rehearsal.on_a_scratch_copy(target, direction, target_name, options, emit, run)
    alembic_target, release = revs.target_for(direction, target_name)
    command = (
        "rehearse" if options.rehearse else ("apply" if direction == "upgrade" else "rollback")
    )
    # Released history is frozen: a changed released file stops here unless accepted.
    for accepted in checksums.refuse_changed_files_of(target):
        emit("warning", accepted)

    control = db.connect(target, purpose=f"{command} (control)")
    with control:
        # Validate the target against the database before anything is written.
        _lint(options, direction, revs.plan(direction, alembic_target, current_heads(control)))
        records.ensure_schema(control)
        if direction == "upgrade":
            _warn_of_levels(control, emit)
        locks.acquire(control, locks.DEPLOY_LOCK, options.lock_wait, "deploy")
        try:
            refuse_an_orphaned_migration(control)
            # Again on the plan made under the lock: lints only what another deploy made
            # pending meanwhile (each revision is linted once).
            _lint(options, direction, revs.plan(direction, alembic_target, current_heads(control)))
            settled: list[str] = []
            if not options.rehearse:
                settled = _settle_interrupted_swaps(control, direction, alembic_target, emit)
            before = cluster_throttle.configure(options.throttle)
            try:
                result = _run_locked(
                    target, control, direction, command, alembic_target, release, options, emit
                )
            finally:
                cluster_throttle.configure(before)
            result.notices[:0] = settled
            return result
        finally:
            if _alive(control):
                locks.release(control, locks.DEPLOY_LOCK)


def _warn_of_levels(control: Any, emit: Emit) -> None:
    """A release at rollback level 2 lacks the piece the level removed: a revision applied
    now is built on that, and one that needs the piece fails."""
    from toolkit.runbook import levels

    for state in levels.recorded(control):
        emit(
            "warning",
            f"{state.describe()}: revisions applied now are built on it (one that needs "
            f"what the level removed fails); `venuedb rollout {state.release}` restores it",
        )


def _lint(
    options: RunOptions, direction: revs.Direction, planned: list[revs.PlannedRevision]
) -> None:
    """The lint gate, before anything is written (not even the toolkit's own schema). Not
    on a rollback: it is the way back from a bad deploy, its SQL was reviewed with the
    release, and squawk's rules judge forward changes (a downgrade drops by design)."""
    if options.lint_gate is not None and direction == "upgrade" and planned:
        options.lint_gate.check([s.revision for s in planned])


def refuse_an_orphaned_migration(control: Any) -> None:
    """A deploy whose lock session was lost may still be migrating: never run beside it."""
    holder = locks.lock_holder(control, locks.DEPLOY_WORK_LOCK)
    if holder is not None:
        raise LockBusy(
            f"another deploy is still migrating although its deploy-lock session is gone: "
            f"{holder.describe()}, connected since {holder.since}. Nothing was changed. "
            "Wait for it to finish (`venuedb status`), or stop it with "
            f"SELECT pg_terminate_backend({holder.pid}) and run this command again"
        )


def _settle_interrupted_swaps(
    control: Any, direction: revs.Direction, alembic_target: str, emit: Emit
) -> list[str]:
    """Resume a swap a dead run left behind when this plan builds the same constraint on
    the same table; otherwise abandon it, so no shadow keeps refusing legal writes."""
    from toolkit.engine import interrupted_swaps
    from toolkit.ops.shadow_swap import ExclusionSwap

    found = interrupted_swaps.find(control)
    if not found:
        return []
    attribute = "UPGRADE" if direction == "upgrade" else "DOWNGRADE"
    resumed = set()
    for step in revs.plan(direction, alembic_target, current_heads(control)):
        module = getattr(revs.script_directory().get_revision(step.revision), "module", None)
        swap = getattr(module, attribute, None)
        if isinstance(swap, ExclusionSwap):
            resumed.add((swap.table, swap.add_constraint))
    said = []
    for item in found:
        if (item.table, item.building) in resumed:
            said.append(f"{item.describe()}: this run resumes it")
        else:
            interrupted_swaps.abandon(control, item)
            said.append(
                f"abandoned {item.describe()}: its shadow table, sync trigger and function "
                f"were dropped ({item.table} keeps the constraint it has)"
            )
        emit("notice", said[-1])
    return said


def _alive(conn: Any) -> bool:
    """Whether a psycopg connection still answers (the control session may be terminated)."""
    import psycopg

    if conn.closed or conn.broken:
        return False
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _control_for_the_record(control: Any, target: db.Target, note: Emit) -> Any:
    """The control session, or a new one when it was lost while the migration ran."""
    if _alive(control):
        return control
    note(
        "warning",
        "the deploy lock's session was lost during the run; the migration kept going under "
        "its own session's lock (no other deploy could start), and this record is written "
        "through a new connection",
    )
    return db.connect(target, purpose="record (reconnected)")


def plan_for(
    target: db.Target, direction: revs.Direction, target_name: str | None
) -> tuple[list[revs.PlannedRevision], dict[str, str | None], str]:
    """The plan without running it (for `rollback` confirmation and `status`)."""
    alembic_target, _ = revs.target_for(direction, target_name)
    with db.connect(target, purpose="plan") as conn:
        heads = current_heads(conn)
    return revs.plan(direction, alembic_target, heads), revs.heads_by_branch(heads), alembic_target


def _run_locked(
    target: db.Target,
    control: Any,
    direction: revs.Direction,
    command: str,
    alembic_target: str,
    release: Any,
    options: RunOptions,
    emit: Emit,
) -> RunResult:
    started = time.monotonic()
    heads = current_heads(control)
    planned = revs.plan(direction, alembic_target, heads)
    result = RunResult(
        command,
        alembic_target,
        release.name if release else None,
        planned,
        from_heads=revs.heads_by_branch(heads),
    )
    if not planned:
        result.to_heads = result.from_heads
        emit("info", "nothing to do: the database is already at the target")
        return result
    deployment = records.start(
        control,
        command=command,
        target=alembic_target,
        actor=options.actor,
        from_revisions=result.from_heads,
        planned=[s.revision for s in planned],
        # The migration session's lock: while it is held the run is alive, even if this
        # control session is lost (records.reap marks a record only when both are gone).
        lock_id=locks.DEPLOY_WORK_LOCK,
    )
    result.deployment_id = deployment.id

    def note(kind: str, message: str) -> None:
        deployment.output.append(f"{kind}: {message}")
        if kind == "notice":
            result.notices.append(message)
        emit(kind, message)

    deployment.output.extend(f"info: {line}" for line in options.record_notes)
    if options.lint_gate is not None and direction == "upgrade":
        for line in options.lint_gate.issues(s.revision for s in planned):
            note("warning", line)  # findings applied with --skip-lint, in the record

    try:
        _attempt_loop(
            _Migration(target, direction, alembic_target, options, result, deployment, note)
        )
    except VenuedbError as exc:
        control = _control_for_the_record(control, target, note)
        after = current_heads(control)
        result.to_heads = revs.heads_by_branch(after)
        records.finish(
            control,
            deployment,
            result="failed",
            to_revisions=result.to_heads,
            done=result.done,
            error=str(exc),
        )
        raise
    control = _control_for_the_record(control, target, note)
    after = current_heads(control)
    result.to_heads = revs.heads_by_branch(after)
    result.duration_ms = round((time.monotonic() - started) * 1000)
    if direction == "downgrade" and not options.rehearse:
        from toolkit.runbook import levels

        for release in levels.forget_unapplied(control):
            note("info", f"{release} is no longer applied: its rollback level record is gone")
    records.finish(
        control,
        deployment,
        result="rehearsed" if options.rehearse else "succeeded",
        to_revisions=result.to_heads,
        done=result.done,
    )
    return result


@dataclass
class _Migration:
    """One apply, rollback or rehearsal under way: what each of its attempts works with."""

    target: db.Target
    direction: revs.Direction
    alembic_target: str
    options: RunOptions
    result: RunResult
    deployment: records.Deployment
    note: Emit


def _attempt_loop(migration: _Migration) -> None:
    result = migration.result

    def once(blockers: list[Blocker]) -> None:
        result.attempts += 1
        _migrate_once(migration, blockers)

    result.attempts = 0
    retry_on_lock_timeout(
        once,
        migration.options,
        migration.note,
        what=lambda: f"revision {_running(result)}",
        failed=lambda exc: _failure(result, exc),
        after=lambda blockers: f"{_state_line(result)} {_blocker_advice(blockers)}",
    )


def retry_on_lock_timeout(
    once: Callable[[list[Blocker]], None],
    options: RunOptions,
    note: Emit,
    *,
    what: Callable[[], str],
    failed: Callable[[BaseException], VenuedbError],
    after: Callable[[list[Blocker]], str],
) -> None:
    """Run `once` (which fills in the sessions that blocked it) until it succeeds: a lock
    not granted within lock_timeout is retried with jittered exponential backoff, up to
    options.retries times, then LockBusy naming the blockers (`what` was waiting; `after`
    says what is kept and what to do). Any other error becomes `failed(exc)`; the toolkit's
    own errors pass through."""
    attempt = 0
    while True:
        attempt += 1
        blockers: list[Blocker] = []
        try:
            once(blockers)
            return
        except VenuedbError:
            raise
        except Exception as exc:
            if not is_lock_timeout(exc):
                raise failed(exc) from None
            who = "; ".join(b.describe() for b in blockers) or "a session that finished meanwhile"
            if attempt > options.retries:
                raise LockBusy(
                    f"could not get the locks for {what()} within "
                    f"{options.lock_timeout:g}s after {attempt} attempts; blocked by {who}. "
                    f"{after(blockers)}"
                ) from None
            delay = backoff.delay(options.backoff, attempt - 1)
            note(
                "retry",
                f"lock not granted within {options.lock_timeout:g}s for {what()} (blocked by "
                f"{who}); attempt {attempt + 1} of {options.retries + 1} in {delay:.1f}s",
            )
            time.sleep(delay)


def _blocker_advice(blockers: list[Blocker]) -> str:
    if not blockers:
        return "Retry the same command; the blocker seems to be gone."
    actions = "; ".join(f"pid {b.pid}: {b.advice()}" for b in blockers)
    return f"Retry when the blocker is gone, or free the lock: {actions}."


def _running(result: RunResult) -> str:
    for step in result.planned:
        if step.revision not in result.done:
            return step.revision
    return "?"


def _state_line(result: RunResult) -> str:
    """What is true after a failure: what was committed, what was rolled back, what was kept."""
    failing = _running(result)
    if result.command == "rehearse" and result.rehearsal.get("where") == "scratch copy":
        return "The rehearsal ran on a scratch copy, which was dropped: the target was not changed."
    if result.command == "rehearse":
        return "The rehearsal ran in one transaction, which was rolled back: nothing was changed."
    committed = (
        f"Committed before the failure and kept: {', '.join(result.done)}. " if result.done else ""
    )
    if _resumable(failing):
        return (
            f"{committed}The open transaction of {failing} was rolled back, but {failing} is "
            "resumable: the steps it completed outside its transaction (CONCURRENTLY builds, "
            "copy batches) were kept, and running the same command again resumes it."
        )
    if result.done:
        return f"{committed}The transaction of {failing} was rolled back: nothing of it was kept."
    return f"The transaction of {failing} was rolled back. Nothing was changed."


def _resumable(revision: str) -> bool:
    """Revisions that step out of their transaction declare RESUMABLE = True."""
    try:
        script_rev = revs.script_directory().get_revision(revision)
    except Exception:
        return False
    return bool(getattr(getattr(script_rev, "module", None), "RESUMABLE", False))


def _failure(result: RunResult, exc: BaseException) -> OperationFailed:
    failing = _running(result)
    return OperationFailed(
        f"revision {failing} failed and was rolled back: {error_text(exc)}. "
        f"{_state_line(result)} Fix the cause, then run the same command again."
    )


def _migrate_once(migration: _Migration, blockers: list[Blocker]) -> None:
    options, result, note = migration.options, migration.result, migration.note
    engine = db.engine(migration.target, purpose=result.command)
    try:
        with engine.connect() as conn:
            pid = migration_session(conn, options, note)
            last = [time.monotonic()]

            def on_version_apply(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
                script_rev = step.up_revision
                now = time.monotonic()
                elapsed = now - last[0]
                last[0] = now
                name = script_rev.revision
                result.done.append(name)
                verb = "applied" if step.is_upgrade else "rolled back"
                if options.rehearse:
                    verb = "rehearsed " + ("upgrade of" if step.is_upgrade else "rollback of")
                finished = datetime.now(UTC)
                result.steps.append(
                    RecordStep(
                        f"{verb} {name}", finished - timedelta(seconds=elapsed), finished, "ok"
                    )
                )
                note("step", f"{verb} {name} ({elapsed * 1000:.0f} ms)")

            config = revs.alembic_config(conn)
            config.attributes["on_version_apply"] = [on_version_apply]
            # migrations/env.py records each revision's checksum with this deployment's id.
            config.attributes["venuedb_deployment_id"] = migration.deployment.id
            config.attributes["venuedb_rehearse"] = options.rehearse
            with BlockerWatcher(migration.target, int(pid)) as watcher:
                try:
                    if options.rehearse:
                        _rehearse(conn, config, migration)
                    else:
                        _upgrade_or_downgrade(config, migration.direction, migration.alembic_target)
                finally:
                    blockers.extend(watcher.seen)
                    if conn.in_transaction():
                        conn.rollback()
    finally:
        engine.dispose()


def migration_session(conn: Any, options: RunOptions, note: Emit) -> int:
    """Make `conn` (SQLAlchemy) the session that changes the schema: its notices reported,
    the run's lock_timeout and statement_timeout, ended soon after this process dies, and
    holding the migration lock. Returns its backend pid (for the blocker watcher)."""
    driver = conn.connection.driver_connection
    driver.add_notice_handler(lambda diag: note("notice", diag.message_primary or ""))
    conn.exec_driver_sql(f"SET lock_timeout = '{to_postgres(options.lock_timeout)}'")
    conn.exec_driver_sql(f"SET statement_timeout = '{to_postgres(options.statement_timeout)}'")
    _notice_a_dead_client(conn)
    pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    _take_the_work_lock(conn)
    conn.commit()
    return pid


def _notice_a_dead_client(conn: Any) -> None:
    """Make the migration's backend stop soon after this process dies.

    A backend waiting on a lock or running a long statement does not read its socket, so
    a killed deploy's statement would go on (and hold the migration lock) until it ends.
    PostgreSQL 14+ polls the client every client_connection_check_interval; where the
    platform cannot (the setting is refused), the statement still ends at lock_timeout.
    """
    conn.exec_driver_sql("SAVEPOINT client_check")
    try:
        conn.exec_driver_sql("SET client_connection_check_interval = '1s'")
    except Exception:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT client_check")
    conn.exec_driver_sql("RELEASE SAVEPOINT client_check")


def _take_the_work_lock(conn: Any) -> None:
    """The migration session's own lock, released when this connection closes."""
    granted = conn.exec_driver_sql(
        "SELECT pg_try_advisory_lock(%s, %s)", (locks.NAMESPACE, locks.DEPLOY_WORK_LOCK)
    ).scalar()
    if not granted:
        holder = locks.lock_holder(conn.connection.driver_connection, locks.DEPLOY_WORK_LOCK)
        who = holder.describe() if holder else "another session"
        raise LockBusy(
            f"another deploy's migration session holds the migration lock: {who}. This "
            "deploy stopped before its next revision. Wait for that one to finish, then run "
            "this command again"
        )


def _rehearse(conn: Any, config: Any, migration: _Migration) -> None:
    """Run the change with the plain forms, describe what changed and which table locks each
    statement took.

    On a scratch copy each revision commits, as in a real apply, so each revision's locks
    are its own (the copy is dropped afterwards). In place, everything runs inside one
    transaction that is rolled back; the locks are real, on the real tables.
    """
    from toolkit.engine import rehearsal

    options, result, note = migration.options, migration.result, migration.note
    on_copy = options.rehearsal_copy_of is not None
    result.rehearsal["where"] = "scratch copy" if on_copy else "in place"
    if not on_copy:
        result.rehearsal["caveat"] = (
            "in place, every revision runs in the one rolled-back transaction: a lock an "
            "earlier revision took is listed under that revision only"
        )
    driver = conn.connection.driver_connection
    if not on_copy:
        populated = rehearsal.populated_tables(driver)
        result.rehearsal["populated_tables"] = [
            {"table": t, "rows_estimate": n} for t, n in populated
        ]
        shown = ", ".join(
            f"{t} ({'rows, never analysed' if n is None else f'~{n:,} rows'})" for t, n in populated
        )
        note(
            "warning",
            "rehearsing in place (--rehearse-in-place): the blocking forms run under the "
            "real locks, and every table a statement locks stalls its writers (and, under "
            "ACCESS EXCLUSIVE, its readers) until the rollback. Tables with rows: "
            + (shown or "none"),
        )
    recorder = rehearsal.LockRecorder(driver)
    config.attributes["on_version_apply"].append(recorder.end_revision)

    def run_and_describe() -> None:
        before = snapshot.take(conn)
        if on_copy:
            conn.commit()  # each revision then commits on the copy, as in a real apply
        try:
            with recorder:
                _upgrade_or_downgrade(config, migration.direction, migration.alembic_target)
        finally:
            result.locks = recorder.report()
        result.changes = snapshot.changes(before, snapshot.take(conn))

    if on_copy:
        run_and_describe()
        conn.rollback()
        return
    trans = conn.begin()
    try:
        run_and_describe()
    finally:
        trans.rollback()


def _upgrade_or_downgrade(config: Any, direction: revs.Direction, alembic_target: str) -> None:
    from alembic import command

    if revs.checked_direction(direction) == "upgrade":
        command.upgrade(config, alembic_target)
    else:
        command.downgrade(config, alembic_target)
