"""`venuedb check`: the health checks of sql/checks/ with their thresholds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.common import DatabaseUrl, Output, handled, resolve_target, table

if TYPE_CHECKING:
    from toolkit.integrity.health_checks import CheckResult, Duration, HealthCheck

# The options `venuedb fleet check` shares, with the same meaning.
CheckNames = Annotated[
    list[str] | None,
    typer.Argument(
        help="Check names (file names in sql/checks/); default all.", show_default=False
    ),
]
Domain = Annotated[
    str | None,
    typer.Option(
        help="Only checks of this domain (booking, bar or core); an unknown domain exits 2."
    ),
]
Window = Annotated[
    str | None,
    typer.Option(
        help="Look back this far in every check instead of its own window (its `window:` "
        "header, else 1d): a whole number with s, m, h or d, e.g. 10m, 1h, 7d. Checks "
        "that look at every row (an orphan is an orphan however old) have no window.",
        show_default=False,
    ),
]
CheckTimeout = Annotated[
    str,
    typer.Option(help="statement_timeout per check, with its unit: 500ms, 5s, 1m (1ms .. 24h)."),
]


def check(
    names: CheckNames = None,
    domain: Domain = None,
    window: Window = None,
    days: Annotated[
        int | None,
        typer.Option(help="Same as --window Nd (not with --window).", show_default=False),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--format", help="table, json or prometheus (node_exporter textfile format)."),
    ] = "table",
    json_output: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    timeout: CheckTimeout = "5s",
    watch: Annotated[
        str | None,
        typer.Option(
            help="Repeat every so often (for a terminal), with its unit: 10s, 1m (1s .. 24h).",
            show_default=False,
        ),
    ] = None,
    list_checks: Annotated[
        bool, typer.Option("--list", help="List the checks and their thresholds.")
    ] = False,
    explain: Annotated[
        str | None, typer.Option("--explain", help="Show one check's SQL, thresholds and runbook.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the health checks read-only, each under its own statement timeout.

    Status per check: ok, warning, critical, error (SQL error or timeout: the others
    still run), or no_data (the query returned no row or NULL, e.g. a rate over zero
    events: nothing was measured). A check file may declare that no data is fine
    (header `no_data: ok, <why>`): it is then ok with a null value and a note. The
    summary line counts each status.

    Each check looks back over its own window, the seed's alert window (`venuedb check
    --list` shows them): confirmation_rate the last 5 minutes, manual_review_rate the last
    day. `--window 1h` makes every check look back one hour, e.g. to read a quiet night
    over a longer span; the output shows the window each check ran with.

    Exit 0 when every check is ok or warning; 1 when any is critical or errored; 5 when
    none is but some had no data, a check named here does not apply to this database, or
    no selected check applies (nothing was checked); 2 on bad input (unknown check or
    domain, which lists the valid ones; a choice that selects no check; a malformed check
    file; a --window that is not a positive duration, or both --window and --days; a
    --timeout or --watch without its unit), with nothing run.
    """
    from toolkit.integrity import health_checks as health

    fmt = "json" if json_output else output_format
    out = Output(fmt == "json")
    with handled(out):
        if fmt not in ("table", "json", "prometheus"):
            from toolkit.errors import BadInput

            raise BadInput(f"--format must be table, json or prometheus, not {fmt!r}")
        timeout_ms, every_seconds = parsed_timing(timeout, watch)
        override = health.window_option(window, days)
        every = health.load_checks()
        if list_checks or explain:
            _describe(out, every, explain)
            return
        chosen = health.select(every, names or [], domain)
        target = resolve_target(database_url, out)
        while True:
            results = health.run_checks(target, chosen, window=override, timeout_ms=timeout_ms)
            status = health.overall(results, named=bool(names))
            if fmt == "prometheus":
                typer.echo(health.prometheus(results), nl=False)
            elif fmt == "json":
                out.document(status, **health.report(results, override))
            else:
                _render(out, results, override)
            if every_seconds is None:
                break
            time.sleep(every_seconds)
        code = health.exit_code(status)
        if code:
            raise typer.Exit(code)


