"""`venuedb fleet apply | verify | check | status --inventory FILE`: one command over the
databases of an inventory, canaries first, with a concurrency limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.check import CheckNames, CheckTimeout, Domain, Window
from toolkit.cli.common import JsonFlag, Output, handled, table
from toolkit.cli.lint import SkipLint
from toolkit.cli.migrations import (
    Actor,
    LockTimeout,
    LockWait,
    Retries,
    StatementTimeout,
    TargetArg,
)
from toolkit.cli.verify import Release
from toolkit.errors import BadInput

if TYPE_CHECKING:
    from toolkit.fleet.runner import Job, Outcome

# \b: click prints the paragraph as written (no re-wrapping); no blank line inside it.
_INVENTORY_EXAMPLE = """\b
    [defaults]                           # optional
    concurrency = 4                      # databases at a time (--concurrency wins)
    [[database]]
    name = "eu-canary"
    url_env = "EU_CANARY_DATABASE_URL"   # the URL from this variable: no password in the file
    canary = true                        # canaries run, and must pass, before the others
    [[database]]
    name = "us-1"
    url = "postgresql://app@db.us-1.internal/venuedb"   # allowed; passwords are masked"""

app = typer.Typer(
    help="Run apply, verify, check or status on every database of an inventory file: the "
    "canaries first (all of them, then the rest), --concurrency at a time, stopping at the "
    "first failure (databases not started are reported skipped; --continue goes on). One "
    "row per database, a summary line; --json one document.\n\nInventory (TOML), checked "
    "in full before any database is touched (a mistake exits 2, nothing run):\n\n"
    + _INVENTORY_EXAMPLE
    + "\n\nExit 0 only when every selected database ran and was ok; 1 when one failed or "
    "was skipped; 2 bad input.",
    no_args_is_help=True,
)

Inventory = Annotated[
    Path,
    typer.Option(
        "--inventory",
        help="The inventory: a TOML file of [[database]] tables (name, url or url_env, canary).",
        show_default=False,
    ),
]
Only = Annotated[
    list[str] | None,
    typer.Option(
        "--only", metavar="NAME", help="Only this database (repeatable).", show_default=False
    ),
]
Concurrency = Annotated[
    int | None,
    typer.Option(
        help="Databases at a time (1 .. 64). Default: the inventory's [defaults] concurrency, "
        "else 4.",
        show_default=False,
    ),
]
KeepGoing = Annotated[
    bool,
    typer.Option(
        "--continue",
        help="Go on past a failed database (a failed canary too): every selected database runs.",
    ),
]
SummaryFile = Annotated[
    Path | None,
    typer.Option(
        "--summary-file",
        help="Also write the --json document to this file (whatever the output mode).",
        show_default=False,
    ),
]


def apply(
    inventory: Inventory,
    target_name: TargetArg = None,
    only: Only = None,
    concurrency: Concurrency = None,
    keep_going: KeepGoing = False,
    lock_wait: LockWait = "30s",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "0",
    retries: Retries = 3,
    actor: Actor = None,
    skip_lint: SkipLint = None,
    summary_file: SummaryFile = None,
    json_output: JsonFlag = False,
) -> None:
    """`venuedb apply [TARGET]` on every database, each in a process of its own: the deploy
    lock, lint gate, checksums and deployment record of each database exactly as a single
    apply (its JSON document is the database's `result`).

    Example: `venuedb fleet apply --inventory fleet.toml --lock-timeout 500ms`."""

    def prepare(out: Output) -> Job:
        from toolkit.cli.migrations import run_options
        from toolkit.fleet.jobs import apply_job

        # Refused here, before any database: what each apply would refuse alike.
        run_options(lock_wait, lock_timeout, statement_timeout, retries, actor)
        arguments = [] if target_name is None else [target_name]
        arguments += ["--lock-wait", lock_wait, "--lock-timeout", lock_timeout]
        arguments += ["--statement-timeout", statement_timeout, "--retries", str(retries)]
        arguments += ["--actor", actor] if actor is not None else []
        arguments += ["--skip-lint", skip_lint] if skip_lint is not None else []
        return apply_job(arguments)

    _run("apply", inventory, only, concurrency, keep_going, summary_file, json_output, prepare)


def verify(
    inventory: Inventory,
    only: Only = None,
    concurrency: Concurrency = None,
    keep_going: KeepGoing = False,
    release: Release = None,
    summary_file: SummaryFile = None,
    json_output: JsonFlag = False,
) -> None:
    """`venuedb verify` on every database: postconditions, drift, tampering. A database
    is ok only when clean (not when not_compared: exit 5 for it).

    Example: `venuedb fleet verify --inventory fleet.toml --concurrency 8 --continue`."""

    def prepare(out: Output) -> Job:
        from toolkit.fleet.jobs import verify_job

        return verify_job(release, _notes(out))

    _run("verify", inventory, only, concurrency, keep_going, summary_file, json_output, prepare)


