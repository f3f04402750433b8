"""`venuedb verify` and `venuedb snapshot`."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table


def verify(
    release: Annotated[
        str | None, typer.Option(help="Only this release's postconditions and files.")
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Check the postconditions of every applied release, the live schema against the
    committed snapshot (drift: a hot-fixed function, a dropped index, a changed
    constraint, an extra trigger...), and tampering (revision files changed after they
    were applied, released sql/functions files edited, revisions applied out of order).

    Exit 0 clean, 3 drift or a failed postcondition, 2 bad input.
    """
    from toolkit.verify import verify as run_verify

    out = Output(json_output)
    with handled(out):
        report = run_verify(resolve_target(database_url, out), release)
        status = "ok" if report.clean else ("in_progress" if report.in_progress else "drift")
        out.document(status, **report.to_dict())
        if not json_output:
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
            if report.drift:
                out.out.print(
                    table(
                        "Drift from migrations/schema_snapshot.json",
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
            for note in report.notes:
                out.line(f"note: {note}")
            verdict = "clean" if report.clean else "DRIFT"
            if report.in_progress:
                verdict = "OPERATION IN PROGRESS"
            out.line(f"{verdict} ({report.seconds * 1000:.0f} ms)")
        if not report.clean:
            raise typer.Exit(3)


def snapshot(
    check: Annotated[
        bool,
        typer.Option("--check", help="Compare instead of writing; exit 3 when the file is stale."),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="A server where a scratch database may be created (default: the embedded server).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Regenerate migrations/schema_snapshot.json: migrate a scratch database to every
    head and record each object's catalog definition (the reference for drift)."""
    from toolkit import snapshot as snap
    from toolkit.urls import mask_url, with_database

    out = Output(json_output)
    with handled(out):
        if database_url:
            from toolkit.urls import validate_url

            server = validate_url(database_url)
        else:
            from toolkit.embedded import project_server

            embedded = project_server()
            embedded.start()
            server = with_database(embedded.url(), "postgres")
        out.note(f"scratch database on {mask_url(server)}")
        objects, heads = snap.build(server)
        if check:
            current = snap.load() if snap.snapshot_file().exists() else {"objects": {}}
            stale = (
                snap.diff(current["objects"], objects)
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
