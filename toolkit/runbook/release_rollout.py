"""`venuedb rollout RELEASE`: a seed's runbook executed, with the evidence kept.

pre-flight (connection, server version, extensions, pending revisions belong to the
release, the release's own pre-checks: a failing one stops before anything changes) ->
backup -> apply revision by revision, checking postconditions after each and stopping at
the first failure -> the release's backfills -> health checks of the release's domain ->
a deployment record, in the database and as Markdown.

A critical or errored post-deploy health check fails the rollout (seed 002: "If
validation fails: STOP deployment"): the outcome is FAILED, the record says which checks
and that the migration itself is applied, and the runbook says what to do next. Warning
and no_data results are listed but do not fail it.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.deployments import store as records
from toolkit.deployments.markdown import Record, RecordStep, write
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import RunOptions, current_heads, run
from toolkit.engine.releases import Release, find_release, unknown_release
from toolkit.errors import BadInput, OperationFailed, VenuedbError
from toolkit.integrity import postconditions
from toolkit.ops.cluster_throttle import Limits
from toolkit.ops.shadow_swap import find_violations
from toolkit.progress import tracking
from toolkit.runbook import levels
from toolkit.server import connection as db

Emit = Callable[[str, str], None]
MIN_SERVER = 150000
EXTENSIONS = {"booking": ("btree_gist",)}
# Seed 003's pre-migration validation ("0 constraint violations found"): the pairs of
# rows the release's own constraint swap would refuse, found by the swap's pre-flight
# (toolkit.ops.shadow_swap.find_violations) from the revision's ExclusionSwap, so the query
# that finds overlapping allocations is written once. Up to PRECHECK_LIMIT are counted.
PRECHECKS = {
    # release: (what is counted, revision, its ExclusionSwap attribute)
    "capacity-overlap": (
        "overlapping pairs that would violate allocations_no_overlap",
        "booking_005",
        "UPGRADE",
    ),
}
PRECHECK_LIMIT = 1000


def _release(name: str) -> Release:
    release = find_release(name)
    if release is None:
        raise unknown_release(name)
    return release


def plan(target: db.Target | None, name: str) -> list[str]:
    from toolkit.runbook.backfill import load_backfills

    release = _release(name)
    pending = list(release.revisions)
    if target is not None:
        with db.connect(target, purpose="rollout plan") as conn:
            applied = revs.applied_revisions(current_heads(conn))
        pending = [r for r in release.revisions if r not in applied]
    steps = [
        "backup (pg_dump custom format, verified)",
        "pre-flight: connection, server version >= 15, extensions "
        f"{', '.join(EXTENSIONS.get(release.branch, ())) or '(none)'}, pending revisions "
        f"belong to {name}" + (f", {PRECHECKS[name][0]} = 0" if name in PRECHECKS else ""),
    ]
    steps += [f"apply {rev}, then check postconditions" for rev in pending]
    steps += [f"backfill {b.name}" for b in load_backfills() if b.release == name]
    steps += [
        f"health checks of domain {release.branch} (critical or errored: the rollout fails)",
        "deployment record (database + Markdown)",
    ]
    return steps


def rollout(
    target: db.Target,
    name: str,
    *,
    backup_dir: Path,
    records_dir: Path,
    options: RunOptions,
    emit: Emit,
) -> dict[str, Any]:
    release = _release(name)
    record = Record(f"{name} Deployment Record", name, target.masked, options.actor, _os_user())
    control = db.connect(target, purpose="rollout (record)")
    with control:
        records.ensure_schema(control)
        heads = current_heads(control)
        deployment = records.start(
            control,
            command="rollout",
            target=name,
            actor=options.actor,
            from_revisions=revs.heads_by_branch(heads),
            planned=list(release.revisions),
        )
        try:
            failing = _steps(target, release, record, backup_dir, options, emit)
        except VenuedbError as exc:
            record.status = f"FAILED: {exc}"
            record.issues.append(str(exc))
            _finish(control, deployment, record, records_dir, "failed", str(exc))
            raise
        next_step = _next_after_checks(control, release, failing) if failing else None
        if next_step:
            what = "; ".join(describe_check(r.to_dict()) for r in failing)
            record.status = f"FAILED: post-deploy health checks critical or errored: {what}"
            record.issues.append(next_step)
        else:
            record.status = "SUCCESS"
            if options.lint_gate is not None and options.lint_gate.issues(release.revisions):
                record.status += f", LINT SKIPPED: {options.lint_gate.skip_reason}"
        _finish(
            control,
            deployment,
            record,
            records_dir,
            "failed" if next_step else "succeeded",
            f"{record.status}. {next_step}" if next_step else None,
        )
    return {
        "release": name,
        "outcome": record.status,
        "record": str(record.artifacts.get("path")),
        "steps": [
            {"name": s.name, "status": s.status, "detail": s.detail, "seconds": round(s.seconds, 3)}
            for s in record.steps
        ],
        "checks": record.checks,
        "failed_checks": [r.to_dict() for r in failing],
        "next": next_step,
        "deployment_id": deployment.id,
    }


def _next_after_checks(control: Any, release: Release, failing: list[Any]) -> str:
    """What state the database is in after a rollout stopped on its checks, and what next."""
    heads = revs.heads_by_branch(current_heads(control))
    names = " ".join(r.check.name for r in failing)
    return (
        f"The migration itself is applied ({release.branch} at {heads.get(release.branch)}): "
        f"the rollout stopped on its health checks. Next: {runbook_for(release.name)}, "
        f'"When a rollout stops on a critical check": investigate with `venuedb check {names}`, '
        f"and roll back with `venuedb rollback {release.name} --yes` if the runbook says so "
        "(it refuses, saying why, when it would undo a later release or drop data: "
        "`--allow-data-loss` then takes a verified backup first)"
    )


def describe_check(check: dict[str, Any]) -> str:
    """One check for a person: name, status, value against its thresholds, runbook."""
    limits = ", ".join(f"{k} {v}" for k, v in check["thresholds"].items() if v) or "none"
    if check["status"] == "error":
        measured = f"error: {check['error']}"
    elif check["value"] is None:
        measured = "nothing measured (the query returned no row or NULL)"
    else:
        measured = f"value {check['value']:g} {check['unit']} (thresholds: {limits})"
    return f"{check['name']} {check['status']}, {measured}; read {check['runbook']}"


def runbook_for(release: str) -> str:
    """The runbook of a release, as a path relative to the checkout."""
    from toolkit.paths import project_root

    own = project_root() / "runbooks" / f"{release}.md"
    return f"runbooks/{own.name}" if own.exists() else "runbooks/baselines.md"


def _finish(
    control: Any,
    deployment: records.Deployment,
    record: Record,
    records_dir: Path,
    result: str,
    error: str | None,
) -> None:
    heads = current_heads(control)
    deployment.output = [f"{s.name}: {s.status} {s.detail}".strip() for s in record.steps]
    records.finish(
        control,
        deployment,
        result=result,
        to_revisions=revs.heads_by_branch(heads),
        done=[s.name for s in record.steps if s.status == "ok"],
        error=error,
    )
    path = write(record, records_dir, deployment.id)
    record.artifacts["path"] = str(path)


def _steps(
    target: db.Target,
    release: Release,
    record: Record,
    backup_dir: Path,
    options: RunOptions,
    emit: Emit,
) -> list[Any]:
    """Every step; the post-deploy checks that are critical or errored (empty: success)."""
    from toolkit.runbook.backup import backup

    step = record.begin("pre-flight")
    pending = _preflight(target, release, record, emit)
    record.end(step, "ok", f"{len(pending)} revision(s) pending")
    emit("step", f"pre-flight ok: {', '.join(pending) or 'nothing pending'}")
    if not pending:
        restored = _restore_level(target, release, record, options, emit)
        if not restored:
            record.issues.append(f"{release.name} was already applied; nothing to apply")
        # A release applied by `apply` (or re-applied after a rollback) has not had its
        # backfills run: they resume where they stopped, and a finished one does nothing.
        _backfills(target, release, record, emit, options.throttle, unfinished=True)
        # Still run the checks: a rerun after a rollout stopped on a critical check must
        # not turn into SUCCESS just because there is nothing left to apply.
        return _checks(target, release, record, emit)
    # Before the backup, as apply would (it checks again): a changed released file or an
    # unjustified lint finding refuses the rollout with nothing changed.
    from toolkit.engine.checksums import refuse_changed_files_of

    for accepted in refuse_changed_files_of(target):
        record.issues.append(accepted)
        emit("warning", accepted)
    if options.lint_gate is not None:
        options.lint_gate.check(pending)
        if options.lint_gate.clean(pending):
            record.facts["Lint"] = options.lint_gate.summary(pending)
        record.issues += options.lint_gate.issues(pending)
    step = record.begin("backup")
    made = backup(target, backup_dir)
    record.facts["Database backup created"] = (
        f"{made.path} ({made.size_bytes:,} bytes, {made.objects} objects)"
    )
    record.end(step, "ok", str(made.path))
    emit("step", f"backup {made.path} ({made.objects} objects)")
    before = _schema(target)
    for revision in pending:
        step = record.begin(f"apply {revision}")
        result = run(target, "upgrade", revision, options, emit=emit)
        _hold_postconditions(
            target,
            release,
            record,
            step,
            after=revision,
            then=f"The database is at {revision} (the last revision applied). Next: fix and "
            f"run `venuedb rollout {release.name}` again, or `venuedb rollback {release.name} "
            "--yes` (with `--allow-data-loss` when its plan drops data)",
        )
        record.end(step, "ok", f"{result.duration_ms} ms, notices: {len(result.notices)}")
        _add_command_output(
            record, [f"[{revision}] {n}" for n in result.notices] or [f"[{revision}] (no notices)"]
        )
    _artifacts(target, release, record, before)
    _backfills(target, release, record, emit, options.throttle)
    return _checks(target, release, record, emit)


def _restore_level(
    target: db.Target, release: Release, record: Record, options: RunOptions, emit: Emit
) -> bool:
    """A release at rollback level 2: restore what the level removed (its steps' inverse,
    online like the level itself), then hold it to its own postconditions again."""
    from toolkit.runbook import levels
    from toolkit.runbook.level_run import RESTORE, run_level

    with db.connect(target, purpose="rollout levels") as conn:
        state = next((a for a in levels.recorded(conn) if a.release == release.name), None)
    if state is None:
        return False
    step = record.begin(f"restore {release.name} level {state.level}")
    result = run_level(target, levels.find_level(release.name, state.level), RESTORE, options, emit)
    _hold_postconditions(
        target,
        release,
        record,
        step,
        after=f"restoring {release.name} level {state.level}",
        then=f"Fix and run `venuedb rollout {release.name}` again",
    )
    record.end(step, "ok", f"{result.duration_ms} ms (deployment #{result.deployment_id})")
    record.facts["Restored"] = f"{state.describe()}: restored"
    _add_command_output(record, [f"[level {state.level}] {n}" for n in result.notices])
    return True


def _hold_postconditions(
    target: db.Target, release: Release, record: Record, step: RecordStep, *, after: str, then: str
) -> None:
    """Stop the rollout, `step` failed, when a postcondition fails after `after` (`then`
    says where the database is and what to run next)."""
    detail = "; ".join(
        f"{f['kind']} {f['object']}: expected {f['expected']}, got {f['actual']}"
        for f in _postcondition_failures(target, release)
    )
    if detail:
        record.end(step, "failed", detail)
        raise OperationFailed(f"postconditions failed after {after}: {detail}. {then}")


def _add_command_output(record: Record, lines: list[str]) -> None:
    """Append to the record's "command output" artifact (made by the first lines)."""
    if lines:
        previous = record.artifacts.get("command output")
        record.artifacts["command output"] = "\n".join([*([previous] if previous else []), *lines])


