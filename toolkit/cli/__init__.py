"""The `venuedb` command line: parses, calls toolkit functions, renders tables or JSON.

Exit codes: 0 all well, 1 a check or operation failed, 2 bad input or unreachable
database, 3 verification found drift or tampering, 4 another deploy holds the lock or a
lock could not be had in time, 5 nothing could be compared or measured.
"""

from __future__ import annotations

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
    frozen,
    lint,
    migrations,
    monitoring,
    records,
    rollout,
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
app.add_typer(db.app, name="db")
app.add_typer(backfill.app, name="backfill")
app.add_typer(flags.app, name="flags")
app.add_typer(monitoring.app, name="monitoring")
app.command()(migrations.status)
app.command()(migrations.apply)
app.command()(migrations.rollback)
app.command()(migrations.history)
app.command()(verify.verify)
app.command()(verify.snapshot)
app.command()(frozen.release_manifest)
app.command()(frozen.accept_checksum)
app.command()(check.check)
app.command()(exporter.exporter)
app.command()(backup.backup)
app.command()(backup.restore)
app.command()(rollout.rollout)
app.add_typer(records.app, name="records")
app.command()(lint.lint)
app.command()(assign.assign)
app.command()(demo.demo)


def main() -> None:
    app()
