"""The toolkit's own data in schema `venuedb`: deployment records and revision checksums.

Created by the toolkit on first use, never by a domain revision. Records are
written on the toolkit's control connection (autocommit), so a failed revision's
rollback never takes the record of that failure with it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit import __version__

if TYPE_CHECKING:
    import psycopg

SCHEMA_DDL = """
CREATE SCHEMA IF NOT EXISTS venuedb;
COMMENT ON SCHEMA venuedb IS
    'venuedb toolkit: deployment records, revision checksums, backfill progress';
CREATE TABLE IF NOT EXISTS venuedb.deployments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command text NOT NULL,
    target text,
    actor text NOT NULL,
    os_user text NOT NULL,
    hostname text NOT NULL,
    toolkit_version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms integer,
    from_revisions jsonb NOT NULL DEFAULT '{}'::jsonb,
    to_revisions jsonb,
    planned jsonb NOT NULL DEFAULT '[]'::jsonb,
    done jsonb NOT NULL DEFAULT '[]'::jsonb,
    result text NOT NULL DEFAULT 'running'
        CONSTRAINT deployments_result_check
        CHECK (result IN ('running', 'succeeded', 'failed', 'rehearsed')),
    error text,
    output text
);
CREATE INDEX IF NOT EXISTS deployments_started_at_idx ON venuedb.deployments (started_at DESC);
CREATE TABLE IF NOT EXISTS venuedb.revision_checksums (
    revision text PRIMARY KEY,
    branch text,
    path text NOT NULL,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deployment_id bigint REFERENCES venuedb.deployments (id) ON DELETE SET NULL
);
"""


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the toolkit schema if missing; serialised so two first runs cannot race."""
    from toolkit.locks import NAMESPACE

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (NAMESPACE,))
        conn.execute(SCHEMA_DDL)
        conn.execute(BACKFILL_DDL)


def schema_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('venuedb.deployments') IS NOT NULL").fetchone()
    return bool(row and row[0])


def default_actor() -> str:
    return os.environ.get("VENUEDB_ACTOR") or _os_user()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


@dataclass
class Deployment:
    id: int
    command: str
    output: list[str] = field(default_factory=list)


def start(
    conn: psycopg.Connection,
    *,
    command: str,
    target: str,
    actor: str,
    from_revisions: dict[str, Any],
    planned: list[str],
) -> Deployment:
    row = conn.execute(
        """
        INSERT INTO venuedb.deployments
            (command, target, actor, os_user, hostname, toolkit_version, from_revisions, planned)
        VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)
        RETURNING id
        """,
        (
            command,
            target,
            actor,
            _os_user(),
            socket.gethostname(),
            __version__,
            json.dumps(from_revisions),
            json.dumps(planned),
        ),
    ).fetchone()
    assert row is not None
    return Deployment(int(row[0]), command)


def finish(
    conn: psycopg.Connection,
    deployment: Deployment,
    *,
    result: str,
    to_revisions: dict[str, Any],
    done: list[str],
    error: str | None = None,
) -> None:
    conn.execute(
        """
        UPDATE venuedb.deployments
        SET finished_at = clock_timestamp(),
            duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::int,
            to_revisions = %s::jsonb, done = %s::jsonb, result = %s, error = %s, output = %s
        WHERE id = %s
        """,
        (
            json.dumps(to_revisions),
            json.dumps(done),
            result,
            error,
            "\n".join(deployment.output),
            deployment.id,
        ),
    )


def last_deployment(conn: psycopg.Connection) -> dict[str, Any] | None:
    if not schema_exists(conn):
        return None
    row = conn.execute(
        """
        SELECT id, command, target, actor, os_user, started_at, finished_at, duration_ms,
               from_revisions, to_revisions, done, result, error
        FROM venuedb.deployments ORDER BY id DESC LIMIT 1
        """
    ).fetchone()
    if row is None:
        return None
    keys = [
        "id",
        "command",
        "target",
        "actor",
        "os_user",
        "started_at",
        "finished_at",
        "duration_ms",
        "from_revisions",
        "to_revisions",
        "done",
        "result",
        "error",
    ]
    record = dict(zip(keys, row, strict=True))
    for key in ("started_at", "finished_at"):
        if record[key] is not None:
            record[key] = record[key].isoformat()
    return record


def record_checksum(
    sa_connection: Any,
    *,
    revision: str,
    branch: str | None,
    path: str,
    sha256: str,
    deployment_id: int | None,
) -> None:
    """Called inside the revision's own transaction, so it commits or rolls back with it."""
    sa_connection.exec_driver_sql(
        """
        INSERT INTO venuedb.revision_checksums (revision, branch, path, sha256, deployment_id)
        VALUES (%(revision)s, %(branch)s, %(path)s, %(sha256)s, %(deployment_id)s)
        ON CONFLICT (revision) DO UPDATE
        SET branch = excluded.branch, path = excluded.path, sha256 = excluded.sha256,
            applied_at = clock_timestamp(), deployment_id = excluded.deployment_id
        """,
        {
            "revision": revision,
            "branch": branch,
            "path": path,
            "sha256": sha256,
            "deployment_id": deployment_id,
        },
    )


def forget_checksum(sa_connection: Any, revision: str) -> None:
    sa_connection.exec_driver_sql(
        "DELETE FROM venuedb.revision_checksums WHERE revision = %(revision)s",
        {"revision": revision},
    )


BACKFILL_DDL = """
CREATE TABLE IF NOT EXISTS venuedb.backfill_progress (
    name text PRIMARY KEY,
    state text NOT NULL DEFAULT 'running'
        CONSTRAINT backfill_progress_state_check
        CHECK (state IN ('running', 'paused', 'finished', 'failed')),
    pause_requested boolean NOT NULL DEFAULT false,
    last_key text,
    rows_done bigint NOT NULL DEFAULT 0,
    rows_changed bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    batch_size integer,
    last_error text,
    failing_range text,
    runner text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);
"""


def record_once(
    conn: psycopg.Connection,
    *,
    command: str,
    target: str,
    actor: str,
    result: str,
    output: list[str],
    error: str | None = None,
) -> int:
    """A finished record in one go, for commands that do not change revisions."""
    ensure_schema(conn)
    deployment = start(
        conn, command=command, target=target, actor=actor, from_revisions={}, planned=[]
    )
    deployment.output = output
    finish(conn, deployment, result=result, to_revisions={}, done=[], error=error)
    return deployment.id
