"""Who blocks the migration: a watcher that samples pg_blocking_pids() while a revision runs.

When lock_timeout fires, the waiting statement is cancelled and the evidence is
gone; sampling while we wait lets the error name the blocker's pid and query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.server.connection import Target

BLOCKERS_SQL = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200),
       extract(epoch FROM now() - a.xact_start)::float8
FROM pg_stat_activity a
WHERE a.pid = ANY(pg_blocking_pids(%s))
ORDER BY a.pid
"""


# Sessions sitting in an open transaction between statements: pg_cancel_backend() only
# cancels a running statement, so for these it does nothing and the lock stays held.
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True)
class Blocker:
    pid: int
    application_name: str
    state: str
    query: str
    xact_age: float | None = None  # seconds since its transaction began (now() - xact_start)

    def describe(self) -> str:
        app = f" ({self.application_name})" if self.application_name else ""
        age = f", transaction open for {self.xact_age:.1f}s" if self.xact_age is not None else ""
        return (
            f"pid {self.pid}{app}, {self.state or 'unknown state'}{age}, last query: {self.query!r}"
        )

    def advice(self) -> str:
        """The action that actually frees the lock this session holds."""
        if self.state in IDLE_IN_TRANSACTION:
            return (
                f"it is {self.state}, so pg_cancel_backend() would do nothing: end it with "
                f"SELECT pg_terminate_backend({self.pid})"
            )
        return (
            f"cancel its query with SELECT pg_cancel_backend({self.pid}), or end the session "
            f"with SELECT pg_terminate_backend({self.pid}) if that does not free the lock"
        )


class BlockerWatcher:
    """Polls, on its own connection, which sessions block `pid`; remembers the last ones seen."""

    def __init__(self, target: Target, pid: int, interval: float = 0.05) -> None:
        self.target = target
        self.pid = pid
        self.interval = interval
        self.seen: list[Blocker] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="venuedb-blockers", daemon=True)

    def __enter__(self) -> BlockerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(
                self.target.url,
                autocommit=True,
                connect_timeout=5,
                application_name="venuedb lock watcher",
            )
        except psycopg.Error:
            return
        with conn:
            while not self._stop.wait(self.interval):
                try:
                    rows = conn.execute(BLOCKERS_SQL, (self.pid,)).fetchall()
                except psycopg.Error:
                    return
                if rows:
                    self.seen = [
                        Blocker(int(r[0]), r[1], r[2], r[3], None if r[4] is None else r[4])
                        for r in rows
                    ]
