"""`venuedb rollback RELEASE --level N [--plan]`: one rung of on-call's ladder.

Level 1 switches the release's flags off, level 2 runs its surgical forward steps (and
records them), level 3 is level 1 followed by the release's schema downgrade with every
guard of a plain rollback. `--plan` prints what the level does, the data at risk counted
on this database and the releases it touches, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class _LevelCommand:
    """What `venuedb rollback RELEASE --level N` works with, whichever rung it runs."""

    out: Output
    target: Any
    level: levels.Level
    plan: bool  # --plan: show what the level would do, change nothing
    guards: Any
    options: Any
    facts: dict[str, Any]  # the JSON document's facts, filled in as the level runs


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
    command = _LevelCommand(out, target, level, plan, guards, options, {"level": level.to_dict()})
    if level.level == 1:
        _flags(command)
    elif level.level == 2:
        _surgical(command)
    else:
        _full_revert(command, downgrade)


def _flag_table(out: Output, steps: list[level_flags.FlagStep]) -> None:
    out.progress.print(
        table(
            "Flags (level 1)",
            ["flag", "owner", "now", "action"],
            [[s.flag, s.owner, s.before, s.action] for s in steps],
        )
    )


def _plan_only(command: _LevelCommand, question: str, **plan_facts: Any) -> bool:
    """With --plan, the plan's document (nothing changed): True. Otherwise ask `question`
    (or need --yes): False once confirmed, BadInput when not."""
    if command.plan:
        command.out.line("plan only (--plan): nothing was changed")
        command.out.document("ok", plan=True, **command.facts, **plan_facts)
        return True
    require_tty_or_yes(
        command.guards.yes, "rollback", lambda: typer.confirm(question, default=False)
    )
    return False


def _flags(command: _LevelCommand) -> None:
    out, target, level, facts = command.out, command.target, command.level, command.facts
    steps = level_flags.plan(target, level.flags)
    _flag_table(out, steps)
    facts["flags"] = [s.to_dict() for s in steps]
    if _plan_only(command, f"Turn off {', '.join(level.flags)}?", data_at_risk={"rows_lost": 0}):
        return
    done = level_flags.switch_off(target, steps, command.options.actor)
    for line in done:
        out.emit("step", line)
    after = level_flags.plan(target, level.flags)
    facts.update(flags=[s.to_dict() for s in after], done=done)
    missing = level_flags.pending(after)
    record_id = records.record_change(
        target,
        command.options.actor,
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
        out.fail(LevelIncomplete(message), plan=False, **facts)
    out.line(f"level 1 of {level.release} applied: {', '.join(level.flags)} off")
    out.document("ok", plan=False, **facts)


def _surgical(command: _LevelCommand) -> None:
    from toolkit.runbook.level_run import APPLY, plan_level
    from toolkit.runbook.level_run import run_level as run_steps

    out, level = command.out, command.level
    states, steps, counted, current = plan_level(command.target, level)
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
    command.facts.update(
        steps=steps,
        data_at_risk={"rows_lost": 0, "tables": counted},
        dependent_releases=[],
        later_releases_kept=later,
        current=current.to_dict() if current else None,
    )
    if command.plan and current is not None:
        out.emit("info", f"already in this state: {current.describe()}")
    if _plan_only(command, f"Run level 2 of {level.release}?"):
        return
    result = run_steps(command.target, level, APPLY, command.options, out.emit)
    if result.done:
        out.line(
            f"level 2 of {level.release} applied in {result.duration_ms} ms (deployment "
            f"#{result.deployment_id}); `venuedb verify` reports it, `venuedb rollout "
            f"{level.release}` restores it"
        )
    out.document("ok", plan=False, **command.facts, result=result.to_dict())


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


def _full_revert(command: _LevelCommand, downgrade: Callable[..., None]) -> None:
    out, target, level, facts = command.out, command.target, command.level, command.facts
    plan, options = command.plan, command.options
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
        command.guards,
        plan=plan,
        extra=facts,
        before_run=flags_off,
    )
