"""A scrape as the Prometheus text exposition format, with exactly the metric names the
generated alert rules and the Grafana dashboard query (README "Exporter").

prometheus_client renders (escaping, number format); the families are built fresh from
each scrape, so a check, release or backfill that is gone is gone from the output too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from toolkit.integrity import health_checks as health

if TYPE_CHECKING:
    from toolkit.integrity.exporter import Snapshot

# The classic text format (what postgres_exporter and sql_exporter serve); every
# Prometheus version reads it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def up_family(up: bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "venuedb_up",
        "1 when the last scrape connected to the database and ran the health checks; 0 when "
        "it could not (then no other venuedb metric is served).",
        value=1.0 if up else 0.0,
    )


def check_families(
    results: list[health.CheckResult], windows: dict[str, float]
) -> list[GaugeMetricFamily]:
    """The checks' metrics; `venuedb check` could render the same from its results."""
    value = GaugeMetricFamily(
        "venuedb_check_value",
        "The value the health check measured (the number `venuedb check --json` reports); no "
        "sample when it measured nothing (no_data), errored, or does not apply here.",
        labels=["check", "domain", "unit"],
    )
    status = GaugeMetricFamily(
        "venuedb_check_status",
        "The health check's state, one sample per state (ok, warning, critical, error, "
        "no_data): 1 for the current one, 0 for the others.",
        labels=["check", "domain", "severity", "state"],
    )
    threshold = GaugeMetricFamily(
        "venuedb_check_threshold",
        "A threshold of the check file's header: the check is at `level` when its value `op` "
        "this number; `outside A..B` is two samples, op < A and op > B.",
        labels=["check", "level", "op"],
    )
    window = GaugeMetricFamily(
        "venuedb_check_window_seconds",
        "How far back the check looks, in seconds.",
        labels=["check"],
    )
    duration = GaugeMetricFamily(
        "venuedb_check_duration_seconds",
        "How long the check's query took in this scrape, in seconds.",
        labels=["check"],
    )
    for r in results:
        c = r.check
        if r.value is not None and r.applicable and r.status != "error":
            value.add_metric([c.name, c.domain, c.unit], float(r.value))
        for state in health.STATUSES:
            status.add_metric([c.name, c.domain, c.severity, state], float(r.status == state))
        for level, limit in (("warning", c.warning), ("critical", c.critical)):
            for op, number in limit.bounds() if limit else ():
                threshold.add_metric([c.name, level, op], number)
        if c.name in windows:
            window.add_metric([c.name], windows[c.name])
        duration.add_metric([c.name], r.ms / 1000)
    return [value, status, threshold, window, duration]


def families(snapshot: Snapshot) -> list[Metric]:
    if not snapshot.up:
        return [up_family(False)]
    out: list[Metric] = [up_family(True), *check_families(snapshot.results, snapshot.windows)]
    if snapshot.releases is not None:
        applied = GaugeMetricFamily(
            "venuedb_release_applied",
            "1 when every revision of the release (migrations/releases.toml) is applied, "
            "0 when some or none is.",
            labels=["release", "branch"],
        )
        for release in snapshot.releases:
            applied.add_metric(
                [release["release"], release["branch"]], float(release["state"] == "applied")
            )
        out.append(applied)
    if snapshot.last_deployment is not None:
        out.append(
            GaugeMetricFamily(
                "venuedb_last_deployment_timestamp_seconds",
                "When the newest deployment record that has ended (`venuedb records`) ended, "
                "in Unix seconds.",
                value=snapshot.last_deployment,
            )
        )
    if snapshot.backfills is not None:
        remaining = GaugeMetricFamily(
            "venuedb_backfill_rows_remaining",
            "Rows the backfill's `todo` predicate still selects that its run has not passed "
            "(what `venuedb backfill run NAME --dry-run` counts); no sample while its table "
            "or function does not exist.",
            labels=["backfill"],
        )
        ratio = GaugeMetricFamily(
            "venuedb_backfill_done_ratio",
            "Rows the backfill's current run did / (those + rows remaining): 0 not started, "
            "1 nothing left to do.",
            labels=["backfill"],
        )
        for b in snapshot.backfills:
            remaining.add_metric([b.name], float(b.remaining))
            ratio.add_metric([b.name], b.ratio)
        out += [remaining, ratio]
    return out


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def render(metrics: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return generate_latest(registry).decode("utf-8")


def render_snapshot(snapshot: Snapshot) -> str:
    return render(families(snapshot))
