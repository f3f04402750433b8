"""`venuedb exporter`: the health checks and the deployment state as a Prometheus endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.common import DatabaseUrl, Output, handled, resolve_target
from toolkit.integrity.exporter_defaults import DEFAULT_LISTEN, DEFAULT_PORT

if TYPE_CHECKING:
    from toolkit.integrity.exporter_http import ExporterServer


def exporter(
    listen: Annotated[
        str,
        typer.Option(
            help=f"Where to serve: HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT} (this host only), "
            f":{DEFAULT_PORT} (every interface), [::1]:{DEFAULT_PORT}; port 0 picks a free one "
            "and prints it. A bad value or a port in use exits 2 with nothing started."
        ),
    ] = DEFAULT_LISTEN,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Print one scrape to stdout and exit (cron, CI, a node_exporter textfile); "
            "the exit code is `venuedb check`'s for the same results, 2 when the database "
            "could not be reached.",
        ),
    ] = False,
    timeout: Annotated[
        str,
        typer.Option(
            help="statement_timeout per check, with its unit: 500ms, 5s (1ms .. 24h, as `check`)."
        ),
    ] = "5s",
    database_url: DatabaseUrl = None,
) -> None:
    """Serve /metrics for Prometheus until SIGTERM or Ctrl-C (postgres_exporter's way).

    Each request to /metrics runs every check of sql/checks/ (read-only, each under its
    statement timeout) and reads the applied releases, the last deployment record and the
    backfills' progress, then answers; the transactions end and the connections close
    before the answer, so nothing stays open between scrapes (sessions show as
    application_name 'venuedb exporter'). One scrape runs at a time: a request that
    arrives meanwhile waits for it and gets its result.

    Metrics: venuedb_up; venuedb_check_value{check,domain,unit} (no sample without a
    value: no_data, error, not applicable); venuedb_check_status{check,domain,severity,state}
    (1 for the current state of ok|warning|critical|error|no_data, 0 for the others);
    venuedb_check_threshold{check,level,op}; venuedb_check_window_seconds{check};
    venuedb_check_duration_seconds{check}; venuedb_release_applied{release,branch};
    venuedb_last_deployment_timestamp_seconds; venuedb_backfill_rows_remaining{backfill};
    venuedb_backfill_done_ratio{backfill}.

    The database down or unreachable: /metrics still answers 200 with venuedb_up 0 and
    nothing else, and the next scrape connects again. The default port 19187 is outside
    the range Prometheus allocates to public exporters (9100-9999: postgres_exporter 9187,
    sql_exporter 9399), as Prometheus advises for internal ones. In prometheus.yml:

    \b
        scrape_configs:
          - job_name: venuedb
            static_configs: [{targets: ["db-host:19187"]}]

    Exit codes: serving, 0 after SIGTERM or Ctrl-C; 2 a bad --listen, a port in use, a
    malformed check file, a --timeout without its unit, no database named. With --once:
    0 every check ok or warning, 1 a check critical or errored, 5 checks without data (see
    `venuedb check --help`), 2 the database could not be reached.
    """
    from toolkit.integrity import health_checks as checks
    from toolkit.integrity.exporter import Exporter, log_to_stderr
    from toolkit.integrity.exporter_http import bind, parse_listen
    from toolkit.integrity.metrics_text import render_snapshot
    from toolkit.runbook import backfill

    out = Output(False)
    with handled(out):
        from toolkit import durations as d

        timeout_ms = d.to_milliseconds(
            d.parse_bounded(timeout, d.CHECK_TIMEOUT, option="--timeout")
        )
        if not once:
            parse_listen(listen)  # refused before anything is read or reached
        every = checks.load_checks()
        declared = backfill.load_backfills()
        target = resolve_target(database_url, out)
        service = Exporter(target, every, declared, timeout_ms=timeout_ms, log=log_to_stderr)
        if once:
            snapshot = service.scrape()
            typer.echo(render_snapshot(snapshot), nl=False)
            if snapshot.exit_code:
                raise typer.Exit(snapshot.exit_code)
            return
        server = bind(service, listen)
    _serve(server)


def _serve(server: ExporterServer) -> None:
    """Serve until SIGTERM or SIGINT; a scrape in flight finishes before the exit."""
    import signal
    import threading

    from toolkit.integrity.exporter import log_to_stderr

    stopped_by: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return: not from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log_to_stderr(
        f"serving {server.url}/metrics for {server.exporter.target.masked} "
        f"({len(server.exporter.checks)} checks)"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log_to_stderr(f"stopped ({', '.join(stopped_by) or 'server closed'})")
