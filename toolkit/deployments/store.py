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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from toolkit import __version__
from toolkit.server.connection import table_exists

if TYPE_CHECKING:
    import psycopg

    from toolkit.server.standby import ReadOnly

# One row per `venuedb accept-checksum`: this database may run REVISION with exactly the files
# whose checksum is `checksum` (toolkit/engine/checksums.py). Rows are only ever added.
ACCEPTED_DDL = """
CREATE TABLE IF NOT EXISTS venuedb.accepted_checksums (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    revision text NOT NULL,
    checksum text NOT NULL,
    released_checksum text,
    recorded_checksum text,
    files jsonb NOT NULL,
    reason text NOT NULL CONSTRAINT accepted_checksums_reason_check CHECK (btrim(reason) <> ''),
    actor text NOT NULL,
    os_user text NOT NULL,
    hostname text NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

SCHEMA_DDL = (
    """
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
        CHECK (result IN ('running', 'succeeded', 'failed', 'rehearsed', 'interrupted')),
    error text,
    output text,
    backend_pid integer,
    lock_id bigint,
    interrupted_at timestamptz
);
CREATE INDEX IF NOT EXISTS deployments_started_at_idx ON venuedb.deployments (started_at DESC);
CREATE TABLE IF NOT EXISTS venuedb.revision_checksums (
    revision text PRIMARY KEY,
    branch text,
    path text NOT NULL,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deployment_id bigint REFERENCES venuedb.deployments (id) ON DELETE SET NULL,
    checksum text,
    files jsonb
);
"""
    + ACCEPTED_DDL
)


# One row per release whose level 2 is applied (or being applied or restored: `state`);
# a restore (`venuedb rollout RELEASE`) deletes it. `details` is what the steps decided on this database (e.g. whether a
# function version was restored), so the restore undoes exactly that.
LEVELS_DDL = """
CREATE TABLE IF NOT EXISTS venuedb.release_levels (
    release text PRIMARY KEY,
    level integer NOT NULL CONSTRAINT release_levels_level_check CHECK (level = 2),
    state text NOT NULL DEFAULT 'applied' CONSTRAINT release_levels_state_check
        CHECK (state IN ('applying', 'applied', 'restoring')),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deployment_id bigint REFERENCES venuedb.deployments (id) ON DELETE SET NULL,
    actor text NOT NULL
);
"""


@contextmanager
def _schema_change(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction holding the toolkit's schema lock: two first runs, or two commands
    upgrading an older schema, cannot race."""
    from toolkit.engine.locks import NAMESPACE

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (NAMESPACE,))
        yield


def _has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = %s AND NOT attisdropped)",
        (table, column),
    ).fetchone()
    return bool(row and row[0])


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the toolkit schema if missing; serialised so two first runs cannot race."""
    with _schema_change(conn):
        conn.execute(SCHEMA_DDL)
        conn.execute(BACKFILL_DDL)
        conn.execute(LEVELS_DDL)
    _upgrade_schema(conn)
    reap(conn)


# Columns added after the first release of the schema. Checked first, because ALTER TABLE
# takes an ACCESS EXCLUSIVE lock even when there is nothing to add, and a read-only command
# must not queue behind (and then block) a running deploy's record updates.
UPGRADE_DDL = """
ALTER TABLE venuedb.deployments
    ADD COLUMN IF NOT EXISTS backend_pid integer,
    ADD COLUMN IF NOT EXISTS lock_id bigint,
    ADD COLUMN IF NOT EXISTS interrupted_at timestamptz,
    DROP CONSTRAINT IF EXISTS deployments_result_check,
    ADD CONSTRAINT deployments_result_check
        CHECK (result IN ('running', 'succeeded', 'failed', 'rehearsed', 'interrupted'));
ALTER TABLE venuedb.backfill_progress
    ADD COLUMN IF NOT EXISTS backend_pid integer,
    ADD COLUMN IF NOT EXISTS interrupted_at timestamptz,
    DROP CONSTRAINT IF EXISTS backfill_progress_state_check,
    ADD CONSTRAINT backfill_progress_state_check
        CHECK (state IN ('running', 'paused', 'finished', 'failed', 'interrupted'));
