"""`venuedb backup` and `venuedb restore`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, renamed, resolve_target
from toolkit.cli.progress_options import ProgressInterval, ProgressMode, reporting

if TYPE_CHECKING:
    pass


def backup(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the dump file.")] = Path(
        "backups"
    ),
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
) -> None:
    """pg_dump (custom format) named by database and UTC time, then verified by reading its
    table of contents (pg_restore --list); written mode 0600. Exit 1 when the dump or its
    check fails, leaving no file behind."""
    from toolkit.runbook.backup import backup as take_backup

    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        target = resolve_target(database_url, out)
        result = take_backup(target, out_dir)
        out.document("ok", **result.to_dict())
        out.line(
            f"backup {result.path}: {result.size_bytes:,} bytes, {result.objects} objects "
            f"in its table of contents, {result.seconds:.1f} s"
        )


def restore(
    file: Annotated[Path, typer.Argument(help="A dump written by `venuedb backup`.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The database to restore into (must be empty unless --force). Required: a "
            "restore never falls back to $DATABASE_URL or the embedded server.",
            show_default=False,
        ),
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option("--target-url", hidden=True, help="Old name of --database-url."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore over a non-empty database (drops what the dump contains first).",
        ),
    ] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the dump's contents (pg_restore --list, by type) and whether the "
            "target would take it; change nothing (exit 0; 1 when the command would refuse).",
        ),
    ] = False,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
) -> None:
    """Restore a backup into an empty database in one transaction, then run `venuedb verify`
    on it (seed 000 rollback level 3). Exit 1 when pg_restore fails (rolled back: the target
    is unchanged), 2 for a non-empty target without --force or an unreadable file, 3 when
    the restored database does not verify clean (drift, tampering, a failed postcondition),
    5 when verify could not compare it (the restore itself succeeded; see the reason). Exit 2
    also without --database-url: a restore names its target, never a default."""
    from toolkit.errors import BadInput
    from toolkit.runbook.backup import restore_verified

    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        url = renamed(
            database_url, target_url, name="--database-url", old_name="--target-url", out=out
        )
        if url is None:
            raise BadInput("restore needs --database-url: the database to restore into")
        target = resolve_target(url, out, writes="restore")
        if plan:
            from toolkit.cli.plans import show_restore_plan

            show_restore_plan(out, file, target, force)
            return
        result, report = restore_verified(file, target, force=force, progress=out.note)
        out.document(
            "ok" if report.clean else report.status,
            **result,
            verify_status=report.status,
            verify=report.to_dict(),
        )
        out.line(
            f"restored {result['objects']} objects from {file} in {result['seconds']:.1f} s; "
            f"verify: {report.status if report.clean else report.status.upper()}"
        )
        for drift in report.drift:
            out.line(f"drift: {drift['kind']} {drift['name']} {drift['status']}")
        for tamper in report.tamper:
            out.line(f"tampered: {tamper['kind']} {tamper['name']}")
        for check in report.postconditions:
            if not check["ok"]:
                out.line(f"failed postcondition: {check['kind']} {check['object']}")
        for reason in report.not_compared:
            out.line(f"not compared: {reason}")
        for note in report.notes:
            out.line(f"note: {note}")
        if report.exit_code:
            raise typer.Exit(report.exit_code)
