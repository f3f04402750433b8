"""`venuedb demo`: the embedded server, every migration, and what was done."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled


def demo(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Run the demo on this database instead of the embedded server. DATABASE_URL and "
            ".env are deliberately ignored here, so a demo never lands on a database by accident.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Start the embedded PostgreSQL (unless --database-url), apply every migration, show the result."""
    from toolkit import connection
    from toolkit.migrate import RunOptions, run
    from toolkit.status import status

    out = Output(json_output)
    with handled(out):
        if database_url:
            target = connection.resolve(database_url)
        else:
            from toolkit.embedded import project_server

            server = project_server()
            state, message = server.start()
            out.line(f"1. embedded PostgreSQL {state.version}: {message}")
            target = connection.Target(server.url(), "embedded server")
        out.note(target.describe())
        out.line("2. applying every migration (all branch heads)")
        result = run(target, "upgrade", None, RunOptions(actor="demo"), emit=out.emit)
        info = status(target)
        applied = [r["release"] for r in info["releases"] if r["state"] == "applied"]
        out.line(
            f"3. {len(result.done)} revision(s) applied now; releases in place: "
            + ", ".join(applied)
        )
        for branch, head in info["branches"].items():
            out.line(f"   {branch:<8} at {head or '(base)'}")
        out.line('next: `venuedb status`, `venuedb history`, `psql "$(venuedb db url --reveal)"`')
        out.document(
            "ok",
            applied_now=result.done,
            releases=info["releases"],
            branches=info["branches"],
            database=target.masked,
        )
