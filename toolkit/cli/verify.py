"""`venuedb verify` and `venuedb snapshot`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from toolkit.cli.common import (
    DatabaseUrl,
    JsonFlag,
    Output,
    handled,
    renamed,
    resolve_target,
    table,
)

_VERDICT_LINES = {
    "clean": "clean",
    "tampered": "TAMPERED",
    "in_progress": "OPERATION IN PROGRESS",
    "drift": "DRIFT",
    "postconditions_failed": "POSTCONDITIONS FAILED",
    "not_compared": "NOT COMPARED",
}

# Shared with `venuedb fleet verify`.
Release = Annotated[str | None, typer.Option(help="Only this release's postconditions and files.")]


def verify(
    release: Release = None,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="A server where a scratch database may be created, for the reference schema "
            "when the database is not at the heads and its own user may not CREATE DATABASE.",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Check the postconditions of every applied release, the live schema against what
    its migrations build (drift: a hot-fixed function, a dropped index or policy, a changed
    constraint, an extra trigger, a disabled trigger, a widened grant, an app role given
    BYPASSRLS or a setting, a SECURITY DEFINER function in any schema, an edited state
    machine transition...), and tampering (revision files changed after they were applied,
    released sql/functions files edited, revisions applied out of order).

    At the heads the reference is migrations/schema_snapshot.json; at any other revision
    a scratch database migrated to exactly the live revisions (a few seconds; on the
    database's own server, or --scratch-url).

    Exit 0 clean; 3 tampered, drift, a failed postcondition or an operation in progress;
    5 not compared (no reference could be built, an unknown or no revision recorded, a
    release not applied): never "clean" then; 2 bad input.
    """
    from toolkit.integrity.verify import verify as run_verify

    out = Output(json_output)
    with handled(out):
        if scratch_url is not None:
            from toolkit.server.urls import validate_url

            scratch_url = validate_url(scratch_url)
        report = run_verify(
            resolve_target(database_url, out),
            release,
            scratch_url=scratch_url,
            progress=out.note,
        )
        out.document(report.status, **report.to_dict())
        if not json_output:
            _print(out, report)
        if report.exit_code:
            raise typer.Exit(report.exit_code)


def _print(out: Output, report: Any) -> None:
    failed = [p for p in report.postconditions if not p["ok"]]
    out.line(
        f"postconditions: {len(report.postconditions) - len(failed)} of "
        f"{len(report.postconditions)} hold"
    )
    if failed:
        out.out.print(
            table(
                "Failed postconditions",
                ["release", "kind", "object", "expected", "actual"],
                [
                    [p["release"], p["kind"], p["object"], p["expected"], p["actual"]]
                    for p in failed
                ],
            )
        )
    if report.drift_status == "not_asked":
        out.line("drift: not asked (--release checks postconditions and files only)")
    elif report.drift_reference:
        out.line(f"drift: compared with {report.drift_reference}")
    if report.drift:
        out.out.print(
            table(
                "Drift",
                ["kind", "object", "status", "expected", "actual"],
                [
                    [d["kind"], d["name"], d["status"], d["expected"], d["actual"]]
                    for d in report.drift
                ],
            )
        )
    if report.tamper:
        out.out.print(
            table(
                "Tampering",
                ["kind", "name", "detail"],
                [[t["kind"], t["name"], t.get("detail", "")] for t in report.tamper],
            )
        )
    for item in report.in_progress:
        out.line(f"operation in progress: {item['what']}")
    for reason in report.not_compared:
        out.line(f"NOT COMPARED: {reason}")
    for note in report.notes:
        out.line(f"note: {note}")
    out.line(f"{_VERDICT_LINES[report.status]} ({report.seconds * 1000:.0f} ms)")


def snapshot(
    check: Annotated[
        bool,
        typer.Option("--check", help="Compare instead of writing; exit 3 when the file is stale."),
    ] = False,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="A server where a scratch database may be created (default: the embedded server).",
            show_default=False,
        ),
    ] = None,
    old_scratch_url: Annotated[
        str | None,
        typer.Option("--database-url", hidden=True, help="Old name of --scratch-url."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Regenerate migrations/schema_snapshot.json: migrate a scratch database to every
    head and record each object's catalog definition (the reference for drift)."""
    from toolkit.integrity import catalog as snap
    from toolkit.server.urls import mask_url, with_database

    out = Output(json_output)
    with handled(out):
        # Not the database the other commands act on: only a server to build a scratch copy on.
        scratch_url = renamed(
            scratch_url, old_scratch_url, name="--scratch-url", old_name="--database-url", out=out
        )
        if not check:
            from toolkit.paths import editable_project_root

            # Before a scratch server starts: the file it would write must be writable.
            editable_project_root("venuedb snapshot")
        if scratch_url:
            from toolkit.server.urls import validate_url

            server = validate_url(scratch_url)
        else:
            from toolkit.server.embedded import project_server

            embedded = project_server()
            embedded.start()
            server = with_database(embedded.url(), "postgres")
        out.note(f"scratch database on {mask_url(server)}")
        objects, heads = snap.build(server)
        if check:
            current = snap.load() if snap.snapshot_file().exists() else {"objects": {}}
            stale = (
                snap.diff(current["objects"], objects)
                or sorted(current.get("heads", [])) != sorted(heads)
                or current.get("function_files") != snap.function_file_hashes()
            )
            out.document("drift" if stale else "ok", stale=bool(stale))
            out.line(
                "snapshot is stale: run `venuedb snapshot`" if stale else "snapshot is current"
            )
            if stale:
                raise typer.Exit(3)
            return
        path = snap.write(objects, heads)
        count = sum(len(v) for v in objects.values())
        out.document("ok", path=str(path), objects=count, heads=heads)
        out.line(f"wrote {path} ({count} objects at {', '.join(heads)})")
