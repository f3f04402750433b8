"""Shared by the benchmarks: a scratch database on the embedded server, a load writer,
results printed as a table and written as JSON under bench/results/ (gitignored)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from toolkit.embedded import project_server
from toolkit.urls import with_database

RESULTS = Path(__file__).parent / "results"


def scratch_database(name: str) -> str:
    """A fresh database on the project's embedded server (started if needed)."""
    server = project_server()
    server.start()
    admin = server.url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin, name)


@dataclass
class LatencyProbe:
    """Runs one statement repeatedly at a fixed rate on its own connection, timing each."""

    url: str
    statement: Callable[[int], tuple[str, tuple[Any, ...]]]
    per_second: float = 100.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    @contextmanager
    def running(self) -> Iterator[LatencyProbe]:
        stop = threading.Event()

        def loop() -> None:
            with psycopg.connect(self.url, autocommit=True) as conn:
                i = 0
                interval = 1.0 / self.per_second
                while not stop.is_set():
                    sql, params = self.statement(i)
                    t0 = time.perf_counter()
                    try:
                        conn.execute(sql, params)
                    except psycopg.Error:
                        self.failures += 1
                    elapsed = time.perf_counter() - t0
                    self.latencies_ms.append(elapsed * 1000)
                    i += 1
                    stop.wait(max(0.0, interval - elapsed))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=30)

    def summary(self) -> dict[str, Any]:
        values = sorted(self.latencies_ms) or [0.0]
        return {
            "writes": len(self.latencies_ms),
            "failed": self.failures,
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
            "max_ms": round(values[-1], 2),
            "stalled_over_200ms": sum(1 for v in values if v > 200),
        }


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=name, title_justify="left")
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(row[c]) for c in columns])
    Console(width=200).print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, "rows": rows, **(extra or {})}, indent=2, default=str) + "\n"
    )
    print(f"results written to {path}")
