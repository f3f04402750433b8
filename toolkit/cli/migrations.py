"""`venuedb status | apply | rollback | history`: the Alembic side, made safe for production."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.common import (
    DatabaseUrl,
    JsonFlag,
    Output,
    YesFlag,
    handled,
    require_tty_or_yes,
    resolve_target,
    table,
)
from toolkit.cli.lint import SkipLint
from toolkit.cli.plans import finish_plan, plan_status
from toolkit.cli.progress_options import ProgressInterval, ProgressMode, reporting
from toolkit.cli.throttle_options import (
    DEFAULT_GRACE,
    DEFAULT_LAG,
    DEFAULT_WAL_RATE,
    MaxReplicaLag,
    MaxWalRate,
    StandbyGrace,
    ThrottleArgs,
    WraparoundVacuum,
)
from toolkit.errors import BadInput, OperationFailed

TargetArg = Annotated[
    str | None,
    typer.Argument(
        help="A release name (see `venuedb history`), a revision id, an Alembic target such "
        "as booking@head or bar@-1, or base.",
        show_default=False,
    ),
]
LockWait = Annotated[
    str,
    typer.Option(
        help="How long to wait for another deploy to finish before giving up with exit 4 (0 .. 1h)."
    ),
]
LockTimeout = Annotated[
    str,
    typer.Option(
        help="SET lock_timeout for every revision. Keep it short: while a migration waits for a "
        "lock, every query on that table queues behind it. Allowed: 1ms .. 1min (0, which would "
        "disable it, is refused)."
    ),
]
StatementTimeout = Annotated[
    str, typer.Option(help="SET statement_timeout for every revision: 0 (none) or 1ms .. 24h.")
]
Retries = Annotated[
    int,
    typer.Option(
        help="Retries (with exponential backoff) when a lock is not granted in time (0 .. 20)."
    ),
]
MAX_RETRIES = 20
Actor = Annotated[
    str | None,
    typer.Option(
        help="Who is deploying, recorded with the OS user (default: $VENUEDB_ACTOR or the OS user)."
    ),
]


def run_options(
    lock_wait: str,
    lock_timeout: str,
    statement_timeout: str,
    retries: int,
    actor: str | None,
    rehearse: bool = False,
    throttle: ThrottleArgs | None = None,
) -> Any:
    from toolkit import durations as d
    from toolkit.deployments.store import default_actor
    from toolkit.engine.migrate import RunOptions

    return RunOptions(
        lock_wait=d.parse_bounded(lock_wait, d.LOCK_WAIT, option="--lock-wait"),
        lock_timeout=d.parse_bounded(lock_timeout, d.LOCK_TIMEOUT, option="--lock-timeout"),
        statement_timeout=d.parse_bounded(
            statement_timeout, d.STATEMENT_TIMEOUT, option="--statement-timeout"
        ),
        retries=d.check_count(retries, 0, MAX_RETRIES, option="--retries"),
        actor=actor or default_actor(),
        rehearse=rehearse,
        throttle=(throttle or ThrottleArgs()).limits(),
    )


def status(database_url: DatabaseUrl = None, json_output: JsonFlag = False) -> None:
    """Revision per branch, pending revisions, releases applied, last deployment."""
    from toolkit.engine.status import status as get_status

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        info = get_status(target)
        # An operation a dead run left half done is not a state to report as ok.
        out.document("in_progress" if info["in_progress"] else "ok", **info)
        if json_output:
            if info["in_progress"]:
                raise typer.Exit(1)
            return
        out.line(f"PostgreSQL {info['server_version']}")
        if info["read_only_note"]:
            out.line(f"note: {info['read_only_note']}")
        out.out.print(
            table(
                "Branches",
                ["branch", "revision"],
                [[b, r or "(base)"] for b, r in info["branches"].items()],
            )
        )
        out.out.print(
            table(
                "Releases",
                ["release", "branch", "state"],
                [
                    [
                        r["release"],
                        r["branch"],
                        r["state"]
                        + (
                            f", rollback level {r['level']['level']} "
                            + (
                                "since "
                                if r["level"]["state"] == "applied"
                                else f"INTERRUPTED while {r['level']['state']} since "
                            )
                            + f"{r['level']['applied_at']} (`venuedb rollout {r['release']}` "
                            "restores it)"
                            if r["level"]
                            else ""
                        ),
                    ]
                    for r in info["releases"]
                ],
            )
        )
        if info["pending"]:
            out.line(
                f"{len(info['pending'])} pending: "
                + ", ".join(p["revision"] for p in info["pending"])
                + " (run `venuedb apply`)"
            )
        else:
            out.line("no pending revisions")
        last = info["last_deployment"]
        if last:
            out.line(
                f"last deployment #{last['id']}: {last['command']} {last['target']} "
                f"{last['result']} at {last['started_at']} by {last['actor']}"
                + (f" ({last['duration_ms']} ms)" if last["duration_ms"] is not None else "")
            )
        for item in info["in_progress"]:
            if "level" in item:  # an interrupted rollback level says what to run itself
                out.emit("error", item["what"])
                continue
            out.emit(
                "error",
                f"{item['what']}; `venuedb apply` or `venuedb rollback` resumes it when its "
                "plan builds that constraint and abandons it otherwise, and so does a rollback "
                "level or rollout that builds it",
            )
        if info["in_progress"]:
            raise typer.Exit(1)


def apply(
    target_name: TargetArg = None,
    database_url: DatabaseUrl = None,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql", help="Print the SQL instead of running it (offline; no database needed)."
        ),
    ] = False,
    from_revision: Annotated[
        str | None,
        typer.Option("--from", help="With --sql: start from this revision instead of base."),
    ] = None,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="Rehearse on a scratch copy of the target (a new database on the same server, "
            "schema plus the rows of small tables, dropped afterwards): report what would change "
            "and which table locks each statement takes. The target is only read (pg_dump, "
            "ACCESS SHARE locks). Needs CREATEDB; otherwise exits 2 (see --scratch-url, "
            "--rehearse-in-place). The copy holds few rows: durations are not production's.",
        ),
    ] = False,
    rehearse_in_place: Annotated[
        bool,
        typer.Option(
            "--rehearse-in-place",
            help="Rehearse on the target itself, in one transaction rolled back. This runs the "
            "plain, blocking forms (CREATE INDEX without CONCURRENTLY, ALTER TABLE instead of "
            "the shadow swap) under the real locks: writers of every table it locks stall "
            "(readers too under ACCESS EXCLUSIVE) until the rollback. Lists the tables with "
            "rows first. Giving this flag is the consent; without it nothing is rehearsed in "
            "place.",
        ),
    ] = False,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="With --rehearse: a database URL on a server where this role may CREATE "
            "DATABASE; the scratch copy is created (and dropped) there instead of beside the "
            "target.",
            show_default=False,
        ),
    ] = None,
    lock_wait: LockWait = "30s",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "0",
    retries: Retries = 3,
    actor: Actor = None,
    skip_lint: SkipLint = None,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the pending revisions in order, how each takes its locks and the lint "
            "gate's verdict; change nothing (exit 0; 1 when the command would refuse).",
        ),
    ] = False,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
    max_replica_lag: MaxReplicaLag = DEFAULT_LAG,
    max_wal_rate: MaxWalRate = DEFAULT_WAL_RATE,
    pause_for_wraparound: WraparoundVacuum = True,
    standby_grace: StandbyGrace = DEFAULT_GRACE,
) -> None:
    """Upgrade to TARGET (default: every branch head), one transaction per revision, recorded.

    First squawk lints the pending revisions' SQL: an unjustified finding refuses the
    apply with nothing changed (exit 1, status lint_failed, each finding at its file:line
    with the fix), unless --skip-lint REASON, which is recorded with the findings."""
    from toolkit.cli.lint import gate, refuse, skip_reason
    from toolkit.integrity.lint_gate import LintRefused

    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        rehearse = rehearse or rehearse_in_place
        _check_rehearse_options(sql, rehearse, rehearse_in_place, scratch_url, plan)
        if sql:
            _offline_sql(target_name, from_revision, out)
            return
        if plan:
            from toolkit.cli.plans import show_apply_plan

            target = resolve_target(database_url, out, writes="apply")
            show_apply_plan(out, target, target_name, gate(skip_reason(skip_lint), out))
            return
        from toolkit.engine.migrate import run

        throttle = ThrottleArgs(max_replica_lag, max_wal_rate, pause_for_wraparound, standby_grace)
        options = run_options(
            lock_wait, lock_timeout, statement_timeout, retries, actor, rehearse, throttle
        )
        options.rehearse_in_place = rehearse_in_place
        options.scratch_url = _scratch_url(scratch_url)
        options.lint_gate = gate(skip_reason(skip_lint), out)
        target = resolve_target(database_url, out, writes="apply")
        try:
            result = run(target, "upgrade", target_name, options, emit=out.emit)
        except LintRefused as exc:
            refuse(out, exc)
        record = None if rehearse else _markdown(result, target, options.actor, options.lint_gate)
        _report(out, result, rehearse, record=record, lint=_lint(options.lint_gate, result))


def _check_rehearse_options(
    sql: bool, rehearse: bool, in_place: bool, scratch_url: str | None, plan: bool = False
) -> None:
    if scratch_url is not None and not rehearse:
        raise BadInput("--scratch-url is where a rehearsal's copy goes: give it with --rehearse")
    if scratch_url is not None and in_place:
        raise BadInput(
            "--scratch-url and --rehearse-in-place contradict each other: a rehearsal runs "
            "either on a scratch copy or on the target; give one"
        )
    if sql and rehearse:
        raise BadInput("--sql prints the SQL offline; it cannot be combined with a rehearsal")
    if plan and (sql or rehearse):
        raise BadInput("--plan only prints the plan: give it without --sql and --rehearse")


def _scratch_url(url: str | None) -> str | None:
    if url is None:
        return None
    from toolkit.server.urls import validate_url

    return validate_url(url)


def rollback(
    target_name: Annotated[
        str,
        typer.Argument(
            help="A release name (rolls back to before it), a revision id (keeps it), bar@-1, "
            "booking@base, or base.",
            show_default=False,
        ),
    ],
    database_url: DatabaseUrl = None,
    yes: YesFlag = False,
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="Also undo the later releases the plan reaches (a downgrade to before a "
            "release undoes every later release on its branch). Without it such a rollback is "
            "refused (exit 2), naming them and what of theirs it would drop.",
        ),
    ] = False,
    allow_data_loss: Annotated[
        bool,
        typer.Option(
            "--allow-data-loss",
            help="Run a plan that drops tables or columns holding data (or whose data at risk "
            "cannot be counted): a verified backup is taken first (see --backup-dir) and named "
            "in the output and the deployment record. Without it such a rollback is refused "
            "(exit 2). Dropping an empty table or an all-NULL column needs no flag.",
        ),
    ] = False,
    backup_dir: Annotated[
        Path,
        typer.Option(help="Where the backup before a rollback that drops data goes."),
    ] = Path("backups"),
    lock_wait: LockWait = "30s",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "0",
    retries: Retries = 3,
    actor: Actor = None,
    level: Annotated[
        int | None,
        typer.Option(
            "--level",
            help="Run one rollback level of the release TARGET, as its seed defines it "
            "(migrations/rollback_levels.toml): 1 turns its features off (flags), 2 removes one "
            "piece surgically with forward steps and no data loss, leaving every release "
            "applied (`venuedb rollout TARGET` restores it), 3 is the full revert (level 1, "
            "then the release's schema downgrade). Without --level: the schema downgrade.",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the steps, the data at risk counted on the database and the dependent "
            "releases, and change nothing (exit 0; 1 when the command would refuse).",
        ),
    ] = False,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
) -> None:
    """Downgrade to TARGET, or run one rollback level of a release (--level): shows the plan
    and the data it drops first, then asks (or needs --yes). `--plan` only shows it.

    Refused with nothing changed (exit 2, in this order): an unknown target or level; a
    plan that also undoes later releases, unless --cascade; a plan that drops data, unless
    --allow-data-loss (which takes a verified backup first: if it fails, nothing is rolled
    back, exit 1). Level 1 exits 1 (`incomplete`) while a flag read from the environment
    is still true where the command runs.

    Examples: `venuedb rollback capacity-overlap --level 2 --plan`, then `--level 2 --yes`
    (undone by `venuedb rollout capacity-overlap`); `venuedb rollback bar-integrity --yes`."""
    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        options = run_options(lock_wait, lock_timeout, statement_timeout, retries, actor)
        target = resolve_target(database_url, out, writes="rollback")
        guards = Guards(yes, cascade, allow_data_loss, backup_dir)
        if level is not None:
            from toolkit.cli.rollback_level import run_level

            run_level(out, target, target_name, level, plan, guards, options, _downgrade)
            return
        _downgrade(out, target, target_name, options, guards, plan=plan)


@dataclass(frozen=True)
class Guards:
    """What the operator consented to."""

    yes: bool
    cascade: bool
    allow_data_loss: bool
    backup_dir: Path


def _downgrade(
    out: Output,
    target: Any,
    target_name: str,
    options: Any,
    guards: Guards,
    *,
    plan: bool,
    extra: dict[str, Any] | None = None,
    before_run: Callable[[], None] | None = None,
) -> None:
    """The schema downgrade to `target_name` with its guards; `extra` joins the JSON
    document, `before_run` runs once everything is consented to, just before it."""
    from toolkit.engine.migrate import plan_for, run

    yes, cascade, allow_data_loss, backup_dir = (
        guards.yes,
        guards.cascade,
        guards.allow_data_loss,
        guards.backup_dir,
    )
    extra = extra or {}
    steps, _, alembic_target = plan_for(target, "downgrade", target_name)
    if not steps:
        if plan or not _swaps_left_behind(target):
            out.line("nothing to roll back: the database is already at or below the target")
            out.document(
                "ok",
                **extra,
                plan=plan,
                planned=[],
                done=[],
                dependent_releases=[],
                data_at_risk=None,
                backup=None,
            )
            return
        # Nothing to downgrade, but a dead run's half-done swap to abandon (issue 16).
        require_tty_or_yes(
            yes,
            "rollback",
            lambda: typer.confirm("Abandon the interrupted swap?", default=False),
        )
        result = run(target, "downgrade", target_name, options, emit=out.emit)
        _report(
            out,
            result,
            False,
            **extra,
            dependent_releases=[],
            data_at_risk=None,
            backup=None,
            record=_markdown(result, target, options.actor),
        )
        return
    out.progress.print(
        table(
            f"Rollback plan to {alembic_target} (in this order)",
            ["#", "revision", "branch", "release", "what it undoes"],
            [
                [i, s.revision, s.branch, s.release, s.message.splitlines()[0] if s.message else ""]
                for i, s in enumerate(steps, 1)
            ],
        )
    )
    from toolkit.engine.releases import dependent_releases, find_release
    from toolkit.engine.risk import data_at_risk, describe, holds_data
    from toolkit.runbook.levels import undone_by

    heads, at_level = undone_by(target, steps)
    risk = data_at_risk(target, alembic_target, heads, steps)
    for line in describe(risk):
        out.emit("warning" if "values dropped" in line or "rows dropped" in line else "info", line)
    for state in at_level:
        out.emit(
            "info",
            f"{state.describe()}: it is restored first (`venuedb rollout {state.release}`'s "
            "forward steps), so that its downgrade finds what it undoes",
        )
    named = find_release(target_name)
    dependents = dependent_releases(steps, named.name if named else None)
    facts: dict[str, Any] = {
        **extra,
        "plan": plan,
        "planned": [s.to_dict() for s in steps],
        "dependent_releases": _dependents(steps, dependents, risk),
        "data_at_risk": risk,
        "levels_restored_first": [s.to_dict() for s in at_level],
        "backup": None,
    }
    drops = holds_data(risk)
    if plan:
        refusals = []
        if dependents and not cascade:
            refusals.append(_cascade_message(target_name, steps, dependents, risk))
        if drops is not False and not allow_data_loss:
            refusals.append(_data_loss_message(risk, drops))
        out.document(plan_status(refusals), **facts, would_refuse=refusals)
        finish_plan(out, refusals, "without the flags it needs")
        return
    if dependents and not cascade:
        out.fail(BadInput(_cascade_message(target_name, steps, dependents, risk)), **facts)
    if drops is not False and not allow_data_loss:
        out.fail(BadInput(_data_loss_message(risk, drops)), **facts)
    require_tty_or_yes(
        yes,
        "rollback",
        lambda: typer.confirm(f"Roll back {len(steps)} revision(s)?", default=False),
    )
    record_facts: dict[str, str] = {}
    if drops is not False:
        # Before anything changes: a failed backup raises and nothing is rolled back.
        from toolkit.runbook.backup import backup

        made = backup(target, backup_dir)
        facts["backup"] = str(made.path)
        said = (
            f"backup {made.path} ({made.size_bytes:,} bytes, {made.objects} objects, "
            "verified) taken before the rollback"
        )
        out.emit("step", said)
        options.record_notes.append(said)
        record_facts["Database backup created"] = (
            f"{made.path} ({made.size_bytes:,} bytes, {made.objects} objects)"
        )
    if before_run is not None:
        before_run()
    _restore_levels(target, at_level, options, out)
    result = run(target, "downgrade", target_name, options, emit=out.emit)
    _report(
        out,
        result,
        False,
        **{k: v for k, v in facts.items() if k not in ("planned",)},
        record=_markdown(result, target, options.actor, facts=record_facts),
    )


def _restore_levels(target: Any, states: list[Any], options: Any, out: Output) -> None:
    from toolkit.runbook import levels
    from toolkit.runbook.level_run import RESTORE, run_level

    for state in states:
        run_level(target, levels.find_level(state.release, state.level), RESTORE, options, out.emit)


def _dependents(
    steps: list[Any], dependents: list[str], risk: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each later release the plan also undoes: its revisions and what its downgrade drops."""
    from toolkit.engine.releases import undone_by

    undone = undone_by(steps)
    return [
        {
            "release": name,
            "revisions": undone[name],
            "drops": _drops_of(name, risk),
        }
        for name in dependents
    ]


