"""Advisory locks that keep two deploys (or two backfill runners) apart."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.errors import LockBusy

if TYPE_CHECKING:
    import psycopg

# Two-key advisory locks: (namespace, id). 'venu' keeps us clear of other users of advisory locks.
NAMESPACE = 0x76656E75
DEPLOY_LOCK = 1
# Held by the session that runs the migration itself, for as long as it runs. The deploy
# lock lives on an idle control session; if that session dies (terminated, idle timeout,
# a network cut) the deploy lock is gone while the migration goes on. This one goes only
# with the session doing the work, so its loss stops the work too, and a second deploy
# that got the deploy lock still finds this one held and refuses.
DEPLOY_WORK_LOCK = 2


def backfill_lock_id(name: str) -> int:
    """A stable id per backfill for its runner lock (1000 + crc32, clear of DEPLOY_LOCK)."""
    import zlib

    return 1000 + zlib.crc32(name.encode()) % 1_000_000


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    query: str
    since: str | None

    def describe(self) -> str:
        app = self.application_name or "unnamed client"
        return f"pid {self.pid} ({app})"


def lock_holder(conn: psycopg.Connection, lock_id: int) -> LockHolder | None:
    row = conn.execute(
        """
        SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.query, ''),
               a.backend_start::text
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """,
        (NAMESPACE, lock_id),
    ).fetchone()
    if row is None:
        return None
    return LockHolder(int(row[0]), row[1], row[2], row[3])


def try_lock(conn: psycopg.Connection, lock_id: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (NAMESPACE, lock_id)).fetchone()
    return bool(row and row[0])


def acquire(conn: psycopg.Connection, lock_id: int, wait_seconds: float, what: str) -> None:
    """Take a session advisory lock within wait_seconds, else raise LockBusy naming the holder."""
    deadline = time.monotonic() + max(wait_seconds, 0)
    while True:
        if try_lock(conn, lock_id):
            return
        if time.monotonic() >= deadline:
            holder = lock_holder(conn, lock_id)
            who = holder.describe() if holder else "another session (it has just finished?)"
            raise LockBusy(
                f"another {what} holds the lock: {who}; waited {wait_seconds:g}s. "
                "Nothing was changed. Retry when it is done, or wait longer with --lock-wait"
            )
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))


def release(conn: psycopg.Connection, lock_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, lock_id))
