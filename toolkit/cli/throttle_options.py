"""The cluster-aware throttle's options, shared by backfill run/resume, apply and rollout.

Each is one Annotated alias (typer has no option groups); `limits_from` checks every
value before anything connects and returns toolkit.ops.cluster_throttle.Limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from toolkit import durations as d
from toolkit.ops.cluster_throttle import Limits
from toolkit.sizes import parse_rate

LAG = d.Bounds(0.01, 3600.0, zero_allowed=True)
GRACE = d.Bounds(0.0, 3600.0)
PANEL = "Cluster-aware throttling"

MaxReplicaLag = Annotated[
    str,
    typer.Option(
        "--max-replica-lag",
        help="Pause while a hot standby (pg_stat_replication on the primary) has not "
        "replayed WAL older than this; resume under half of it. 0 (off) or 10ms .. 1h.",
        rich_help_panel=PANEL,
    ),
]
MaxWalRate = Annotated[
    str,
    typer.Option(
        "--max-wal-rate",
        help="Slow down while the primary writes WAL faster than this, averaged over 5 s "
        "(e.g. 16MB/s; 0: no limit).",
        rich_help_panel=PANEL,
    ),
]
WraparoundVacuum = Annotated[
    bool,
    typer.Option(
        "--pause-for-wraparound/--ignore-wraparound",
        help="Pause while an anti-wraparound autovacuum runs on the table being changed.",
        rich_help_panel=PANEL,
    ),
]
StandbyGrace = Annotated[
    str,
    typer.Option(
        "--standby-grace",
        help="A standby that stops streaming is reported and waited for this long (0 .. 1h), "
        "then the work goes on without it and says so.",
        rich_help_panel=PANEL,
    ),
]

DEFAULT_LAG = "1s"
DEFAULT_WAL_RATE = "64MB/s"
DEFAULT_GRACE = "30s"


@dataclass(frozen=True)
class ThrottleArgs:
    """The options as given; `limits()` checks them (inside the command's error handling)."""

    max_replica_lag: str = DEFAULT_LAG
    max_wal_rate: str = DEFAULT_WAL_RATE
    pause_for_wraparound: bool = True
    standby_grace: str = DEFAULT_GRACE

    def limits(self) -> Limits:
        return Limits(
            max_replica_lag=d.parse_bounded(self.max_replica_lag, LAG, option="--max-replica-lag"),
            max_wal_rate=parse_rate(self.max_wal_rate, option="--max-wal-rate"),
            pause_for_wraparound_vacuum=self.pause_for_wraparound,
            standby_grace=d.parse_bounded(self.standby_grace, GRACE, option="--standby-grace"),
        )