"""


def _needs_upgrade(conn: psycopg.Connection) -> bool:
    return not all(
        _has_column(conn, table, "interrupted_at")
        for table in ("venuedb.deployments", "venuedb.backfill_progress")
    )


# Issue 17: one checksum per revision over its files, and accepted checksums.
CHECKSUM_UPGRADE_DDL = (
    """
ALTER TABLE venuedb.revision_checksums
    ADD COLUMN IF NOT EXISTS checksum text,
    ADD COLUMN IF NOT EXISTS files jsonb;
"""
    + ACCEPTED_DDL
)

_CHECKSUM_TABLES_CURRENT = (
    "SELECT to_regclass('venuedb.accepted_checksums') IS NOT NULL AND EXISTS (SELECT 1 "
    "FROM pg_attribute WHERE attrelid = to_regclass('venuedb.revision_checksums') "
    "AND attname = 'files' AND NOT attisdropped)"
)


def _needs_checksum_upgrade(conn: psycopg.Connection) -> bool:
    row = conn.execute(_CHECKSUM_TABLES_CURRENT).fetchone()
    return not (row and row[0])


def ensure_checksum_tables(sa_connection: Any) -> None:
    """The checksum tables, from inside a migration's own transaction (any Alembic caller:
    plain `alembic upgrade`, an Engine or Connection passed in), schema included."""
    from toolkit.engine.locks import NAMESPACE

    if sa_connection.exec_driver_sql(_CHECKSUM_TABLES_CURRENT).scalar():
        return
    driver = sa_connection.connection.driver_connection
    driver.execute("SELECT pg_advisory_xact_lock(%s, 0)", (NAMESPACE,))
    # Without parameters psycopg sends the text as it is: several statements at once.
    driver.execute(SCHEMA_DDL)
    driver.execute(CHECKSUM_UPGRADE_DDL)


def _upgrade_schema(conn: psycopg.Connection) -> None:
    if _needs_checksum_upgrade(conn):
        with _schema_change(conn):
            # SCHEMA_DDL first: a checksum table someone dropped is created again (empty,
            # which verify reports), rather than failing every command on the ALTER.
            conn.execute(SCHEMA_DDL)
            conn.execute(CHECKSUM_UPGRADE_DDL)
    _upgrade_deployments(conn)
    _upgrade_levels(conn)


# release_levels as the first issue-18 builds made it, without `state` (checked first:
# the ALTER takes an ACCESS EXCLUSIVE lock even when there is nothing to add).
LEVELS_UPGRADE_DDL = """
ALTER TABLE venuedb.release_levels
    ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'applied'
        CONSTRAINT release_levels_state_check
        CHECK (state IN ('applying', 'applied', 'restoring'));
