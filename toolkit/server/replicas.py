"""Hot standbys of the embedded server: `pg_basebackup -R` and streaming replication.

Replica N lives in `<state dir>/replicas/N/` beside the primary's `pgdata/`: its own data
directory, port and log, the primary's password (a physical copy has the same roles).
Each standby runs with `cluster_name = venuedb_replica_N`, which its WAL receiver uses
as application_name: that is the name the primary's pg_stat_replication shows, and the
name the backfill throttle reports when a standby lags or falls away.

No replication slot: a slot would keep WAL on the primary for a standby that is stopped
and forgotten until the disk fills. A standby that falls too far behind is rebuilt
(`venuedb db stop --replicas 0`, then `db start --replicas N`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from toolkit.errors import BadInput, OperationFailed
from toolkit.server.embedded import (
    SUPERUSER,
    EmbeddedServer,
    ServerStatus,
    free_port,
)

MAX_REPLICAS = 5


def replica_name(number: int) -> str:
    return f"venuedb_replica_{number}"


class Standby(EmbeddedServer):
    """A hot standby: initialised by pg_basebackup from a running primary, read-only."""

    def __init__(self, primary: EmbeddedServer, number: int) -> None:
        settings = dict(primary.settings)
        # A standby refuses to start with fewer connections than its primary allows.
        settings["cluster_name"] = replica_name(number)
        settings["hot_standby"] = "on"
        super().__init__(
            primary.home / "replicas" / str(number), settings=settings, binaries=primary.binaries
        )
        self.primary = primary
        self.number = number
        self.name = replica_name(number)

    def initialise(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(self.primary.password_file, self.password_file)
        self.password_file.chmod(0o600)
        self._prepare_root_owner()
        if (self.data_dir / "PG_VERSION").exists():
            return
        primary = self.primary.status()
        if primary.state != "running" or primary.port is None:
            raise BadInput(
                f"{self.name} cannot be built: the primary is not running ({primary.message})"
            )
        env = {**os.environ, "PGPASSWORD": self.primary.password(), "PGAPPNAME": self.name}
        result = self._run_as_owner(
            [
                str(self._binary("pg_basebackup")),
                "--pgdata",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(primary.port),
                "--username",
                SUPERUSER,
                "--wal-method",
                "stream",
                "--write-recovery-conf",
                "--checkpoint",
                "fast",
                "--no-password",
            ],
            timeout=600,
            env=env,
        )
        if result.returncode != 0:
            # A half-copied data directory would start as a broken standby: remove it.
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise OperationFailed(
                f"pg_basebackup for {self.name} failed: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        # The primary's log came along in the copy; the standby writes its own.
        self.log_file.unlink(missing_ok=True)

    def start(
        self, port: int | None = None, database: str = "postgres"
    ) -> tuple[ServerStatus, str]:
        return super().start(port=port or self._recorded_port() or free_port(), database=database)

    def _ensure_database(self, database: str) -> None:
        # Read-only: every database is the primary's, replicated.
        return

    def remove(self) -> str:
        message = self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        return f"{self.name}: {message}; removed {self.home}"


def existing_replicas(primary: EmbeddedServer) -> list[Standby]:
    root = primary.home / "replicas"
    if not root.is_dir():
        return []
    numbers = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    return [Standby(primary, n) for n in numbers]


def check_count(count: int) -> int:
    if not 0 <= count <= MAX_REPLICAS:
        raise BadInput(f"--replicas: {count} is out of range; allowed: 0 .. {MAX_REPLICAS}")
    return count


def ensure_replicas(primary: EmbeddedServer, count: int | None) -> list[str]:
    """Start replicas 1..count (building the missing ones); count None: start those that
    exist. Replicas numbered above count are stopped and removed (they are copies)."""
    messages: list[str] = []
    existing = existing_replicas(primary)
    if count is not None:
        check_count(count)
        for standby in existing:
            if standby.number > count:
                messages.append(standby.remove())
        wanted = [Standby(primary, n) for n in range(1, count + 1)]
    else:
        wanted = existing
    for standby in wanted:
        built = not (standby.data_dir / "PG_VERSION").exists()
        _, message = standby.start()
        prefix = "built by pg_basebackup and " if built else ""
        messages.append(f"{standby.name}: {prefix}{message}")
    return messages


def stop_replicas(primary: EmbeddedServer) -> list[str]:
    return [f"{s.name}: {s.stop()}" for s in existing_replicas(primary)]


@dataclass
class ReplicaStatus:
    name: str
    number: int
    state: str  # the standby server's: running | stopped | stale | not_initialised
    port: int | None
    streaming: bool  # the primary's pg_stat_replication lists it as streaming
    replay_lag_bytes: int | None  # WAL the primary has written that the standby has not replayed
    replay_lag_seconds: float | None  # the primary's replay_lag (None when idle and caught up)
    replay_paused: bool | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def replica_statuses(primary: EmbeddedServer) -> list[ReplicaStatus]:
    """Each replica as the primary sees it (pg_stat_replication) and as it sees itself."""
    replicas = existing_replicas(primary)
    if not replicas:
        return []
    streams = _primary_view(primary)
    result = []
    for standby in replicas:
        own = standby.status()
        stream = streams.get(standby.name)
        paused = _replay_paused(standby) if own.state == "running" else None
        lag_bytes = int(stream["lag_bytes"]) if stream and stream["lag_bytes"] is not None else None
        lag_seconds = (
            float(stream["replay_lag"]) if stream and stream["replay_lag"] is not None else None
        )
        streaming = bool(stream and stream["state"] == "streaming")
        if own.state != "running":
            message = f"{standby.name}: {own.message}"
        elif not streaming:
            state = stream["state"] if stream else "not connected"
            message = f"{standby.name}: running on port {own.port}, replication {state}"
        else:
            message = (
                f"{standby.name}: streaming on port {own.port}, {lag_bytes} bytes behind"
                + (f", replay lag {lag_seconds:.3f}s" if lag_seconds is not None else "")
                + (", replay paused" if paused else "")
            )
        result.append(
            ReplicaStatus(
                standby.name,
                standby.number,
                own.state,
                own.port,
                streaming,
                lag_bytes,
                lag_seconds,
                paused,
                message,
            )
        )
    return result


def _primary_view(primary: EmbeddedServer) -> dict[str, dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    if primary.status().state != "running":
        return {}
    with psycopg.connect(primary.url("postgres"), connect_timeout=10, row_factory=dict_row) as c:
        rows = c.execute(
            "SELECT application_name, state, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes, "
            "extract(epoch FROM replay_lag)::float8 AS replay_lag "
            "FROM pg_stat_replication"
        ).fetchall()
    return {str(r["application_name"]): r for r in rows}


def _replay_paused(standby: Standby) -> bool | None:
    import psycopg

    try:
        with psycopg.connect(standby.url("postgres"), connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()
    except psycopg.Error:
        return None
    return bool(row[0]) if row else None


def replica_url(primary: EmbeddedServer, number: int, database: str) -> str:
    standby = Standby(primary, number)
    if not (standby.data_dir / "PG_VERSION").exists():
        known = ", ".join(str(s.number) for s in existing_replicas(primary)) or "none"
        raise BadInput(f"there is no replica {number} (replicas: {known})")
    return standby.url(database)
