"""`venuedb monitoring generate`: the Prometheus rules and Grafana dashboard of the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled

app = typer.Typer(
    help="Monitoring files generated from the check headers (sql/checks/*.sql).",
    no_args_is_help=True,
)


@app.command()
def generate(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare instead of writing; exit 3 naming the files that differ (for CI).",
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Write under this directory instead of the checkout.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Write monitoring/prometheus/venuedb-alerts.yml (Prometheus alerting rules: one per
    threshold of each check, for its `for:` header, with its runbook; VenuedbDown; an
    alert per check whose query errors for 15m) and monitoring/grafana/venuedb-dashboard.json
    (a Grafana dashboard: a row per domain, a panel per check with its thresholds), from
    the check headers alone. The files are committed: after changing a check file, run
    this and commit both.

    Exit 0 written or already current; 3 (`drift`) with --check when a file is missing or
    differs from what the headers give (nothing written); 2 on a malformed check file.
    """
    from toolkit.integrity import monitoring

    out = Output(json_output)
    with handled(out):
        if check:
            found = monitoring.compare(output_dir)
            differ = [d for d in found if d.state != "current"]
            out.document(
                "drift" if differ else "ok",
                files={str(d.path): d.state for d in found},
                differ=[str(d.path) for d in differ],
            )
            for d in found:
                out.line(f"{d.state:8} {d.path}")
            if differ:
                out.line(
                    f"{len(differ)} file(s) differ from the check headers: run "
                    "`venuedb monitoring generate` and commit them"
                )
                raise typer.Exit(3)
            out.line("monitoring files are current")
            return
        before = monitoring.write(output_dir)
        out.document("ok", files={str(d.path): d.state for d in before})
        for d in before:
            verb = "unchanged" if d.state == "current" else "wrote"
            out.line(f"{verb:9} {d.path}")
