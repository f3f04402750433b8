"""`--plan` of the commands that change a database (apply, backfill run/resume, restore):
print what would be done, change nothing, exit 0. (rollback and rollout print their own.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli.common import Output, table

PlanFlag = Annotated[
    bool,
    typer.Option("--plan", help="Print what would be done and change nothing (exit 0)."),
]

DONE = "plan only (--plan): nothing was changed"


def show_apply_plan(out: Output, target: Any, target_name: str | None, lint_gate: Any) -> None:
    from toolkit.engine.apply_plan import plan_apply

    found = plan_apply(target, target_name, lint_gate)
    out.document("ok", plan=True, **found.to_dict())
    if out.as_json:
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
    for line in found.would_refuse:
        out.emit("warning", f"the apply would refuse: {line}")
    out.line(DONE)


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
    out.document("ok", plan=True, **found)
    if out.as_json:
        return
    out.line(f"{file}: {found['objects']} objects, {found['size_bytes']:,} bytes")
    out.out.print(
        table("Dump contents", ["type", "entries"], list(map(list, found["by_type"].items())))
    )
    if found["would_drop_first"]:
        out.line(f"{found['target']} is not empty: --force would drop what the dump contains first")
    elif found["target_empty"]:
        out.line(f"{found['target']} is empty: the restore would run in one transaction")
    for line in found["would_refuse"]:
        out.emit("warning", f"the restore would refuse: {line}")
    out.line(DONE)
