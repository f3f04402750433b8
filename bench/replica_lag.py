"""The server_id backfill of 1,000,000 sales with one hot standby: its replay lag without
the cluster-aware throttle and with it, and what the throttle costs in throughput.

    .venv/bin/python -m bench.replica_lag [--scale 1.0] [--seed 1] [--batch-size 2000]
                                          [--max-replica-lag 1s]

The benchmark server (bench/common.py) gets a standby of its own (toolkit.server.replicas,
in .venuedb/bench/replicas/1: pg_basebackup, streaming replication, same settings). The
data is bench/data/bar.py at all heads (server_id NULL everywhere), built once into
venuedb_bench_replica_lag_template and copied for each run with STRATEGY FILE_COPY (a
WAL_LOG copy would send the whole database through the standby's replay first).

Each run: a fresh copy, the standby caught up, a CHECKPOINT, then `sales_server_id`
through toolkit.runbook.backfill as `venuedb backfill run` runs it: once with the throttle
off, once with its limits (--max-replica-lag, the WAL rate and wraparound defaults).
Beside it a sampler reads, every 50 ms, the primary's WAL position and the standby's
replay position; the replay lag at a sample is how long ago the primary first wrote
past the position the standby has replayed (0 when caught up): the age of the oldest
WAL the standby lacks, independent of the throttle's own estimate.

Targets (issue 22): replay lag p99 < 1 s with throttling, and its throughput >= 50 %
of the unthrottled run's.

Then, for comparison (--stall SECONDS, default 10; 0 skips them), both again with the
standby's replay paused 5 s into the run for that long, as a long query or a slow disk
would hold it back: its lag grows the same either way while replay is stopped, so these
rows show what the throttle changes, the WAL that piles up behind the standby
(behind_max_mb) and how long it takes to catch up once replay resumes.
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import psycopg

from bench.common import (
    BackgroundLoop,
    Goal,
    as_comparison,
    bench_server,
    percentile,
    report,
    settle,
)
from bench.data.bar import prepare
from bench.options import scaled_parser
from toolkit.durations import parse_seconds
from toolkit.ops.cluster_throttle import OFF, Limits
from toolkit.runbook.backfill import Options, find_backfill, run
from toolkit.server.connection import Target, scalar
from toolkit.server.embedded import EmbeddedServer
from toolkit.server.replicas import Standby
from toolkit.server.urls import with_database

TEMPLATE = "venuedb_bench_replica_lag_template"
COPY = "venuedb_bench_replica_lag"
BACKFILL = "sales_server_id"
TARGET_P99_S = 1.0
TARGET_THROUGHPUT_SHARE = 0.5


@dataclass
class LagSampler(BackgroundLoop):
    """(time, primary WAL position) and (time, standby replay position) every `interval`."""

    primary_url: str
    standby_url: str
    interval: float = 0.05
    written: list[tuple[float, int]] = field(default_factory=list)
    replayed: list[tuple[float, int]] = field(default_factory=list)

    def loop(self, stop: threading.Event) -> None:
        with (
            psycopg.connect(self.primary_url, autocommit=True) as primary,
            psycopg.connect(self.standby_url, autocommit=True) as standby,
        ):
            while not stop.is_set():
                self.written.append(
                    (
                        time.monotonic(),
                        int(scalar(primary, "SELECT pg_current_wal_lsn() - '0/0'")),
                    )
                )
                self.replayed.append(
                    (
                        time.monotonic(),
                        int(scalar(standby, "SELECT pg_last_wal_replay_lsn() - '0/0'")),
                    )
                )
                stop.wait(self.interval)

    def behind_bytes(self, since: float, until: float) -> list[int]:
        """WAL written but not replayed at each sample in [since, until)."""
        return [
            max(w - r, 0)
            for (at, w), (_, r) in zip(self.written, self.replayed, strict=False)
            if since <= at < until
        ]

    def caught_up_at(self, since: float) -> float | None:
        """The first sample at or after `since` at which the standby had replayed all the
        primary had written at the sample before."""
        for i in range(1, len(self.replayed)):
            if self.replayed[i][0] >= since and self.replayed[i][1] >= self.written[i - 1][1]:
                return self.replayed[i][0]
        return None

    def lags(self, since: float, until: float) -> list[float]:
        """The replay lag at each standby sample in [since, until), in seconds."""
        result = []
        first = 0
        for at, position in self.replayed:
            if not since <= at < until:
                continue
            # The first primary sample past `position`: since then WAL has waited.
            while first < len(self.written) and self.written[first][1] <= position:
                first += 1
            behind = [w for w in self.written[first:] if w[0] <= at]
            result.append(at - behind[0][0] if behind else 0.0)
        return result


def caught_up(primary_url: str, standby_url: str, timeout: float = 600.0) -> float:
    """Wait until the standby replayed all the primary has written; the seconds it took.
    Both URLs name a database both servers have (postgres): the copy under measurement may
    not have reached the standby yet."""
    started = time.monotonic()
    with psycopg.connect(primary_url, autocommit=True) as primary:
        target = str(scalar(primary, "SELECT pg_current_wal_lsn()"))
    with psycopg.connect(standby_url, autocommit=True) as standby:
        while not scalar(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the standby did not catch up with {target}")
            time.sleep(0.05)
    return time.monotonic() - started


@dataclass
class ReplayStall(BackgroundLoop):
    """A standby hiccup: replay paused `after` seconds into the run, for `hold` seconds
    (as a long query holding back replay, or a slow disk, would)."""

    standby_url: str
    after: float = 5.0
    hold: float = 10.0
    resumed_at: float | None = None

    def loop(self, stop: threading.Event) -> None:
        with psycopg.connect(self.standby_url, autocommit=True) as standby:
            if stop.wait(self.after):
                return
            standby.execute("SELECT pg_wal_replay_pause()")
            stop.wait(self.hold)
            standby.execute("SELECT pg_wal_replay_resume()")
            self.resumed_at = time.monotonic()


def streaming_standby(server: EmbeddedServer) -> Standby:
    """The benchmark server's standby, started; rebuilt when it cannot stream any more (no
    replication slot: the WAL it needed since its last run may be recycled)."""
    standby = Standby(server, 1)
    standby.start()
    deadline = time.monotonic() + 30
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        while time.monotonic() < deadline:
            if scalar(
                conn,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s "
                "AND state = 'streaming'",
                (standby.name,),
            ):
                return standby
            time.sleep(0.2)
    print(f"{standby.name} does not stream: rebuilding it")
    standby.remove()
    standby = Standby(server, 1)
    standby.start()
    return standby


def measure(
    variant: str, limits: Limits, args: argparse.Namespace, standby: Standby, stall: bool = False
) -> dict:
    url = clone_database_file_copy(TEMPLATE, COPY)
    standby_url = with_database(standby.url("postgres"), COPY)
    admins = (bench_server().url("postgres"), standby.url("postgres"))
    caught_up(*admins)
    settle()
    caught_up(*admins)
    sampler = LagSampler(url, standby_url)
    hiccup = ReplayStall(standby.url("postgres"), hold=args.stall)
    with sampler.running():
        time.sleep(0.5)
        started = time.monotonic()
        with hiccup.running() if stall else nullcontext():
            outcome = run(
                Target(url, "bench"),
                find_backfill(BACKFILL),
                Options(batch_size=args.batch_size, limits=limits),
            )
        finished = time.monotonic()
        drained = caught_up(*admins)
        time.sleep(0.2)
    lags = sorted(sampler.lags(started, finished))
    behind = sampler.behind_bytes(started, finished)
    seconds = finished - started
    throttle = outcome.throttle or {}
    catch_up = None
    if stall and hiccup.resumed_at is not None:
        at = sampler.caught_up_at(hiccup.resumed_at)
        catch_up = round(at - hiccup.resumed_at, 2) if at is not None else None
    return {
        "variant": variant,
        "rows": outcome.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(outcome.rows / seconds) if seconds else 0,
        "lag_p50_s": round(percentile(lags, 50), 3),
        "lag_p99_s": round(percentile(lags, 99), 3),
        "lag_max_s": round(lags[-1], 3) if lags else 0.0,
        "behind_max_mb": round(max(behind, default=0) / 2**20, 1),
        "drain_after_s": round(drained, 2),
        "catch_up_after_stall_s": catch_up if stall else "-",
        "pauses": throttle.get("pauses", 0),
        "waited_s": throttle.get("waited_seconds", 0.0),
        "state": outcome.state,
    }


def clone_database_file_copy(template: str, name: str) -> str:
    admin = bench_server().url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return with_database(admin, name)


def main() -> None:
    parser = scaled_parser(__doc__)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--max-replica-lag", default="1s")
    parser.add_argument(
        "--stall",
        type=float,
        default=10.0,
        help="seconds the standby's replay is paused in the stall variants (0: no such runs)",
    )
    args = parser.parse_args()
    server = bench_server()
    prepare(TEMPLATE, scale=args.scale, seed=args.seed, reuse=True)
    standby = streaming_standby(server)
    try:
        caught_up(server.url("postgres"), standby.url("postgres"))
        throttled = Limits(max_replica_lag=parse_seconds(args.max_replica_lag, option="lag"))
        rows = [
            measure("unthrottled", OFF, args, standby),
            measure(f"throttled (lag {args.max_replica_lag})", throttled, args, standby),
        ]
        if args.stall:
            # What the throttle is for: a standby that falls behind. Its lag grows the
            # same either way while replay is stopped; what differs is how much WAL piles
            # up behind it and how long it takes to catch up once replay resumes.
            stalled = f"replay stalled {args.stall:g} s"
            for variant, limits in (
                (f"unthrottled, {stalled}", OFF),
                (f"throttled, {stalled}", throttled),
            ):
                rows.append(as_comparison(measure(variant, limits, args, standby, stall=True)))
    finally:
        standby.stop()
    free, held = rows[:2]
    share = held["rows_per_s"] / free["rows_per_s"] if free["rows_per_s"] else 0.0
    goals = [
        Goal(
            f"{BACKFILL} with one standby, throttled: replay lag p99",
            f"< {TARGET_P99_S:g} s (unthrottled: {free['lag_p99_s']} s)",
            f"{held['lag_p99_s']} s",
            held["lag_p99_s"] < TARGET_P99_S and held["state"] == "finished",
        ),
        Goal(
            f"{BACKFILL} with one standby, throttled: throughput against unthrottled",
            f">= {TARGET_THROUGHPUT_SHARE:.0%}",
            f"{share:.0%} ({held['rows_per_s']:,} vs {free['rows_per_s']:,} rows/s)",
            share >= TARGET_THROUGHPUT_SHARE,
        ),
    ]
    report(
        "replica_lag",
        rows,
        {
            "scale": args.scale,
            "seed": args.seed,
            "batch_size": args.batch_size,
            "stall_seconds": args.stall,
        },
        goals,
    )


if __name__ == "__main__":
    main()
