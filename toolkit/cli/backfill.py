"""`venuedb backfill list | run | status | pause | resume`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table
from toolkit.cli.plans import PlanFlag
from toolkit.cli.progress_options import ProgressInterval, ProgressMode, reporting
from toolkit.cli.throttle_options import (
    DEFAULT_GRACE,
    DEFAULT_LAG,
    DEFAULT_WAL_RATE,
    MaxReplicaLag,
    MaxWalRate,
    StandbyGrace,
    ThrottleArgs,
    WraparoundVacuum,
)

app = typer.Typer(
    help="Batched, throttled, resumable data backfills declared in migrations/backfills.toml. "
    "One short transaction per batch; progress is kept in schema venuedb, so a killed run "
    "continues where it stopped.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The backfill's name (see `venuedb backfill list`).")]
# Bounds are checked before anything connects, so a bad value never reaches --restart.
MAX_BATCH = 50_000
MAX_ROWS = 10**12
BatchSize = Annotated[
    int,
    typer.Option(help="Rows per batch (one transaction each), 1 .. 50000."),
]
Sleep = Annotated[
    str,
    typer.Option(help="Pause between batches, e.g. 50ms, to leave room for traffic (0 .. 1min)."),
]
MaxRows = Annotated[
    int | None,
    typer.Option(help="Stop after this many rows (resumable), 1 .. 10^12."),
]
MaxDuration = Annotated[
    str | None, typer.Option(help="Stop after this long, e.g. 10m (resumable), 1s .. 168h.")
]
Adaptive = Annotated[
    bool,
    typer.Option(
        "--adaptive",
        help="Halve the batch when one takes longer than --target-batch, grow it back when fast.",
    ),
]
Target = Annotated[
    str,
    typer.Option(
        "--target-batch", help="Target duration of one batch for --adaptive (1ms .. 1min)."
    ),
]
LockTimeout = Annotated[
    str,
    typer.Option(
        help="lock_timeout per batch; a batch that waits longer is retried (1ms .. 1min)."
    ),
]
StatementTimeout = Annotated[
    str, typer.Option(help="statement_timeout per batch: 0 (none) or 1ms .. 24h.")
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Count the rows that would be touched; change nothing.")
]
Restart = Annotated[
    bool, typer.Option("--restart", help="Forget the progress and start from the first key.")
]


@app.command("list")
def list_(json_output: JsonFlag = False) -> None:
    """The declared backfills: name, table, key, batch function, what it does."""
    from toolkit.runbook.backfill import load_backfills

    out = Output(json_output)
    with handled(out):
        items = load_backfills()
        out.document("ok", backfills=[vars(b) for b in items])
        if not json_output:
            out.out.print(
                table(
                    "Backfills",
                    ["name", "table", "key", "function", "description"],
                    [[b.name, b.table, b.key, b.function, b.description] for b in items],
                )
            )
            if not items:
                out.line("no backfills declared")


@app.command()
def run(
    name: NameArg,
    database_url: DatabaseUrl = None,
    batch_size: BatchSize = 1000,
    sleep: Sleep = "0",
    max_rows: MaxRows = None,
    max_duration: MaxDuration = None,
    adaptive: Adaptive = False,
    target_batch: Target = "200ms",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "30s",
    dry_run: DryRun = False,
    restart: Restart = False,
    plan: PlanFlag = False,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
    max_replica_lag: MaxReplicaLag = DEFAULT_LAG,
    max_wal_rate: MaxWalRate = DEFAULT_WAL_RATE,
    pause_for_wraparound: WraparoundVacuum = True,
    standby_grace: StandbyGrace = DEFAULT_GRACE,
) -> None:
    """Run (or continue) a backfill. Exit 0 finished or stopped by a limit, 1 a batch failed,
    4 another runner holds it. --plan: the rows still to do and the batches it would take."""
    _run(
        name,
        database_url,
        batch_size,
        sleep,
        max_rows,
        max_duration,
        adaptive,
        target_batch,
        lock_timeout,
        statement_timeout,
        dry_run,
        restart,
        False,
        json_output,
        progress,
        progress_interval,
        plan,
        ThrottleArgs(max_replica_lag, max_wal_rate, pause_for_wraparound, standby_grace),
    )


@app.command()
def resume(
    name: NameArg,
    database_url: DatabaseUrl = None,
    batch_size: BatchSize = 1000,
    sleep: Sleep = "0",
    max_rows: MaxRows = None,
    max_duration: MaxDuration = None,
    adaptive: Adaptive = False,
    target_batch: Target = "200ms",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "30s",
    plan: PlanFlag = False,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
    max_replica_lag: MaxReplicaLag = DEFAULT_LAG,
    max_wal_rate: MaxWalRate = DEFAULT_WAL_RATE,
    pause_for_wraparound: WraparoundVacuum = True,
    standby_grace: StandbyGrace = DEFAULT_GRACE,
) -> None:
    """Continue a paused backfill from its last committed batch (--plan: from where, and
    the batches it would take)."""
    _run(
        name,
        database_url,
        batch_size,
        sleep,
        max_rows,
        max_duration,
        adaptive,
        target_batch,
        lock_timeout,
        statement_timeout,
        False,
        False,
        True,
        json_output,
        progress,
        progress_interval,
        plan,
        ThrottleArgs(max_replica_lag, max_wal_rate, pause_for_wraparound, standby_grace),
    )


@app.command()
def pause(name: NameArg, database_url: DatabaseUrl = None, json_output: JsonFlag = False) -> None:
    """Ask a running backfill to stop after its current batch (resume continues it)."""
    from toolkit.runbook.backfill import pause as request_pause

    out = Output(json_output)
    with handled(out):
        message = request_pause(resolve_target(database_url, out, writes="backfill pause"), name)
        out.line(f"{name}: {message}")
        out.document("ok", name=name, message=message)


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One backfill; default all.")] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Progress of each backfill: state, last key, rows done and changed, errors, percent
    done and ETA (at the run's rate since it started)."""
    from toolkit.runbook.backfill import status as get_status

    out = Output(json_output)
    with handled(out):
        entries = get_status(resolve_target(database_url, out), name)
        out.document("ok", backfills=entries)
        if not json_output:
            out.out.print(
                table(
                    "Backfill progress",
                    [
                        "name",
                        "state",
                        "rows",
                        "changed",
                        "batches",
                        "errors",
                        "last key",
                        "updated",
                        "done",
                        "ETA",
                    ],
                    [
                        [
                            e["name"],
                            e["state"],
                            e.get("rows_done"),
                            e.get("rows_changed"),
                            e.get("batches"),
                            e.get("errors"),
                            e.get("last_key"),
                            e.get("updated_at"),
                            _percent(e.get("percent")),
                            _eta(e),
                        ]
                        for e in entries
                    ],
                )
            )
            for e in entries:
                if e.get("note"):  # a run undone by a rollback: say why it shows not started
                    out.line(f"{e['name']}: {e['note']}")