def parsed_timing(timeout: str, watch: str | None) -> tuple[int, float | None]:
    """--timeout in whole ms for SET statement_timeout, and --watch in seconds (or None)."""
    from toolkit import durations as d

    seconds = d.parse_bounded(timeout, d.CHECK_TIMEOUT, option="--timeout")
    every = None if watch is None else d.parse_bounded(watch, d.WATCH, option="--watch")
    return d.to_milliseconds(seconds), every


def _render(out: Output, results: list[CheckResult], override: Duration | None) -> None:
    from toolkit.integrity.health_checks import summary

    rows = []
    for r in results:
        shown = "-" if r.value is None else f"{r.value:g}"
        limits = " / ".join(
            t
            for t in (
                r.check.warning and f"warn {r.check.warning.text}",
                r.check.critical and f"crit {r.check.critical.text}",
            )
            if t
        )
        rows.append(
            [
                r.status.replace("_", " ").upper() if r.status != "ok" else "ok",
                r.check.name,
                shown,
                r.check.unit,
                r.window.text if r.window else "all rows",
                limits,
                r.error or r.note or "",
            ]
        )
    title = (
        f"Health checks (window {override.text} for every check)"
        if override
        else "Health checks (each over its own window)"
    )
    out.out.print(
        table(title, ["status", "check", "value", "unit", "window", "thresholds", "detail"], rows)
    )
    for r in results:
        if r.status in ("warning", "critical") and r.rows:
            out.line(f"{r.check.name}: first rows: {r.rows}")
        if r.status in ("warning", "critical", "error"):
            out.line(f"{r.check.name}: read {r.check.runbook}")
    out.line(summary(results))
    if any(r.status == "no_data" for r in results):
        out.line(
            "no data: nothing was measured by those checks, so they do not say all is well "
            "(try a wider --window, e.g. --window 1h, or check that the events they count are "
            "written)"
        )


def _describe(out: Output, every: list[HealthCheck], name: str | None) -> None:
    if name:
        from toolkit.integrity.health_checks import select

        (c,) = select(every, [name], None)
        out.document(
            "ok",
            name=c.name,
            sql=c.sql,
            thresholds=c.thresholds(),
            runbook=c.runbook,
            description=c.description,
            domain=c.domain,
            no_data_ok=c.no_data_ok,
            window=_window_text(c),
            **{"for": c.for_.text},
        )
        out.line(f"{c.name} ({c.domain}, {c.severity}): {c.description}")
        out.line(f"thresholds: {c.thresholds()}; unit: {c.unit}; returns: {c.returns}")
        out.line(f"window: {_window_text(c) or 'none (every row)'}; alert after: {c.for_.text}")
        out.line(
            f"no data: ok ({c.no_data_ok})"
            if c.no_data_ok
            else "no data: status no_data (exit 5 unless a check is critical or errored)"
        )
        out.line(f"runbook: {c.runbook}\n\n{c.sql}")
        return
    out.document(
        "ok",
        checks=[
            {
                "name": c.name,
                "domain": c.domain,
                "severity": c.severity,
                "thresholds": c.thresholds(),
                "unit": c.unit,
                "window": _window_text(c),
                "for": c.for_.text,
                "no_data_ok": c.no_data_ok,
                "description": c.description,
                "runbook": c.runbook,
            }
            for c in every
        ],
    )
    if out.as_json:
        return
    out.out.print(
        table(
            "Health checks",
            [
                "check",
                "domain",
                "severity",
                "warning",
                "critical",
                "unit",
                "window",
                "for",
                "description",
            ],
            [
                [
                    c.name,
                    c.domain,
                    c.severity,
                    c.warning and c.warning.text,
                    c.critical and c.critical.text,
                    c.unit,
                    _window_text(c) or "all rows",
                    c.for_.text,
                    c.description,
                ]
                for c in every
            ],
        )
    )


def _window_text(check: HealthCheck) -> str | None:
    window = check.effective_window()
    return window.text if window else None