"""


def _upgrade_levels(conn: psycopg.Connection) -> None:
    table = "venuedb.release_levels"
    if table_exists(conn, table) and not _has_column(conn, table, "state"):
        with _schema_change(conn):
            conn.execute(LEVELS_UPGRADE_DDL)


def _upgrade_deployments(conn: psycopg.Connection) -> None:
    from toolkit.engine.locks import DEPLOY_LOCK

    if not _needs_upgrade(conn):
        return
    with _schema_change(conn):
        conn.execute(BACKFILL_DDL)
        if _needs_upgrade(conn):
            conn.execute(UPGRADE_DDL)
            # Older apply/rollback records were written under the deploy lock for their
            # whole life, so that lock alone tells whether such a run is still going.
            conn.execute(
                "UPDATE venuedb.deployments SET lock_id = %s WHERE result = 'running' "
                "AND backend_pid IS NULL AND command IN ('apply', 'rollback', 'rehearse')",
                (DEPLOY_LOCK,),
            )


# A run is gone when its session is gone AND nobody holds its lock: both, so that a run
# whose backend is alive (rollout between revisions) or whose lock is held (by it, or by a
# successor that will own the row) is never marked. pg_stat_activity lists every backend
# of the cluster, whoever owns it.
_ALIVE = "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = {pid})"
_LOCK_HELD = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid = {ns}::oid AND l.objid = ({lock})::oid AND l.objsubid = 2 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


def reap(conn: psycopg.Connection) -> list[str]:
    """Mark records left `running` by runs that are gone as `interrupted`; say which.
    Nothing on a session that cannot write (a hot standby, a read-only role): the records
    are read as they are there, and the next command on the primary marks them."""
    from toolkit.server.standby import read_only

    if not schema_exists(conn) or read_only(conn) is not None:
        return []
    _upgrade_schema(conn)
    return _reap_deployments(conn) + _reap_backfills(conn)


def _reap_deployments(conn: psycopg.Connection) -> list[str]:
    from toolkit.engine.locks import NAMESPACE

    rows = conn.execute(
        f"""
        UPDATE venuedb.deployments d
        SET result = 'interrupted', interrupted_at = clock_timestamp(),
            error = concat_ws('; ', error, 'interrupted: the run ended without finishing '
                || 'its record (its session and lock were gone when found at '
                || clock_timestamp()::text || ')')
        WHERE d.result = 'running'
          AND (d.backend_pid IS NOT NULL OR d.lock_id IS NOT NULL)
          AND (d.backend_pid IS NULL OR NOT {_ALIVE.format(pid="d.backend_pid")})
          AND (d.lock_id IS NULL OR NOT {_LOCK_HELD.format(ns=NAMESPACE, lock="d.lock_id")})
        RETURNING id, command, target
        """
    ).fetchall()
    return [f"deployment #{r[0]} ({r[1]} {r[2]})" for r in rows]


def _reap_backfills(conn: psycopg.Connection) -> list[str]:
    from toolkit.engine.locks import NAMESPACE, backfill_lock_id

    running = conn.execute(
        "SELECT name, backend_pid FROM venuedb.backfill_progress WHERE state = 'running'"
    ).fetchall()
    found = []
    for name, pid in running:
        # A backfill runner holds its lock for its whole run, so the lock alone is a safe
        # test for rows written before backend_pid was kept.
        row = conn.execute(
            f"""
            UPDATE venuedb.backfill_progress
            SET state = 'interrupted', interrupted_at = clock_timestamp()
            WHERE name = %(name)s AND state = 'running'
              AND backend_pid IS NOT DISTINCT FROM %(pid)s
              AND (%(pid)s::int IS NULL OR NOT {_ALIVE.format(pid="%(pid)s::int")})
              AND NOT {_LOCK_HELD.format(ns=NAMESPACE, lock="%(lock)s::bigint")}
            RETURNING name
            """,
            {"name": name, "pid": pid, "lock": backfill_lock_id(name)},
        ).fetchone()
        if row:
            found.append(f"backfill {name}")
    return found


def schema_exists(conn: psycopg.Connection) -> bool:
    return table_exists(conn, "venuedb.deployments")


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
    lock_id: int | None = None,
    started_at: datetime | None = None,
) -> Deployment:
    """A `running` record owned by conn's session; lock_id is the lock that session holds
    for the whole run (None when it holds none throughout), so `reap` can tell it is gone."""
    row = conn.execute(
        """
        INSERT INTO venuedb.deployments
            (command, target, actor, os_user, hostname, toolkit_version, from_revisions, planned,
             backend_pid, lock_id, started_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, pg_backend_pid(), %s,
                coalesce(%s, clock_timestamp()))
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
            lock_id,
            started_at,
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


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def listing(conn: psycopg.Connection, last: int) -> list[dict[str, Any]]:
    """The newest `last` records, after marking those whose run is gone."""
    if not schema_exists(conn):
        return []
    reap(conn)
    cur = conn.execute(
        "SELECT id, command, target, actor, started_at, duration_ms, result, error "
        "FROM venuedb.deployments ORDER BY id DESC LIMIT %s",
        (last,),
    )
    names = [d.name for d in cur.description or []]
    return [{k: _plain(v) for k, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def get(conn: psycopg.Connection, deployment_id: int) -> dict[str, Any] | None:
    """One record with every column, after marking it if its run is gone."""
    if not schema_exists(conn):
        return None
    reap(conn)
    cur = conn.execute("SELECT * FROM venuedb.deployments WHERE id = %s", (deployment_id,))
    row = cur.fetchone()
    if row is None:
        return None
    names = [d.name for d in cur.description or []]
    return {k: _plain(v) for k, v in zip(names, row, strict=True)}


def record_checksum(
    sa_connection: Any,
    *,
    revision: str,
    branch: str | None,
    path: str,
    sha256: str,
    deployment_id: int | None,
    checksum: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> None:
    """Called inside the revision's own transaction, so it commits or rolls back with it.

    sha256 is the revision file's; checksum covers it and every SQL file the revision
    installs, listed with their sha256 in files (toolkit/engine/checksums.py).
    """
    sa_connection.exec_driver_sql(
        """
        INSERT INTO venuedb.revision_checksums
            (revision, branch, path, sha256, deployment_id, checksum, files)
        VALUES (%(revision)s, %(branch)s, %(path)s, %(sha256)s, %(deployment_id)s,
                %(checksum)s, %(files)s::jsonb)
        ON CONFLICT (revision) DO UPDATE
        SET branch = excluded.branch, path = excluded.path, sha256 = excluded.sha256,
            applied_at = clock_timestamp(), deployment_id = excluded.deployment_id,
            checksum = excluded.checksum, files = excluded.files
        """,
        {
            "revision": revision,
            "branch": branch,
            "path": path,
            "sha256": sha256,
            "deployment_id": deployment_id,
            "checksum": checksum,
            "files": None if files is None else json.dumps(files),
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
        CHECK (state IN ('running', 'paused', 'finished', 'failed', 'interrupted')),
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
    finished_at timestamptz,
    backend_pid integer,
    interrupted_at timestamptz
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
    started_at: datetime | None = None,
) -> int:
    """A finished record in one go, for commands that do not change revisions. started_at
    is when the work began, so the duration is the work's and not the bookkeeping's."""
    ensure_schema(conn)
    deployment = start(
        conn,
        command=command,
        target=target,
        actor=actor,
        from_revisions={},
        planned=[],
        started_at=started_at,
    )
    deployment.output = output
    finish(conn, deployment, result=result, to_revisions={}, done=[], error=error)
    return deployment.id


def recent(target: Any, last: int) -> tuple[list[dict[str, Any]], ReadOnly | None]:
    """The newest `last` deployment records of the database `target` names, and why the
    session could not mark dead runs (None: it could, and did)."""
    from toolkit.server import connection as db
    from toolkit.server.standby import read_only

    with db.connect(target, purpose="records") as conn:
        return listing(conn, last), read_only(conn)


def one(target: Any, deployment_id: int) -> tuple[dict[str, Any] | None, ReadOnly | None]:
    """One deployment record in full (or None), and why the session could not mark it
    interrupted had its run died (None: it could)."""
    from toolkit.server import connection as db
    from toolkit.server.standby import read_only

    with db.connect(target, purpose="records show") as conn:
        return get(conn, deployment_id), read_only(conn)


def unmarked_runs_note(why: ReadOnly) -> str:
    """What a record read where nothing may be written does not say."""
    return (
        f"read on {why.describe()}: a record shown as running was not checked for a run "
        f"that died (`venuedb records` run {why.where_to_write()} marks those interrupted)"
    )


def record_change(
    target: Any, actor: str, command: str, what: str, done: list[str], error: str | None
) -> int:
    """A deployment record for a change that is not a migration (a rollback level's
    flags): alembic_version does not move, so it starts and ends at the same heads."""
    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import current_heads
    from toolkit.server import connection as db

    with db.connect(target, purpose="record") as conn:
        ensure_schema(conn)
        heads = revs.heads_by_branch(current_heads(conn))
        deployment = start(
            conn, command=command, target=what, actor=actor, from_revisions=heads, planned=[what]
        )
        deployment.output.extend(f"step: {line}" for line in done)
        finish(
            conn,
            deployment,
            result="failed" if error else "succeeded",
            to_revisions=heads,
            done=[what] if not error else [],
            error=error,
        )
    return deployment.id
