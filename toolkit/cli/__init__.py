"""The `venuedb` command line: parses, calls toolkit functions, renders tables or JSON.

Exit codes: 0 all well, 1 a check or operation failed, 2 bad input or unreachable
database, 3 verification found drift or tampering, 4 another deploy holds the lock or a
lock could not be had in time, 5 nothing could be compared or measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli import (
    assign,
    backfill,
    backup,
    check,
    db,
    demo,
    exporter,
    flags,
    fleet,
    frozen,
    lint,
    migrations,
    monitoring,
    new_revision,
    records,
    rollout,
    stamp,
    verify,
)

app = typer.Typer(
    name="venuedb",
    help="Apply, verify, back-fill and roll back the venuedb PostgreSQL schema without "
    "blocking production.\n\nThe database is --database-url, else $DATABASE_URL, else "
    "DATABASE_URL in ./.env, else the running embedded server (`venuedb db start`); every "
    "command says which one it uses, password masked.\n\nExit codes: 0 ok, 1 failed, "
    "2 bad input or unreachable database, 3 drift or tampering, 4 lock held by another "
    "deploy or not granted in time, 5 nothing could be compared or measured (README: "
    "Exit codes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"venuedb {version('venuedb')}")
        raise typer.Exit()


@app.callback()
def global_options(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            help="The venuedb project (alembic.ini, migrations/, sql/) to use. Default: "
            "$VENUEDB_PROJECT_DIR, else the checkout venuedb runs from, else the project "
            "files installed with it.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    if project_dir is not None:
        _set_project_dir(ctx, str(project_dir))


def _set_project_dir(ctx: typer.Context, value: str) -> None:
    """As if VENUEDB_PROJECT_DIR were set: toolkit/paths.py reads it on every call. Restored
    when the command ends, for callers that run several commands in one process (tests)."""
    from toolkit.paths import PROJECT_DIR_VARIABLE

    before = os.environ.get(PROJECT_DIR_VARIABLE)
    os.environ[PROJECT_DIR_VARIABLE] = value

    def restore() -> None:
        if before is None:
            os.environ.pop(PROJECT_DIR_VARIABLE, None)
        else:
            os.environ[PROJECT_DIR_VARIABLE] = before

    ctx.call_on_close(restore)


# In the order `venuedb --help` lists them: commands, then groups (typer puts groups last).
for command in (
    migrations.status,
    migrations.apply,
    migrations.rollback,
    migrations.history,
    stamp.stamp,
    new_revision.new_revision,
    verify.verify,
    verify.snapshot,
    frozen.release_manifest,
    frozen.accept_checksum,
    check.check,
    exporter.exporter,
    backup.backup,
    backup.restore,
    rollout.rollout,
    lint.lint,
    assign.assign,
    demo.demo,
):
    app.command()(command)
for name, group in (
    ("db", db.app),
    ("backfill", backfill.app),
    ("flags", flags.app),
    ("monitoring", monitoring.app),
    ("records", records.app),
    ("fleet", fleet.app),
):
    app.add_typer(group, name=name)


def main() -> None:
    app()
