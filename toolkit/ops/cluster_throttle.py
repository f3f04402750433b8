"""Slow down or pause batched work for the health of the whole cluster, not the primary's.

A backfill or a shadow-table copy that the primary absorbs easily can still leave every
hot standby seconds behind (each batch is WAL the standbys must replay) or flood the WAL
archive. Before each batch, the work asks `Throttle.wait_until_healthy`, which reads the
primary's own view of the cluster and waits while one of these is over its limit:

- replay lag: how long the oldest WAL a standby has not replayed has been waiting. The
  primary's `pg_stat_replication.replay_lag` alone cannot say it: it is measured when a
  standby reports progress, so a standby whose replay stopped keeps showing its last,
  small value. The throttle also keeps the primary's WAL position at each of its own
  samples; a standby whose replay position is behind the position of a sample taken at
  time t has been lagging at least since t. The larger of the two is the lag.
- WAL generation rate, over the last few seconds (bytes of WAL per second);
- an anti-wraparound autovacuum running on the table being changed (it must not be made
  to compete with the batches; it cannot be cancelled and holds back the whole cluster).

A paused run resumes when the lag is back under half its limit, so that it does not
flap at the limit. A standby that was streaming when the work started and is no longer
is reported and waited for (`standby_grace`), then the work goes on without it and the
report lists it: its lag can no longer be measured, and it will need the WAL the work
writes, or a rebuild.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.durations import human

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """0 switches a limit off. The defaults are documented in README, Cluster-aware throttling."""

    max_replica_lag: float = 1.0  # seconds
    max_wal_rate: float = 64.0 * MiB  # bytes per second over wal_window
    pause_for_wraparound_vacuum: bool = True
    standby_grace: float = 30.0  # seconds to wait for a standby that fell away
    wal_window: float = 5.0  # seconds the WAL rate is averaged over
    poll: float = 0.2  # seconds between two samples while waiting

    @property
    def watching(self) -> bool:
        return bool(self.max_replica_lag or self.max_wal_rate or self.pause_for_wraparound_vacuum)


OFF = Limits(0.0, 0.0, False, 0.0)

_limits = Limits()


def configure(limits: Limits) -> Limits:
    """The limits of the work this process runs next (a migration's shadow copy reads them);
    returns the previous ones, so a caller can put them back."""
    global _limits
    before, _limits = _limits, limits
    return before


def configured() -> Limits:
    return _limits


@dataclass
class Standby:
    name: str
    state: str
    replay_lsn: int | None
    replay_lag: float | None  # the primary's pg_stat_replication.replay_lag, seconds


@dataclass
class Sample:
    at: float  # time.monotonic()
    wal_lsn: int  # the primary's pg_current_wal_lsn() as a byte position
    standbys: dict[str, Standby]
    lsn_visible: bool  # False: this role cannot read the standbys' positions (pg_monitor)
    wraparound_vacuum: bool


@dataclass
class Verdict:
    """Why to wait now (None: go on), and what to report once."""

    wait: str | None = None
    sleep: float = 0.0
    lags: dict[str, float] = field(default_factory=dict)


Notify = Callable[[str], None]
ShouldStop = Callable[[], str | None]


_SAMPLE = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
       COALESCE((
         SELECT json_agg(json_build_object(
                  'name', application_name,
                  'state', state,
                  'replay', pg_wal_lsn_diff(replay_lsn, '0/0')::bigint,
                  'lag', extract(epoch FROM replay_lag)::float8))
         FROM pg_stat_replication), '[]'::json),
       EXISTS (
         SELECT 1 FROM pg_stat_progress_vacuum v
         JOIN pg_stat_activity a ON a.pid = v.pid
         WHERE v.relid = to_regclass(%(table)s)
           AND a.query LIKE '%%to prevent wraparound%%')
"""


def _lsn_value(value: Any) -> int | None:
    return int(value) if value is not None else None


class Throttle:
    """The cluster's health before each batch of work on `table` (schema-qualified)."""

    def __init__(self, table: str, limits: Limits, notify: Notify | None = None) -> None:
        self.table = table
        self.limits = limits
        self.notify = notify or (lambda _message: None)
        self.history: deque[tuple[float, int]] = deque(maxlen=20_000)
        self.baseline: set[str] | None = None
        self.lost: dict[str, float] = {}  # standby -> when it was first missed
        self.given_up: list[str] = []  # standbys the work went on without
        self.waited = 0.0  # seconds spent waiting, all reasons
        self.max_lag_seen = 0.0
        self.pauses = 0
        self._warned_invisible = False

    # -- reading the cluster -----------------------------------------------------------
    def sample(self, conn: Any) -> Sample:
        row = conn.execute(_SAMPLE, {"table": self.table}).fetchone()
        now = time.monotonic()
        wal_lsn = int(row[0])
        standbys = {
            str(s["name"]): Standby(
                str(s["name"]), str(s["state"]), _lsn_value(s["replay"]), s["lag"]
            )
            for s in row[1]
        }
        visible = all(s.replay_lsn is not None for s in standbys.values())
        self.history.append((now, wal_lsn))
        return Sample(now, wal_lsn, standbys, visible, bool(row[2]))

    def replay_lag(self, sample: Sample, standby: Standby) -> float:
        """Seconds the oldest WAL this standby has not replayed has waited (see module doc)."""
        reported = standby.replay_lag or 0.0
        if standby.replay_lsn is None or standby.replay_lsn >= sample.wal_lsn:
            return reported
        waiting_since = None
        for at, lsn in self.history:
            if lsn > standby.replay_lsn:
                waiting_since = at
                break
        estimated = sample.at - waiting_since if waiting_since is not None else 0.0
        return max(reported, estimated)

    def wal_rate(self, sample: Sample) -> float | None:
        window_start = sample.at - self.limits.wal_window
        oldest = None
        for at, lsn in self.history:
            if at >= window_start:
                oldest = (at, lsn)
                break
        if oldest is None or sample.at - oldest[0] < 0.25:
            return None
        return (sample.wal_lsn - oldest[1]) / (sample.at - oldest[0])

    # -- deciding ----------------------------------------------------------------------
    def judge(self, sample: Sample, paused: bool) -> Verdict:
        limits = self.limits
        verdict = Verdict()
        streaming = {n for n, s in sample.standbys.items() if s.state == "streaming"}
        if self.baseline is None:
            self.baseline = set(streaming)
        else:
            self.baseline |= streaming  # a standby added during the work is watched too
        for name in sorted(self.baseline - streaming):
            if name in self.given_up:
                continue
            first = self.lost.setdefault(name, sample.at)
            if first == sample.at:
                self.notify(f"standby {name} is no longer streaming from the primary")
            if sample.at - first < limits.standby_grace:
                left = limits.standby_grace - (sample.at - first)
                verdict.wait = f"standby {name} fell away: waiting up to {human(round(left, 1))}"
                return verdict
            self.given_up.append(name)
            self.notify(
                f"standby {name} did not come back within {human(limits.standby_grace)}: "
                "going on without it; it needs the WAL written from now on, or a rebuild"
            )
        for name in list(self.lost):
            if name in streaming:
                self.notify(f"standby {name} is streaming again")
                del self.lost[name]
                if name in self.given_up:
                    self.given_up.remove(name)
        if limits.max_replica_lag and streaming:
            if not sample.lsn_visible and not self._warned_invisible:
                self._warned_invisible = True
                self.notify(
                    "cannot read the standbys' replay positions (the role needs pg_monitor): "
                    "replica lag is not measured"
                )
            for name in sorted(streaming):
                lag = self.replay_lag(sample, sample.standbys[name])
                verdict.lags[name] = lag
                self.max_lag_seen = max(self.max_lag_seen, lag)
            worst = max(verdict.lags.items(), key=lambda item: item[1], default=None)
            # Resume below half the limit: a run that resumed at the limit would pause again
            # after one batch.
            bar = limits.max_replica_lag / 2 if paused else limits.max_replica_lag
            if worst is not None and worst[1] > bar:
                verdict.wait = (
                    f"standby {worst[0]} replay lag {human(round(worst[1], 3))} > "
                    f"{human(limits.max_replica_lag)}"
                )
                return verdict
        if limits.pause_for_wraparound_vacuum and sample.wraparound_vacuum:
            verdict.wait = f"an anti-wraparound autovacuum is running on {self.table}"
            return verdict
        if limits.max_wal_rate:
            rate = self.wal_rate(sample)
            if rate is not None and rate > limits.max_wal_rate:
                # Slow down rather than stop: rest until the window's average is at the limit.
                window_bytes = rate * limits.wal_window
                # At most 1 s at a time: the next batch's sample judges again.
                verdict.sleep = min(window_bytes / limits.max_wal_rate - limits.wal_window, 1.0)
                verdict.wait = (
                    f"WAL rate {rate / MiB:.1f} MiB/s > {limits.max_wal_rate / MiB:g} MiB/s"
                )
        return verdict

    def wait_until_healthy(self, conn: Any, should_stop: ShouldStop | None = None) -> str | None:
        """Block while the cluster is over a limit; None when the work may go on, or the
        reason `should_stop` gave to stop instead (a pause request, --max-duration)."""
        if not self.limits.watching:
            return None
        paused = False
        started = time.monotonic()
        while True:
            verdict = self.judge(self.sample(conn), paused)
            if verdict.wait is None:
                if paused:
                    self.waited += time.monotonic() - started
                    self.notify(f"resumed after {human(round(time.monotonic() - started, 1))}")
                return None
            if verdict.sleep and not paused:
                # A slow-down: one rest, then the next batch.
                self.notify(f"slowing down: {verdict.wait}")
                time.sleep(max(verdict.sleep, 0.0))
                self.waited += time.monotonic() - started
                return None
            if not paused:
                paused = True
                self.pauses += 1
                self.notify(f"paused: {verdict.wait}")
            reason = should_stop() if should_stop else None
            if reason:
                self.waited += time.monotonic() - started
                return reason
            time.sleep(self.limits.poll)

    def summary(self) -> dict[str, Any]:
        return {
            "pauses": self.pauses,
            "waited_seconds": round(self.waited, 3),
            "max_replica_lag_seconds": round(self.max_lag_seen, 3),
            "standbys_watched": sorted(self.baseline or ()),
            "standbys_lost": list(self.given_up),
        }