def _drops_of(release: str, risk: dict[str, Any]) -> list[str]:
    if "unknown" in risk:
        return []
    drops = [
        f"table {t['table']} ({t['rows']:,} rows"
        + (
            f", {t['from_migrations']:,} written by its migrations"
            if t.get("from_migrations")
            else ""
        )
        + ")"
        for t in risk["tables"]
        if t.get("release") == release
    ]
    drops += [
        f"column {c['table']}.{c['column']} ({c['values']:,} values)"
        for c in risk["columns"]
        if c.get("release") == release
    ]
    return drops


def _cascade_message(
    target_name: str, steps: list[Any], dependents: list[str], risk: dict[str, Any]
) -> str:
    from toolkit.engine.releases import undone_by

    undone = undone_by(steps)
    named = [
        f"{name} ({', '.join(undone[name])}; drops "
        + (", ".join(_drops_of(name, risk)) or "no table or column")
        + ")"
        for name in dependents
    ]
    return (
        f"`rollback {target_name}` would also undo {len(dependents)} later release(s) built on "
        f"it: {'; '.join(named)}. Nothing was changed. Roll back the latest release first, or "
        "give --cascade to undo them all (the plan above lists every revision)"
    )


def _data_loss_message(risk: dict[str, Any], drops: bool | None) -> str:
    if drops is None:
        what = f"cannot tell whether it drops data ({risk['unknown']})"
    else:
        from toolkit.engine.risk import lost_rows

        lost = [
            f"table {t['table']} ({lost_rows(t):,} rows)" for t in risk["tables"] if lost_rows(t)
        ]
        lost += [
            f"column {c['table']}.{c['column']} ({c['values']:,} values)"
            for c in risk["columns"]
            if c["values"]
        ]
        what = "it drops data: " + ", ".join(lost)
    return (
        f"this rollback is refused: {what}. Nothing was changed. Give --allow-data-loss to "
        "run it: a verified backup is taken first (--backup-dir) and named in the deployment "
        "record"
    )