def _preflight(target: db.Target, release: Release, record: Record, emit: Emit) -> list[str]:
    # Four checks: server version, extensions, pending revisions in order, the release's own
    # pre-check (one whatever its size, or none to run: it shows its rows itself).
    checks = tracking(f"pre-flight of {release.name}", 4, "checks")
    with db.connect(target, purpose="rollout pre-flight") as conn, checks as checked:
        version = int(db.scalar(conn, "SHOW server_version_num"))
        if version < MIN_SERVER:
            raise BadInput(f"server version {version} is older than PostgreSQL 15")
        record.facts["Server version"] = db.scalar(conn, "SHOW server_version")
        checked.advance()
        for extension in EXTENSIONS.get(release.branch, ()):
            if (
                conn.execute(
                    "SELECT 1 FROM pg_available_extensions WHERE name = %s", (extension,)
                ).fetchone()
                is None
            ):
                raise BadInput(f"extension {extension} is not available on this server")
        checked.advance()
        applied = revs.applied_revisions(current_heads(conn))
        pending = [r for r in release.revisions if r not in applied]
        before = [
            s.revision
            for s in revs.all_steps()
            if s.branch == release.branch
            and s.revision not in applied
            and s.release != release.name
            and _precedes(s.revision, release.first)
        ]
        if before:
            raise BadInput(
                f"{', '.join(before)} must be applied before {release.name}: "
                "roll out the earlier releases first"
            )
        checked.advance()
        if release.name in PRECHECKS and pending:
            what, revision, attribute = PRECHECKS[release.name]
            swap = getattr(revs.script_directory().get_revision(revision).module, attribute)
            found = find_violations(conn, swap, PRECHECK_LIMIT, say=lambda m: emit("notice", m))
            count = len(found)
            record.facts[f"Pre-check: {what}"] = (
                f"{count} or more" if count == PRECHECK_LIMIT else str(count)
            )
            if count:
                # The data, not the input, is wrong: the rollout stops (exit 1) before
                # the backup and before any revision runs.
                raise OperationFailed(
                    f"pre-flight: {count} {what}; the rollout stopped and nothing was "
                    f"changed. Next: {runbook_for(release.name)} (find and resolve them, "
                    f"then run `venuedb rollout {release.name}` again)"
                )
        checked.advance()
    return pending


