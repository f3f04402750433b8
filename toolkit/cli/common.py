"""What every command shares: the database option, --json, exit codes, printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer

from toolkit.errors import BadInput, VenuedbError

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database to use. Default: $DATABASE_URL, else DATABASE_URL in ./.env, "
        "else the running embedded server (`venuedb db start`).",
        show_default=False,
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help='Print one JSON document (with a top-level "status").')
]
# --yes: go ahead without the confirmation a changing command asks for (require_tty_or_yes).
YesFlag = Annotated[
    bool,
    typer.Option("--yes", help="Do it without asking (required when stdin is not a terminal)."),
]


class Output:
    """Person-readable output on stdout, or one JSON document; progress goes to stderr in JSON mode."""

    def __init__(self, as_json: bool) -> None:
        from rich.console import Console

        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def progress(self) -> Any:
        return self.err if self.as_json else self.out

    def line(self, text: str = "") -> None:
        if not self.as_json:
            self.out.print(text, markup=False)

    def note(self, text: str) -> None:
        """Context such as which database is used: stderr, so stdout stays parseable."""
        self.err.print(text, style="dim")

    def emit(self, kind: str, message: str) -> None:
        style = {
            "notice": "cyan",
            "retry": "yellow",
            "warning": "yellow",
            "step": "green",
            "error": "red",
        }.get(kind, "")
        prefix = {
            "notice": "NOTICE: ",
            "retry": "retry: ",
            "warning": "warning: ",
            "error": "error: ",
        }.get(kind, "")
        self.progress.print(f"{prefix}{message}", style=style or None, markup=False)

    def document(self, status: str, **payload: Any) -> None:
        if self.as_json:
            sys.stdout.write(
                json.dumps({"status": status, **payload}, indent=2, default=str) + "\n"
            )

    def fail(self, exc: VenuedbError, **facts: Any) -> NoReturn:
        """Say what failed (in JSON with `facts`, e.g. the plan), exit with its code."""
        if self.as_json:
            self.document(exc.status, error=str(exc), exit_code=exc.exit_code, **facts)
        else:
            self.err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(exc.exit_code)


@contextmanager
def handled(output: Output) -> Iterator[None]:
    """Expected failures become one clear message and an exit code, never a traceback."""
    try:
        yield
    except VenuedbError as exc:
        output.fail(exc)
    except _database_error() as exc:
        from toolkit.server.urls import masked_first_line

        output.fail(
            VenuedbError(
                "the database refused an operation: "
                + masked_first_line(exc)
                + f". {_WHAT_IS_KEPT}"
            )
        )
    except KeyboardInterrupt:
        output.fail(VenuedbError(f"interrupted. {_WHAT_IS_KEPT}"))


# Only the open transaction is undone: earlier revisions, the out-of-transaction steps of
# resumable revisions and committed backfill batches stay, so say so instead of "all rolled back".
_WHAT_IS_KEPT = (
    "The open transaction was rolled back; work committed before it (earlier revisions, "
    "steps of resumable revisions, backfill batches) was kept: see `venuedb status`, then "
    "run the same command again to resume."
)


def _database_error() -> type[BaseException]:
    import psycopg

    return psycopg.Error


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    if not sys.stdout.isatty():
        # Piped or redirected: no screen to fit, and an identifier cut to "allocations_no_o…"
        # is useless in a log or to grep. The table takes the width its content needs.
        t.width = _natural_width(t)
    return t


def _natural_width(renderable: Any) -> int:
    import io

    from rich.console import Console
    from rich.measure import Measurement

    measuring = Console(file=io.StringIO())
    return Measurement.get(
        measuring, measuring.options.update(width=_UNBOUNDED), renderable
    ).maximum


_UNBOUNDED = 1_000_000


def renamed(
    value: str | None, old_value: str | None, *, name: str, old_name: str, out: Output
) -> str | None:
    """An option's value, also read from its old name (hidden, still working): one note on
    stderr says the new name, so scripts move on without breaking today."""
    if old_value is None:
        return value
    if value is not None:
        raise BadInput(f"{old_name} is the old name of {name}: give {name} only")
    out.note(f"note: {old_name} is deprecated; use {name} (same meaning)")
    return old_value


def resolve_target(database_url: str | None, output: Output, *, writes: str | None = None) -> Any:
    """The database the command acts on, said on stderr. `writes`: the command's name when
    it must write there; a hot standby or a read-only session is then refused (exit 2,
    naming the primary) before the command reads, locks or writes anything."""
    from toolkit.server import connection

    target = connection.resolve(database_url)
    output.note(target.describe())
    if writes is not None:
        from toolkit.server.standby import require_writable

        require_writable(target, writes)
    return target


def require_tty_or_yes(yes: bool, what: str, confirm: Callable[[], bool]) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{what} needs --yes when not run from a terminal; nothing was changed")
    if not confirm():
        raise BadInput("cancelled; nothing was changed")
