"""`venuedb rollout RELEASE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import (
    DatabaseUrl,
    JsonFlag,
    Output,
    YesFlag,
    handled,
    require_tty_or_yes,
    resolve_target,
)
from toolkit.cli.lint import SkipLint
from toolkit.cli.migrations import Actor, LockTimeout, LockWait, Retries, StatementTimeout
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


def rollout(
    release: Annotated[
        str, typer.Argument(help="The release to roll out (see `venuedb history`).")
    ],
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the steps without doing them.")
    ] = False,
    yes: YesFlag = False,
    backup_dir: Annotated[Path, typer.Option(help="Where the pre-rollout backup goes.")] = Path(
        "backups"
    ),
    records_dir: Annotated[
        Path, typer.Option(help="Where the Markdown deployment record goes.")
    ] = Path("deployments"),
    lock_wait: LockWait = "30s",
    lock_timeout: LockTimeout = "1s",
    statement_timeout: StatementTimeout = "0",
    retries: Retries = 3,
    actor: Actor = None,
    skip_lint: SkipLint = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
    progress: ProgressMode = "auto",
    progress_interval: ProgressInterval = "5s",
    max_replica_lag: MaxReplicaLag = DEFAULT_LAG,
    max_wal_rate: MaxWalRate = DEFAULT_WAL_RATE,
    pause_for_wraparound: WraparoundVacuum = True,
    standby_grace: StandbyGrace = DEFAULT_GRACE,
) -> None:
    """Execute a release's runbook: pre-flight, backup, apply revision by revision with
    postconditions checked after each (stops at the first failure, the database left at
    the last good revision), the release's backfills, health checks, and a deployment
    record in the database and as Markdown (seed 002's template, seed 003's artifacts).

    Outcome SUCCESS (exit 0) only when every step held. A critical or errored health
    check after the migration makes it FAILED (exit 1; JSON "status": "failed"): the
    revisions stay applied, the failing checks are named with their values, and the
    runbook says what next. Warning and no_data checks are listed, not failing. Exit 1
    also when a pre-flight check or a postcondition stops it, 2 on bad input (unknown
    or out-of-order release), 4 when another deploy holds the lock.

    After pre-flight, squawk lints the pending revisions: an unjustified finding stops the
    rollout before the backup, nothing changed (exit 1, lint_failed), unless --skip-lint
    REASON, recorded with the findings.

    --lock-wait, --lock-timeout, --statement-timeout and --retries mean what they mean for
    `venuedb apply`, for every revision the rollout applies; the cluster-aware throttle's
    options hold for its shadow copies and its backfills.

    Run on a release that is already applied, it applies nothing: it restores the piece a
    rollback level 2 removed (`venuedb rollback RELEASE --level 2`), runs the release's
    backfills that are not finished, and reruns the checks."""
    from toolkit.cli.lint import gate, refuse, skip_reason
    from toolkit.cli.migrations import run_options
    from toolkit.integrity.lint_gate import LintRefused
    from toolkit.runbook.release_rollout import plan as plan_steps
    from toolkit.runbook.release_rollout import rollout as run_rollout

    out = Output(json_output)
    with handled(out), reporting(progress, progress_interval):
        reason = skip_reason(skip_lint)
        # As apply parses them: a bad value is refused before anything connects.
        options = run_options(
            lock_wait,
            lock_timeout,
            statement_timeout,
            retries,
            actor,
            throttle=ThrottleArgs(
                max_replica_lag, max_wal_rate, pause_for_wraparound, standby_grace
            ),
        )
        target = resolve_target(database_url, out, writes="rollout")
        steps = plan_steps(target, release)
        if plan:
            out.document("ok", release=release, plan=steps)
            for number, step in enumerate(steps, 1):
                out.line(f"{number}. {step}")
            return
        out.progress.print(f"rollout of {release}: {len(steps)} steps", markup=False)
        require_tty_or_yes(
            yes, "rollout", lambda: typer.confirm(f"Roll out {release}?", default=False)
        )
        options.lint_gate = gate(reason, out)
        try:
            result = run_rollout(
                target,
                release,
                backup_dir=backup_dir,
                records_dir=records_dir,
                options=options,
                emit=out.emit,
            )
        except LintRefused as exc:
            refuse(out, exc)
        failed = result["failed_checks"]
        out.document("failed" if failed else "ok", **result)
        out.line(f"{release}: {result['outcome']}; record {result['record']}")
        if failed:
            out.line(result["next"])
            raise typer.Exit(1)