def _precedes(revision: str, first: str) -> bool:
    order = [s.revision for s in revs.all_steps()]
    return order.index(revision) < order.index(first)


def _postcondition_failures(target: db.Target, release: Release) -> list[dict[str, Any]]:
    """Postconditions after a revision. While `release` is half-applied, the objects it
    will change are not held to the older releases' expectations, nor yet to its own."""
    with db.connect(target, purpose="rollout postconditions") as conn:
        states = revs.releases_applied(current_heads(conn))
        applied = [r["release"] for r in states if r["state"] == "applied"]
        every = postconditions.load_postconditions()
        if release.name not in applied:
            changing = {c.key for c in every if c.release == release.name}
            checks = [c for c in postconditions.effective(every, applied) if c.key not in changing]
        else:
            checks = postconditions.effective(every, applied)
        checks = levels.with_levels(checks, levels.applied(conn))
        results = postconditions.evaluate(conn, checks)
    return [r.to_dict() for r in results if not r.ok]


def _schema(target: db.Target) -> dict[str, dict[str, str]]:
    from toolkit.integrity.catalog import take

    with db.connect(target, purpose="rollout schema") as conn:
        return take(conn)


def _artifacts(
    target: db.Target, release: Release, record: Record, before: dict[str, dict[str, str]]
) -> None:
    """Seed 003's evidence: the schema diff, the new definitions, a constraint check timing."""
    from toolkit.integrity.catalog import diff

    after = _schema(target)
    changes = diff(before, after)
    record.artifacts["schema diff (before -> after)"] = (
        "\n".join(
            f"{'+' if c.status == 'unexpected' else '-' if c.status == 'missing' else '~'} "
            f"{c.kind} {c.name}"
            for c in changes
        )
        or "(no schema change)"
    )
    checks = [
        c
        for c in postconditions.load_postconditions()
        if c.release == release.name
        and c.kind in ("constraint", "function_version")
        and c.expect != "absent"
    ]
    with db.connect(target, purpose="rollout artifacts") as conn:
        lines = [f"{c.kind} {c.object}: {postconditions.actual_value(conn, c)}" for c in checks]
        if lines:
            record.artifacts["new definitions"] = "\n".join(lines)
        if release.name == "capacity-overlap":
            plan = conn.execute(
                "EXPLAIN (ANALYZE, TIMING ON) SELECT 1 FROM allocations WHERE restaurant_id = "
                "gen_random_uuid() AND resource_type = 'table' AND resource_id = "
                "gen_random_uuid() AND \"window\" && tstzrange(now(), now() + interval '2 hours') "
                "AND NOT shadow"
            ).fetchall()
            record.artifacts["constraint check timing"] = "\n".join(r[0] for r in plan)


