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
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field

import psycopg

from bench.common import (
    BackgroundLoop,
    Goal,
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


def measure(variant: str, limits: Limits, args: argparse.Namespace, standby: Standby) -> dict:
    url = clone_database_file_copy(TEMPLATE, COPY)
    standby_url = with_database(standby.url("postgres"), COPY)
    admins = (bench_server().url("postgres"), standby.url("postgres"))
    caught_up(*admins)
    settle()
    caught_up(*admins)
    sampler = LagSampler(url, standby_url)
    with sampler.running():
        time.sleep(0.5)
        started = time.monotonic()
        outcome = run(
            Target(url, "bench"),
            find_backfill(BACKFILL),
            Options(batch_size=args.batch_size, limits=limits),
        )
        finished = time.monotonic()
        drained = caught_up(*admins)
    lags = sorted(sampler.lags(started, finished))
    seconds = finished - started
    throttle = outcome.throttle or {}
    return {
        "variant": variant,
        "rows": outcome.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(outcome.rows / seconds) if seconds else 0,
        "lag_p50_s": round(percentile(lags, 50), 3),
        "lag_p99_s": round(percentile(lags, 99), 3),
        "lag_max_s": round(lags[-1], 3) if lags else 0.0,
        "drain_after_s": round(drained, 2),
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
    finally:
        standby.stop()
    free, held = rows
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
        {"scale": args.scale, "seed": args.seed, "batch_size": args.batch_size},
        goals,
    )


if __name__ == "__main__":
    main()
