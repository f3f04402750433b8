"""A primary with one hot standby, for the tests of replicas, the cluster-aware throttle and
the read-only commands on a standby.

A server of its own (not the session's `pg_server`): a standby replays every database its
primary creates, and the rest of the suite clones a template database per test; on this
server only the replica tests' databases are replayed. The tests that use it are in
xdist group "replicas", so one worker builds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.queries import scalar
from toolkit.server.embedded import EmbeddedServer
from toolkit.server.replicas import Standby
from toolkit.server.urls import with_database


@dataclass
class Replicated:
    primary: EmbeddedServer
    standby: Standby

    def primary_url(self, dbname: str = "postgres") -> str:
        return self.primary.url(dbname)

    def standby_url(self, dbname: str = "postgres") -> str:
        return with_database(self.standby.url("postgres"), dbname)

    def standby_conn(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.standby_url(dbname), autocommit=True)

    def caught_up(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed everything the primary has written now."""
        with psycopg.connect(self.primary_url(), autocommit=True) as conn:
            # The insert position, not pg_current_wal_lsn() (the write position): with
            # synchronous_commit off a commit can be inserted and not yet written.
            target = str(scalar(conn, "SELECT pg_current_wal_insert_lsn()"))
        deadline = time.monotonic() + timeout
        with self.standby_conn() as conn:
            while True:
                done = scalar(conn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
                if done:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby did not replay up to {target}")
                time.sleep(0.05)

    def streaming(self, timeout: float = 30.0) -> None:
        """Wait until the primary lists the standby as streaming (after a test broke it)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.primary_url(), autocommit=True) as conn:
            while True:
                state = conn.execute(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s",
                    (self.standby.name,),
                ).fetchone()
                if state and state[0] == "streaming":
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.standby.name} is not streaming: {state}")
                time.sleep(0.05)
