"""`venuedb records` (the newest deployment records) and `venuedb records show ID`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table

if TYPE_CHECKING:
    from toolkit.server.standby import ReadOnly

app = typer.Typer(
    help="The deployment records kept in schema venuedb: apply, rollback, rollout, backfill, "
    "restore. Runs that ended without finishing their record are marked interrupted.",
    invoke_without_command=True,
)


@app.callback()
def records(
    ctx: typer.Context,
    last: Annotated[int, typer.Option(min=1, help="How many records, newest first.")] = 10,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """The newest deployment records (`venuedb records show ID` for one in full)."""
    if ctx.invoked_subcommand is not None:
        return
    from toolkit.deployments.store import recent

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        entries, read_only = recent(target, last)
        out.document("ok", records=entries, read_only=read_only.to_dict() if read_only else None)
        _say_read_only(out, read_only)
        if not entries:
            # Also when the toolkit's schema does not exist: reading never creates it.
            out.line("no deployment records in this database")
        elif not json_output:
            columns = ["id", "command", "target", "actor", "started_at", "duration_ms", "result"]
            out.out.print(
                table(
                    "Deployment records",
                    ["#", "command", "target", "actor", "started", "ms", "result"],
                    [[_short(e, c) for c in columns] for e in entries],
                )
            )


def _short(entry: dict[str, Any], column: str) -> Any:
    value = entry[column]
    return value[:19] if column == "started_at" and value else value


@app.command()
def show(
    deployment_id: Annotated[int, typer.Argument(metavar="ID", help="The record's #.")],
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """One record in full: every field, the planned and done steps, the output."""
    from toolkit.deployments.store import one
    from toolkit.errors import BadInput

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        record, read_only = one(target, deployment_id)
        if record is None:
            raise BadInput(f"no deployment record #{deployment_id} in this database")
        out.document("ok", record=record, read_only=read_only.to_dict() if read_only else None)
        if not json_output:
            _render(out, record)
        _say_read_only(out, read_only)


def _say_read_only(out: Output, read_only: ReadOnly | None) -> None:
    """What a read-only session (a hot standby) left unchecked; in JSON, `read_only` says it."""
    if read_only is not None:
        from toolkit.deployments.store import unmarked_runs_note

        out.line(f"note: {unmarked_runs_note(read_only)}")


def _render(out: Output, record: dict[str, Any]) -> None:
    long_fields = ("planned", "done", "output", "error")
    for key, value in record.items():
        if key not in long_fields:
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            out.line(f"{key}: {'' if shown is None else shown}")
    for key in ("planned", "done"):
        out.line(f"{key}:")
        for item in record[key] or []:
            out.line(f"  - {item}")
    out.line(f"error: {record['error'] or ''}")
    out.line("output:")
    for line in (record["output"] or "").splitlines():
        out.line(f"  {line}")
