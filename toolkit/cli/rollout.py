"""`venuedb rollout RELEASE` and `venuedb records`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import (
    DatabaseUrl,
    JsonFlag,
    Output,
    handled,
    require_tty_or_yes,
    resolve_target,
    table,
)


def rollout(
    release: Annotated[
        str, typer.Argument(help="The release to roll out (see `venuedb history`).")
    ],
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the steps without doing them.")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Do it without asking (required when stdin is not a terminal)."),
    ] = False,
    backup_dir: Annotated[Path, typer.Option(help="Where the pre-rollout backup goes.")] = Path(
        "backups"
    ),
    records_dir: Annotated[
        Path, typer.Option(help="Where the Markdown deployment record goes.")
    ] = Path("deployments"),
    lock_timeout: Annotated[str, typer.Option(help="lock_timeout per revision.")] = "1s",
    actor: Annotated[str | None, typer.Option(help="Who is deploying (recorded).")] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Execute a release's runbook: backup, pre-flight, apply revision by revision with
    postconditions checked after each (stops at the first failure, the database left at
    the last good revision), the release's backfills, health checks, and a deployment
    record in the database and as Markdown (seed 002's template, seed 003's artifacts)."""
    from toolkit.durations import parse_seconds
    from toolkit.migrate import RunOptions
    from toolkit.records import default_actor
    from toolkit.release_rollout import plan as plan_steps
    from toolkit.release_rollout import rollout as run_rollout

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        steps = plan_steps(target, release)
        if plan:
            out.document("ok", release=release, plan=steps)
            for number, step in enumerate(steps, 1):
                out.line(f"{number}. {step}")
            return
        out.progress.print(f"rollout of {release}: {len(steps)} steps", markup=False)
        require_tty_or_yes(
            yes, "rollout", lambda: typer.confirm(f"Roll out {release}?", default=False)
        )
        options = RunOptions(
            lock_timeout=parse_seconds(lock_timeout, option="--lock-timeout"),
            actor=actor or default_actor(),
        )
        result = run_rollout(
            target,
            release,
            backup_dir=backup_dir,
            records_dir=records_dir,
            options=options,
            emit=out.emit,
        )
        out.document("ok", **result)
        out.line(f"{release}: {result['outcome']}; record {result['record']}")


def records(
    last: Annotated[int, typer.Option(min=1, help="How many records, newest first.")] = 10,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """The deployment records kept in schema venuedb: apply, rollback, rollout."""
    from toolkit import connection
    from toolkit.records import schema_exists

    out = Output(json_output)
    with handled(out):
        target = resolve_target(database_url, out)
        with connection.connect(target, purpose="records") as conn:
            rows = (
                conn.execute(
                    "SELECT id, command, target, actor, started_at, duration_ms, result, error "
                    "FROM venuedb.deployments ORDER BY id DESC LIMIT %s",
                    (last,),
                ).fetchall()
                if schema_exists(conn)
                else []
            )
        entries = [
            {
                "id": r[0],
                "command": r[1],
                "target": r[2],
                "actor": r[3],
                "started_at": r[4].isoformat(),
                "duration_ms": r[5],
                "result": r[6],
                "error": r[7],
            }
            for r in rows
        ]
        out.document("ok", records=entries)
        if not json_output:
            out.out.print(
                table(
                    "Deployment records",
                    ["#", "command", "target", "actor", "started", "ms", "result"],
                    [
                        [
                            e["id"],
                            e["command"],
                            e["target"],
                            e["actor"],
                            e["started_at"][:19],
                            e["duration_ms"],
                            e["result"],
                        ]
                        for e in entries
                    ],
                )
            )