def history(
    database_url: DatabaseUrl = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="List revisions without asking a database which are applied."
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Every revision in apply order, with its branch and release (and whether it is applied)."""
    from toolkit.engine.status import history as get_history

    out = Output(json_output)
    with handled(out):
        target = None if offline else resolve_target(database_url, out)
        entries = get_history(target)
        out.document("ok", revisions=entries)
        rows = [
            [
                e["revision"],
                e["branch"],
                e["release"] or "",
                "" if "applied" not in e else ("yes" if e["applied"] else "no"),
                (e["message"] or "").splitlines()[0] if e["message"] else "",
            ]
            for e in entries
        ]
        if not json_output:
            out.out.print(
                table("Revisions", ["revision", "branch", "release", "applied", "message"], rows)
            )


def _offline_sql(target_name: str | None, from_revision: str | None, out: Output) -> None:
    """The script, with every justification in squawk's own syntax where squawk honours
    it, so that squawk run on it directly finds nothing unjustified (else: a warning)."""
    import contextlib
    import io
    import sys

    from alembic import command

    from toolkit.engine import revisions as revs
    from toolkit.integrity.lint_gate import squawk_form, translate

    alembic_target, _ = revs.upgrade_target(target_name)
    config = revs.alembic_config()
    spec = f"{from_revision}:{alembic_target}" if from_revision else alembic_target
    buffer = io.StringIO()
    config.output_buffer = buffer
    try:
        with contextlib.redirect_stdout(buffer):
            command.upgrade(config, spec, sql=True)
    except Exception as exc:
        from toolkit.server.urls import masked_first_line

        raise BadInput(f"cannot produce SQL for {spec!r}: {masked_first_line(exc)}") from None
    text = buffer.getvalue()
    try:
        printed, unjustified = squawk_form({"script": text})["script"]
    except OperationFailed as exc:
        out.err.print(f"warning: {exc}; the script is printed unchecked", markup=False)
        printed, unjustified = translate(text), []
    sys.stdout.write(printed)
    lines = text.split("\n")
    for report in unjustified:  # on stderr: stdout is the script
        out.err.print(
            f"warning: squawk: unjustified {report.rule} at `{lines[report.line].strip()[:70]}` "
            "(`venuedb lint` says where it is written; `venuedb apply` refuses it)",
            style="yellow",
            markup=False,
        )


def _swaps_left_behind(target: Any) -> bool:
    from toolkit.engine import interrupted_swaps

    return interrupted_swaps.any_left(target)


def _markdown(
    result: Any,
    target: Any,
    actor: str,
    lint_gate: Any = None,
    facts: dict[str, str] | None = None,
) -> str | None:
    """The Markdown twin of the deployment record the run wrote in the database. Lint
    findings applied with --skip-lint are Issues, and the status says so."""
    if result.deployment_id is None:
        return None
    from toolkit.deployments.markdown import simple

    applied = [s.revision for s in result.planned] if result.command != "rollback" else []
    skipped = lint_gate.issues(applied) if lint_gate is not None else []
    facts = {
        "From": str(result.from_heads),
        "To": str(result.to_heads),
        "Duration": f"{result.duration_ms} ms",
        **(facts or {}),
    }
    if lint_gate is not None and applied and lint_gate.clean(applied):
        facts["Lint"] = lint_gate.summary(applied)
    path = simple(
        f"{result.command} {result.target} Deployment Record",
        target.masked,
        actor,
        release=result.release,
        status=f"SUCCESS, LINT SKIPPED: {lint_gate.skip_reason}" if skipped else "SUCCESS",
        steps=result.steps,
        issues=[*skipped, *(f"NOTICE: {n}" for n in result.notices)],
        facts=facts,
        deployment_id=result.deployment_id,
    )
    return str(path)


def _lint(lint_gate: Any, result: Any) -> dict[str, Any] | None:
    """What the lint gate checked, for --json (none when nothing was pending)."""
    applied = [s.revision for s in result.planned]
    return lint_gate.to_dict(applied) if applied else None


def _report(out: Output, result: Any, rehearse: bool, **extra: Any) -> None:
    data = {**result.to_dict(), **extra}
    if out.as_json:
        out.document("ok", rehearsed=rehearse, **data)
        return
    if rehearse:
        _rehearsal_report(out, result)
        return
    if result.planned:
        verb = "applied" if result.command == "apply" else "rolled back"
        out.line(
            f"{verb} {len(result.done)} revision(s) in {result.duration_ms} ms "
            f"(deployment #{result.deployment_id})"
        )
        out.out.print(
            table(
                None,
                ["branch", "before", "after"],
                [
                    [b, result.from_heads.get(b) or "(base)", result.to_heads.get(b) or "(base)"]
                    for b in result.to_heads
                ],
            )
        )


def _rehearsal_report(out: Output, result: Any) -> None:
    where = result.rehearsal.get("where")
    if not result.planned:
        return
    if where == "scratch copy":
        out.line(
            f"rehearsal of {len(result.planned)} revision(s) ran on the scratch copy "
            f"{result.rehearsal['scratch_database']}, which was dropped; the target was not "
            "changed and none of its tables was locked beyond pg_dump's ACCESS SHARE"
        )
        out.line(f"note: {result.rehearsal['caveat']}")
        empty = result.rehearsal.get("copied_without_rows") or []
        if empty:
            out.line(f"copied without their rows (too big): {', '.join(empty)}")
    else:
        out.line(
            f"rehearsal of {len(result.planned)} revision(s) ran in place, in one transaction, "
            "and was rolled back; nothing was changed, but the locks below were held on the "
            "target's tables until the rollback"
        )
        out.line(f"note: {result.rehearsal['caveat']}")
    if result.changes:
        out.out.print(
            table(
                "What would change",
                ["action", "kind", "object"],
                [[c.action, c.kind, c.name] for c in result.changes],
            )
        )
    rows = [
        [
            revision["revision"],
            statement["statement"],
            lock["table"],
            lock["mode"],
            lock["blocks"],
            "never analysed" if lock["rows_estimate"] is None else f"{lock['rows_estimate']:,}",
        ]
        for revision in result.locks
        for statement in revision["statements"]
        for lock in statement["locks"]
        if lock["blocks"] in ("writes", "reads and writes")
    ]
    others = sum(
        1
        for revision in result.locks
        for statement in revision["statements"]
        for lock in statement["locks"]
        if lock["blocks"] not in ("writes", "reads and writes")
    )
    if rows:
        out.out.print(
            table(
                "Table locks that block reads or writes, per statement (plain forms: "
                "`venuedb apply` builds indexes CONCURRENTLY and swaps big tables' exclusion "
                "constraints online)",
                ["revision", "statement", "table", "mode", "blocks", "rows (estimate)"],
                rows,
            )
        )
    else:
        out.line("no statement took a lock that blocks reads or writes of an existing table")
    if others:
        out.line(
            f"{others} more lock(s) block neither reads nor writes (ACCESS SHARE .. SHARE UPDATE "
            "EXCLUSIVE); --json lists every lock of every statement"
        )
