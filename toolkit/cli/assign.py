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
    database_url: DatabaseUrl = None,
    json_output: JsonFlag = False,
) -> None:
    """Assign tables to pending bookings with the planner flags from `venuedb flags`.

    One short transaction per booking; bookings in one zone are serialised by an
    advisory lock (contention is recorded as a zone_lock_conflict event). Exit 1 when a
    booking could not be assigned.
    """
    from toolkit.errors import BadInput
    from toolkit.flags import planner_options

    out = Output(json_output)
    with handled(out):
        try:
            day = date.fromisoformat(on) if on else None
        except ValueError:
            raise BadInput(f"--date {on!r} is not a date (YYYY-MM-DD)") from None
        options = planner_options()
        target = resolve_target(database_url, out)
        summary = _run(out, target, options, day, restaurant, limit)
        data = summary.to_dict()
        status = "ok" if summary.failed == 0 else "failed"
        out.document(status, options=options, **data)
        if not json_output:
            latency = data["latency_ms"]
            out.out.print(
                table(
                    "Auto-assignment",
                    [
                        "bookings",
                        "assigned",
                        "combinations",
                        "failed",
                        "p50 ms",
                        "p95 ms",
                        "max ms",
                    ],
                    [
                        [
                            summary.considered,
                            summary.assigned,
                            summary.combinations,
                            summary.failed,
                            latency["p50"],
                            latency["p95"],
                            latency["max"],
                        ]
                    ],
                )
            )
            if summary.outcomes:
                out.line(
                    "outcomes: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
                )
        if summary.failed:
            raise typer.Exit(1)


def _run(
    out: Output,
    target: object,
    options: dict,
    day: date | None,
    restaurant: str | None,
    limit: int | None,
):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from toolkit.assign import assign_pending

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
            on=day,
            restaurant=restaurant,
            limit=limit,
            progress=progress,
        )
