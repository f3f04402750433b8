"""Waiting, from a test, for a shadow-table swap run in another process to reach its lock."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.clihelpers import spawn
from tests.queries import scalar


def until_the_swap_waits_for_its_lock(
    admin: psycopg.Connection[Any], process: subprocess.Popen[str], timeout: float = 60.0
) -> None:
    """Return once the swap is past its copy and retrying for its brief lock: its ACCESS
    EXCLUSIVE request on allocations is waiting and the shadow exists. `admin`: an
    autocommit psycopg connection; the test fails if `process` ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not scalar(
        admin,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'allocations'::regclass "
        "AND mode = 'AccessExclusiveLock' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) "
        "AND to_regclass('allocations__venuedb_shadow') IS NOT NULL",
    ):
        assert time.monotonic() < deadline and process.poll() is None, "no swap waiting"
        time.sleep(0.05)


@contextmanager
def swap_held_at_its_lock(
    url: str, monkeypatch: pytest.MonkeyPatch, *command: str
) -> Iterator[tuple[subprocess.Popen[str], psycopg.Connection[Any]]]:
    """`venuedb COMMAND` (one that swaps allocations, with a short --lock-timeout) in its own
    process, while a reader holds allocations: inside, the swap is past its copy and retries
    for its brief lock (40 tries), and the block gets the process and an autocommit admin
    connection. On leaving, the reader lets go: the swap can finish; the caller waits for it."""
    monkeypatch.setenv("VENUEDB_SHADOW_SWAP_ATTEMPTS", "40")
    reader = psycopg.connect(url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # the swap cannot take its lock
    try:
        process = spawn(*command)
        with psycopg.connect(url, autocommit=True) as admin:
            until_the_swap_waits_for_its_lock(admin, process)
            yield process, admin
    finally:
        reader.rollback()
        reader.close()
