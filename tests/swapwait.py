"""Waiting, from a test, for a shadow-table swap run in another process to reach its lock."""

from __future__ import annotations

import subprocess
import time
from typing import Any


def until_the_swap_waits_for_its_lock(
    admin: Any, process: subprocess.Popen[str], timeout: float = 60.0
) -> None:
    """Return once the swap is past its copy and retrying for its brief lock: its ACCESS
    EXCLUSIVE request on allocations is waiting and the shadow exists. `admin`: an
    autocommit psycopg connection; the test fails if `process` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not admin.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'allocations'::regclass "
        "AND mode = 'AccessExclusiveLock' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) "
        "AND to_regclass('allocations__venuedb_shadow') IS NOT NULL"
    ).fetchone()[0]:
        assert time.monotonic() < deadline and process.poll() is None, "no swap waiting"
        time.sleep(0.05)