def _run(
    name: str,
    database_url: str | None,
    batch_size: int,
    sleep: str,
    max_rows: int | None,
    max_duration: str | None,
    adaptive: bool,
    target_batch: str,
    lock_timeout: str,
    statement_timeout: str,
    dry_run: bool,
    restart: bool,
    resume: bool,
    json_output: bool,
    progress: str,
    progress_interval: str,
    plan: bool = False,
    throttle: ThrottleArgs | None = None,
) -> None:
    from toolkit import durations as d
    from toolkit.runbook.backfill import Options, find_backfill, run_recorded

    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        # Every value is checked before anything connects: --restart must not wipe
        # progress and then fail on a bad option.
        options = Options(
            batch_size=d.check_count(batch_size, 1, MAX_BATCH, option="--batch-size"),
            sleep=d.parse_bounded(sleep, d.SLEEP, option="--sleep"),
            max_rows=None
            if max_rows is None
            else d.check_count(max_rows, 1, MAX_ROWS, option="--max-rows"),
            max_duration=d.parse_bounded(max_duration, d.MAX_DURATION, option="--max-duration")
            if max_duration is not None
            else None,
            adaptive=adaptive,
            target_ms=d.parse_bounded(target_batch, d.TARGET_BATCH, option="--target-batch") * 1000,
            lock_timeout=d.parse_bounded(lock_timeout, d.LOCK_TIMEOUT, option="--lock-timeout"),
            statement_timeout=d.parse_bounded(
                statement_timeout, d.STATEMENT_TIMEOUT, option="--statement-timeout"
            ),
            dry_run=dry_run,
            restart=restart,
            resume=resume,
            limits=(throttle or ThrottleArgs()).limits(),
        )
        backfill = find_backfill(name)
        # A dry run only counts; a run, a resume and their plans are for the primary.
        writes = None if dry_run else f"backfill {'resume' if resume else 'run'}"
        target = resolve_target(database_url, out, writes=writes)
        if plan:
            from toolkit.cli.plans import show_backfill_plan

            show_backfill_plan(out, target, backfill, options)
            return
        report = run_recorded(target, backfill, options)
        out.document("ok", **report.to_dict())
        if json_output:
            return
        data = report.to_dict()
        if report.dry_run:
            out.line(f"{name}: {report.total} rows would be touched (dry run, nothing changed)")
            return
        if report.reset:
            out.line(f"{name}: the earlier run's progress was archived and reset: {report.reset}")
        out.line(
            f"{name}: {report.state}"
            + (f" ({report.stopped_by})" if report.stopped_by else "")
            + f"; {report.rows} rows, {report.changed} changed, {report.batches} batches, "
            f"{data['rows_per_second'] or 0:,.0f} rows/s, {report.retries} retries"
        )
        _say_throttle(out, report.throttle)


def _say_throttle(out: Output, summary: dict[str, Any] | None) -> None:
    """What the cluster made the run do; a standby lost on the way is never left unsaid."""
    if not summary:
        return
    watched = ", ".join(summary["standbys_watched"]) or "none streaming"
    out.line(
        f"cluster: standbys {watched}; max replica lag seen "
        f"{summary['max_replica_lag_seconds']:.3f}s; {summary['pauses']} pauses, "
        f"{summary['waited_seconds']:.1f}s waited"
    )
    for name in summary["standbys_lost"]:
        out.line(
            f"WARNING: standby {name} fell away during the run and did not come back: it needs "
            "the WAL written since, or a rebuild"
        )


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f} %"


def _eta(entry: dict[str, Any]) -> str | None:
    """The ETA column: only a run that is under way or can resume has one."""
    from toolkit.progress import seconds_text

    if entry.get("eta_seconds") is None or entry.get("state") == "finished":
        return None
    return seconds_text(entry["eta_seconds"])
