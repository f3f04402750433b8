"""`venuedb rollback RELEASE --level N [--plan]`: one rung of on-call's ladder.

Level 1 switches the release's flags off, level 2 runs its surgical forward steps (and
records them), level 3 is level 1 followed by the release's schema downgrade with every
guard of a plain rollback. `--plan` prints what the level does, the data at risk counted
on this database and the releases it touches, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from toolkit.cli.common import Output, require_tty_or_yes, table
from toolkit.deployments import store as records
from toolkit.errors import BadInput, VenuedbError
from toolkit.runbook import level_flags, levels


class LevelIncomplete(VenuedbError):
    """Level 1 switched what the database owns, but a flag read from the environment is
    still on where the command runs: the feature is not off yet."""

    status = "incomplete"


def run_level(
    out: Output,
    target: Any,
    release: str,
    number: int,
    plan: bool,
    guards: Any,
    options: Any,
    downgrade: Callable[..., None],
) -> None:
    level = levels.find_level(release, number)
    out.progress.print(
        f"{release}, rollback level {level.level} ({level.kind}; seed {level.seed}; expected "
        f"{level.duration}; data loss: {'yes' if level.data_loss else 'none'})",
        markup=False,
    )
    out.progress.print(f"  {level.changes}", markup=False)
    facts: dict[str, Any] = {"level": level.to_dict()}
    if level.level == 1:
        _flags(out, target, level, plan, guards, options, facts)
    elif level.level == 2:
        _surgical(out, target, level, plan, guards, options, facts)
    else:
        _full_revert(out, target, level, plan, guards, options, facts, downgrade)


def _flag_table(out: Output, steps: list[level_flags.FlagStep]) -> None:
    out.progress.print(
        table(
            "Flags (level 1)",
            ["flag", "owner", "now", "action"],
            [[s.flag, s.owner, s.before, s.action] for s in steps],
        )
    )


def _flags(
    out: Output,
    target: Any,
    level: levels.Level,
    plan: bool,
    guards: Any,
    options: Any,
    facts: dict[str, Any],
) -> None:
    steps = level_flags.plan(target, level.flags)
    _flag_table(out, steps)
    facts["flags"] = [s.to_dict() for s in steps]
    if plan:
        out.line("plan only (--plan): nothing was changed")
        out.document("ok", plan=True, **facts, data_at_risk={"rows_lost": 0})
        return
    require_tty_or_yes(
        guards.yes,
        "rollback",
        lambda: typer.confirm(f"Turn off {', '.join(level.flags)}?", default=False),
    )
    done = level_flags.switch_off(target, steps, options.actor)
    for line in done:
        out.emit("step", line)
    after = level_flags.plan(target, level.flags)
    facts.update(flags=[s.to_dict() for s in after], done=done)
    missing = level_flags.pending(after)
    record_id = records.record_change(
        target,
        options.actor,
        "rollback",
        f"{level.release} level 1",
        done,
        level_flags.pending_message(after) if missing else None,
    )
    facts["deployment_id"] = record_id
    if missing:
        message = f"level 1 of {level.release} is not complete: " + level_flags.pending_message(
            after
        )
        if out.as_json:
            out.document(LevelIncomplete.status, error=message, exit_code=1, plan=False, **facts)
        else:
            out.err.print(f"error: {message}", style="bold red", markup=False)
        raise typer.Exit(1)
    out.line(f"level 1 of {level.release} applied: {', '.join(level.flags)} off")
    out.document("ok", plan=False, **facts)


def _surgical(
    out: Output,
    target: Any,
    level: levels.Level,
    plan: bool,
    guards: Any,
    options: Any,
    facts: dict[str, Any],
) -> None:
    from toolkit.runbook.level_run import APPLY, plan_level
    from toolkit.runbook.level_run import run_level as run_steps

    states, steps, counted, current = plan_level(target, level)
    later = _later_releases(level.release, states)
    out.progress.print(
        table(
            "Level 2 steps (forward; alembic_version does not move)",
            ["#", "step"],
            [[i, step] for i, step in enumerate(steps, 1)],
        )
    )
    for t in counted:
        out.emit("info", f"{t['table']}: {t['rows']:,} rows, every one kept")
    if later:
        out.emit("info", f"later releases left in place: {', '.join(later)}")
    facts.update(
        steps=steps,
        data_at_risk={"rows_lost": 0, "tables": counted},
        dependent_releases=[],
        later_releases_kept=later,
        current=current.to_dict() if current else None,
    )
    if plan:
        if current is not None:
            out.emit("info", f"already in this state: {current.describe()}")
        out.line("plan only (--plan): nothing was changed")
        out.document("ok", plan=True, **facts)
        return
    require_tty_or_yes(
        guards.yes,
        "rollback",
        lambda: typer.confirm(f"Run level 2 of {level.release}?", default=False),
    )
    result = run_steps(target, level, APPLY, options, out.emit)
    if result.done:
        out.line(
            f"level 2 of {level.release} applied in {result.duration_ms} ms (deployment "
            f"#{result.deployment_id}); `venuedb verify` reports it, `venuedb rollout "
            f"{level.release}` restores it"
        )
    out.document("ok", plan=False, **facts, result=result.to_dict())


def _later_releases(release: str, states: list[dict[str, Any]]) -> list[str]:
    """Applied releases after `release` on its branch."""
    branch = next(s["branch"] for s in states if s["release"] == release)
    names = [s["release"] for s in states if s["branch"] == branch]
    return [
        s["release"]
        for s in states
        if s["branch"] == branch
        and s["state"] != "pending"
        and names.index(s["release"]) > names.index(release)
    ]


def _full_revert(
    out: Output,
    target: Any,
    level: levels.Level,
    plan: bool,
    guards: Any,
    options: Any,
    facts: dict[str, Any],
    downgrade: Callable[..., None],
) -> None:
    first = next((lv for lv in levels.levels_of(level.release) if lv.level == 1), None)
    steps = level_flags.plan(target, first.flags) if first else []
    if steps:
        _flag_table(out, steps)
    facts["flags"] = [s.to_dict() for s in steps]
    facts["restore_if_corrupted"] = (
        "only if data was corrupted: `venuedb restore BACKUP` with the backup the release's "
        "rollout took (its deployment record names it); it loses every write since"
    )
    missing = level_flags.pending(steps)
    facts["flags_pending"] = [s.flag for s in missing]
    if missing and plan:
        out.emit(
            "warning",
            "a run would be refused until then: " + level_flags.pending_message(steps),
        )
    if missing and not plan:
        raise BadInput(
            f"level 3 of {level.release} starts with its level 1, and "
            + level_flags.pending_message(steps)
            + ". Nothing was changed"
        )

    def flags_off() -> None:
        for line in level_flags.switch_off(target, steps, options.actor):
            out.emit("step", line)
            options.record_notes.append(line)

    downgrade(
        out,
        target,
        level.release,
        options,
        guards,
        plan=plan,
        extra=facts,
        before_run=flags_off,
    )