def _backfills(
    target: db.Target,
    release: Release,
    record: Record,
    emit: Emit,
    limits: Limits,
    *,
    unfinished: bool = False,
) -> None:
    """Run the release's backfills; `unfinished`: only those not finished on the data the
    current apply created (a rerun of an applied release)."""
    from toolkit.runbook.backfill import Options, load_backfills, status
    from toolkit.runbook.backfill import run as run_backfill

    done = (
        {s["name"] for s in status(target) if s["state"] == "finished" and "note" not in s}
        if unfinished
        else set()
    )
    for backfill in [b for b in load_backfills() if b.release == release.name]:
        if backfill.name in done:
            continue
        step = record.begin(f"backfill {backfill.name}")
        report = run_backfill(target, backfill, Options(adaptive=True, limits=limits))
        reset = f"; earlier progress reset: {report.reset}" if report.reset else ""
        record.end(step, "ok", f"{report.rows} rows, {report.changed} changed{reset}")
        emit("step", f"backfill {backfill.name}: {report.rows} rows")


def _checks(target: db.Target, release: Release, record: Record, emit: Emit) -> list[Any]:
    """The health checks of the release's domain; returns the critical or errored ones."""
    from toolkit.integrity.health_checks import load_checks, run_checks, summary

    step = record.begin(f"health checks ({release.branch})")
    # Not checks.select: after the migration, an empty domain is no reason to raise.
    chosen = [c for c in load_checks() if c.domain == release.branch]
    results = run_checks(target, chosen)
    record.checks = [r.to_dict() for r in results]
    bad = [r for r in results if r.status in ("critical", "error")]
    for r in results:
        if r.status != "ok":
            line = describe_check(r.to_dict())
            record.issues.append(f"check {line}")
            if r not in bad:
                emit("warning", f"check {line}")
    for r in bad:
        emit("error", f"check {describe_check(r.to_dict())}")
    record.end(step, "failed" if bad else "ok", summary(results))
    emit("step", f"health checks ({release.branch}): {summary(results)}")
    return bad


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
