"""`venuedb demo`: the embedded server, every migration, sample data, auto-assignment."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled, resolve_target, table


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
    """Start the embedded PostgreSQL (unless --database-url), apply every migration, load
    realistic sample data (restaurants, zones, tables, adjacency, a month of bookings) and
    auto-assign it; show what was done."""
    from toolkit.server import connection
    from toolkit.venue.demo import run_demo

    out = Output(json_output)
    with handled(out):
        if database_url:
            target = resolve_target(database_url, out, writes="demo")
        else:
            from toolkit.server.embedded import project_server

            server = project_server()
            state, message = server.start()
            out.line(f"embedded PostgreSQL {state.version}: {message}")
            target = connection.Target(server.url(), "embedded server")
            out.note(target.describe())
        result = run_demo(target, out.emit)
        out.document("ok", database=target.masked, **result)
        if json_output:
            return
        assignment = result["assignment"]
        latency = assignment["latency_ms"]
        out.out.print(
            table(
                "Auto-assignment",
                ["bookings", "assigned", "combinations", "failed", "p50 ms", "p95 ms"],
                [
                    [
                        assignment["considered"],
                        assignment["assigned"],
                        assignment["combinations"],
                        assignment["failed"],
                        latency["p50"],
                        latency["p95"],
                    ]
                ],
            )
        )
        out.out.print(
            table(
                "Releases",
                ["release", "branch", "state"],
                [[r["release"], r["branch"], r["state"]] for r in result["releases"]],
            )
        )
        out.line(
            "next: `venuedb status`, `venuedb history`, `venuedb flags`, "
            '`psql "$(venuedb db url --reveal)"`'
        )
