"""`venuedb assign`: auto-assign pending bookings, with progress and a summary."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer

from toolkit.cli.common import DatabaseUrl, JsonFlag, Output, handled, resolve_target, table


def assign(
    on: Annotated[
        str | None, typer.Option("--date", help="Only bookings on this day (YYYY-MM-DD).")
    ] = None,
    restaurant: Annotated[
        str | None, typer.Option(help="Only this restaurant (id or slug).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Assign at most this many bookings.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10,
            help="Workers on separate connections (at most "
            "FEATURE_ASSIGNMENT_PIPELINE_V3_MAX_PARALLEL; default 1).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Assign tables to pending bookings with the flags from `venuedb flags`.

    Route per booking: the V3 coordinator when FEATURE_ASSIGNMENT_PIPELINE_V3 is true and the
    restaurant is in its rollout (`venuedb flags rollout`; every restaurant when the flag has
    none), else the legacy path (with a shadow run of the coordinator when
    FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW is on). The flag false is a total kill switch: no
    booking takes V3, whatever the rollout says. FEATURE_COMBINATION_PLANNER is read the same
    way per restaurant: false, or a restaurant outside its rollout, plans single tables. One
    short transaction per step; bookings of one zone are serialised by an advisory lock.
    Exit 1 when a booking could not be assigned.
    """
    from toolkit.errors import BadInput
    from toolkit.venue.assign import Routing
    from toolkit.venue.flags import planner_options, resolve, value_of, warnings

    out = Output(json_output)
    with handled(out):
        try:
            day = date.fromisoformat(on) if on else None
        except ValueError:
            raise BadInput(f"--date {on!r} is not a date (YYYY-MM-DD)") from None
        resolved = resolve()
        options = planner_options(resolved)
        ceiling = value_of(resolved, "FEATURE_ASSIGNMENT_PIPELINE_V3_MAX_PARALLEL")
        if parallel is not None and parallel > ceiling:
            raise BadInput(
                f"--parallel {parallel} exceeds FEATURE_ASSIGNMENT_PIPELINE_V3_MAX_PARALLEL"
                f"={ceiling}; raise the flag first (seed 001: one step at a time)"
            )
        for caution in warnings(resolved):
            out.emit("warning", caution)
        routing = Routing(
            v3=value_of(resolved, "FEATURE_ASSIGNMENT_PIPELINE_V3"),
            shadow=value_of(resolved, "FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW"),
            parallel=parallel or 1,
        )
        target = resolve_target(database_url, out, writes="assign")
        summary = _run(out, target, options, routing, day, restaurant, limit)
        data = summary.to_dict()
        status = "ok" if summary.failed == 0 else "failed"
        out.document(status, options=options, **data)
        if not json_output:
            latency = data["latency_ms"]
            columns = [
                "bookings",
                "assigned",
                "combinations",
                "manual review",
                "failed",
                "retries",
                "lock contention",
                "confirmation rate",
                "p50 ms",
                "p95 ms",
                "p99 ms",
            ]
            row = [
                summary.considered,
                summary.assigned,
                summary.combinations,
                summary.manual_review,
                summary.failed,
                summary.retries,
                summary.lock_contention,
                data["confirmation_rate"],
                latency["p50"],
                latency["p95"],
                latency["p99"],
            ]
            out.out.print(table("Auto-assignment", columns, [row]))
            out.line(
                "paths: "
                + ", ".join(f"{k} {v}" for k, v in sorted(summary.paths.items()))
                + f"; workers {summary.workers}; outcomes: "
                + ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
            )
        if summary.failed:
            raise typer.Exit(1)


def _run(
    out: Output,
    target: Any,
    options: dict[str, Any],
    routing: Any,
    day: date | None,
    restaurant: str | None,
    limit: int | None,
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from toolkit.venue.assign import assign_pending

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=out.progress,
        transient=True,
        disable=out.as_json,
    ) as bar:
        task = bar.add_task("assigning", total=None)

        def progress(done: int, total: int, result: dict[str, Any]) -> None:
            bar.update(task, completed=done, total=total)

        return assign_pending(
            target,
            options,
            routing=routing,
            on=day,
            restaurant=restaurant,
            limit=limit,
            progress=progress,
            warn=lambda message: out.emit("warning", message),
        )