def check(
    inventory: Inventory,
    names: CheckNames = None,
    only: Only = None,
    concurrency: Concurrency = None,
    keep_going: KeepGoing = False,
    domain: Domain = None,
    window: Window = None,
    timeout: CheckTimeout = "5s",
    summary_file: SummaryFile = None,
    json_output: JsonFlag = False,
) -> None:
    """`venuedb check [NAMES]` on every database. A database is ok when its worst check
    is ok or warning (critical, error and no_data fail it, as `venuedb check`'s exit code).

    Example: `venuedb fleet check --inventory fleet.toml --domain booking`."""

    def prepare(out: Output) -> Job:
        from toolkit.cli.check import parsed_timing
        from toolkit.fleet.jobs import check_job
        from toolkit.integrity import health_checks as health

        timeout_ms, _ = parsed_timing(timeout, None)
        override = health.window_option(window, None)
        chosen = health.select(health.load_checks(), names or [], domain)
        return check_job(chosen, override, timeout_ms, named=bool(names))

    _run("check", inventory, only, concurrency, keep_going, summary_file, json_output, prepare)


def status(
    inventory: Inventory,
    only: Only = None,
    concurrency: Concurrency = None,
    keep_going: KeepGoing = False,
    summary_file: SummaryFile = None,
    json_output: JsonFlag = False,
) -> None:
    """`venuedb status` on every database: revision per branch, pending revisions, last
    deployment. A database with an operation left half done fails.

    Example: `venuedb fleet status --inventory fleet.toml --only us-1 --only us-2`."""

    def prepare(out: Output) -> Job:
        from toolkit.fleet.jobs import status_job

        return status_job()

    _run("status", inventory, only, concurrency, keep_going, summary_file, json_output, prepare)


for _command in (apply, verify, check, status):
    app.command()(_command)


def _notes(out: Output) -> Callable[[str, str], None]:
    def note(name: str, message: str) -> None:
        out.note(f"{name}: {message}")

    return note


def _run(
    command: str,
    inventory_path: Path,
    only: list[str] | None,
    concurrency: int | None,
    keep_going: bool,
    summary_file: Path | None,
    json_output: bool,
    prepare: Callable[[Output], Job],
) -> None:
    """Check everything (inventory, options, the summary file's directory), then run the
    job on every selected database; print, write, exit."""
    from toolkit.fleet import inventory as inv
    from toolkit.fleet import runner
    from toolkit.read_once import project_files_fixed

    out = Output(json_output)
    with handled(out):
        fleet = inv.load(inventory_path)
        databases = fleet.select(only or [])
        limit = inv.check_concurrency(
            concurrency
            if concurrency is not None
            else fleet.concurrency or inv.DEFAULT_CONCURRENCY,
            "--concurrency",
        )
        if summary_file is not None and not summary_file.parent.is_dir():
            raise BadInput(f"--summary-file {summary_file}: no directory {summary_file.parent}")
        canaries = [d.name for d in databases if d.canary]
        # Every database is compared with the same project files: read once for all.
        with project_files_fixed():
            job = prepare(out)
            out.note(
                f"fleet {command}: {len(databases)} database(s) of {inventory_path}"
                + (f", canaries first: {', '.join(canaries)}" if canaries else "")
                + f"; {limit} at a time"
                + ("; --continue: every database runs" if keep_going else "; stops at a failure")
            )
            outcomes = runner.run(
                databases,
                job,
                concurrency=limit,
                keep_going=keep_going,
                on_finish=_progress_line(out, len(databases)),
            )
    ok = runner.fleet_ok(outcomes)
    word = "ok" if ok else "failed"
    facts = {
        "command": command,
        "inventory": str(inventory_path),
        "concurrency": limit,
        "databases": [o.to_dict() for o in outcomes],
        "summary": runner.summary(outcomes),
    }
    out.document(word, **facts)
    if summary_file is not None:
        summary_file.write_text(
            json.dumps({"status": word, **facts}, indent=2, default=str) + "\n", encoding="utf-8"
        )
    if not json_output:
        _print(out, command, outcomes)
    if not ok:
        raise typer.Exit(1)


def _progress_line(out: Output, total: int) -> Callable[[Outcome], None]:
    """One line on stderr per database as it finishes (not with --json)."""
    finished = 0

    def line(outcome: Outcome) -> None:
        nonlocal finished
        finished += 1
        if not out.as_json:
            out.err.print(
                f"[{finished}/{total}] {outcome.database.name}: {outcome.status} "
                f"({outcome.detail}) {outcome.duration_ms} ms",
                markup=False,
                highlight=False,
            )

    return line


def _print(out: Output, command: str, outcomes: list[Outcome]) -> None:
    from toolkit.fleet.runner import summary

    out.out.print(
        table(
            f"fleet {command}",
            ["database", "url", "status", "detail", "duration"],
            [
                [
                    o.database.name + (" (canary)" if o.database.canary else ""),
                    o.database.masked_url,
                    o.status if o.status == "ok" else o.status.upper(),
                    o.detail,
                    "" if o.duration_ms is None else f"{o.duration_ms} ms",
                ]
                for o in outcomes
            ],
        )
    )
    counts = summary(outcomes)
    out.line(
        f"fleet {command}: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, of {len(outcomes)}"
    )
