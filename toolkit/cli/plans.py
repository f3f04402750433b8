"""`--plan` of the commands that change a database (apply, backfill run/resume, restore):
print what would be done, change nothing, exit 0. (rollback and rollout print their own.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.common import Output, table

PlanFlag = Annotated[
    bool,
    typer.Option(
        "--plan",
        help="Print what would be done and change nothing (exit 0; 1 when the command would refuse).",
    ),
]

DONE = "plan only (--plan): nothing was changed"


def plan_status(refusals: list[str]) -> str:
    """A plan's status word: ok only when the command, run as given, would go ahead."""
    return "would_refuse" if refusals else "ok"


def finish_plan(out: Output, refusals: list[str], why: str, done: str = DONE) -> None:
    """Say what the command would refuse (`why`: e.g. "the apply would refuse") and end
    the plan: exit 0 only when the command would go ahead, else 1, so a pipeline that gates
    on a plan is never told ok about a run that would stop (the document says
    `would_refuse`)."""
    for line in refusals:
        out.emit("warning", f"{why}: {line}")
    out.line(done)
    if refusals:
        raise typer.Exit(1)


def show_apply_plan(out: Output, target: Any, target_name: str | None, lint_gate: Any) -> None:
    from toolkit.engine.apply_plan import plan_apply

    found = plan_apply(target, target_name, lint_gate)
    out.document(plan_status(found.would_refuse), plan=True, **found.to_dict())
    if out.as_json:
        finish_plan(out, found.would_refuse, "the apply would refuse")
        return
    if not found.revisions:
        out.line("nothing to apply: the database is already at the target")
    else:
        out.out.print(
            table(
                f"Apply plan to {found.target} (in this order)",
                ["#", "revision", "branch", "release", "locks"],
                [
                    [i, r["revision"], r["branch"], r["release"], "; ".join(r["lock_notes"])]
                    for i, r in enumerate(found.revisions, 1)
                ],
            )
        )
    finish_plan(out, found.would_refuse, "the apply would refuse")


def show_backfill_plan(out: Output, target: Any, backfill: Any, options: Any) -> None:
    from toolkit.runbook.backfill_plan import plan_backfill

    found = plan_backfill(target, backfill, options)
    out.document("ok", plan=True, **found)
    out.line(
        f"{found['name']}: {found['remaining']:,} rows still to do in {found['table']} "
        f"({found['state']}); a run starts {found['starts']}"
    )
    out.line(
        f"would process {found['rows_planned']:,} rows in {found['batches']:,} batches of "
        f"{found['batch_size']:,}"
        + (" (adaptive: resized to the target batch time)" if found["adaptive"] else "")
        + (
            f", sleeping {found['sleep_seconds_between_batches']:g}s between batches "
            f"({found['sleep_seconds_total']:g}s in all)"
            if found["sleep_seconds_between_batches"]
            else ""
        )
        + (
            f", stopping after {found['max_duration_seconds']:g}s"
            if found["max_duration_seconds"]
            else ""
        )
    )
    out.line(DONE)


def show_restore_plan(out: Output, file: Path, target: Any, force: bool) -> None:
    from toolkit.runbook.restore_plan import plan_restore

    found = plan_restore(file, target, force=force)
    out.document(plan_status(found["would_refuse"]), plan=True, **found)
    if out.as_json:
        finish_plan(out, found["would_refuse"], "the restore would refuse")
        return
    out.line(f"{file}: {found['objects']} objects, {found['size_bytes']:,} bytes")
    out.out.print(
        table("Dump contents", ["type", "entries"], list(map(list, found["by_type"].items())))
    )
    if found["would_drop_first"]:
        out.line(f"{found['target']} is not empty: --force would drop what the dump contains first")
    elif found["target_empty"]:
        out.line(f"{found['target']} is empty: the restore would run in one transaction")
    finish_plan(out, found["would_refuse"], "the restore would refuse")
