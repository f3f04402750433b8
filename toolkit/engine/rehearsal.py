"""`venuedb apply --rehearse`: rehearse on a scratch copy of the target, and say which
table locks each statement takes.

A rehearsal runs the online helpers' plain, blocking forms (CREATE INDEX without
CONCURRENTLY, the exclusion constraint replaced by ALTER TABLE: CONCURRENTLY cannot run
inside the transaction a rehearsal needs). On the target itself that holds the real
locks on the real tables and stalls their writers, so by default the rehearsal runs on a
copy: a new database `venuedb_rehearsal_<pid>_<epoch>` on the same server (or on
`--scratch-url`'s), filled from the target by pg_dump (schema, the rows of small tables),
migrated, reported, dropped. Reading the target takes only pg_dump's ACCESS SHARE locks
(those of a SELECT, which block no reader and no writer), given up after --lock-timeout
rather than queued behind a DDL.

Why small tables' rows are copied: a revision that validates a constraint, runs a
pre-flight or reads a setting decides on rows; with the rows of every table under
COPY_ROWS_BELOW_PAGES the rehearsal fails where the real apply would, for those tables.
Big tables are copied empty (copying them would take as long as a backup); the report
names them, and says that durations and row counts are not production's. A table's size
is pg_class.relpages (as of its last VACUUM or ANALYZE; reading it takes no lock), so a
big table never analysed would be copied whole. alembic_version always keeps its rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from toolkit.durations import to_postgres
from toolkit.errors import BadInput, LockBusy, OperationFailed
from toolkit.server import connection as db
from toolkit.server.urls import mask_text, masked_first_line, with_database

if TYPE_CHECKING:
    from toolkit.engine.migrate import Emit, RunOptions, RunResult
    from toolkit.engine.revisions import Direction

SCRATCH_PREFIX = "venuedb_rehearsal_"
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(?P<pid>\d+)_(?P<epoch>\d+)$")
# A scratch database older than this that nobody is connected to was left by a rehearsal
# that was killed before its cleanup ran.
LEFTOVER_AGE_S = 600
# 1,280 pages of 8 kB: tables up to about 10 MB are copied with their rows.
COPY_ROWS_BELOW_PAGES = 1280
# Bookkeeping, not application data: the toolkit's own schema is copied empty.
_NO_ROWS_SCHEMAS = ("venuedb",)
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

ADVICE = (
    "give --scratch-url URL (a server where this role may create a scratch database), or "
    "--rehearse-in-place to rehearse on the target itself (the blocking forms under the "
    "real locks: its writers stall while the rehearsal runs)"
)

# What each table lock mode blocks, for the report (PostgreSQL docs, "Table-Level Locks").
BLOCKS = {
    "AccessShareLock": "nothing (only ACCESS EXCLUSIVE)",
    "RowShareLock": "neither reads nor writes",
    "RowExclusiveLock": "neither reads nor writes",
    "ShareUpdateExclusiveLock": "neither reads nor writes (other DDL and VACUUM)",
    "ShareLock": "writes",
    "ShareRowExclusiveLock": "writes",
    "ExclusiveLock": "writes",
    "AccessExclusiveLock": "reads and writes",
}

LOCKS_SQL = """
SELECT c.oid, n.nspname || '.' || c.relname, l.mode
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
  AND n.nspname <> ALL(%(skip)s)
  AND NOT (n.nspname = 'public' AND c.relname = 'alembic_version')
"""

TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.reltuples::bigint, c.relpages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(skip)s) AND n.nspname NOT LIKE 'pg_temp%%'
"""


# -- the lock report -------------------------------------------------------------------


@dataclass
class StatementLocks:
    statement: str
    locks: list[tuple[str, list[str]]]  # (table, the modes it newly took, weakest first)

    def to_dict(self, rows: dict[str, int | None]) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "locks": [
                {
                    "table": table,
                    "mode": modes[-1],  # the strongest: what it blocks is what matters
                    "blocks": BLOCKS.get(modes[-1], "?"),
                    "all_modes": modes,
                    "rows_estimate": rows.get(table),
                }
                for table, modes in self.locks
            ],
        }


@dataclass
class LockRecorder:
    """Attributes the table locks a rehearsal's backend newly holds to the statement that
    took them: after every statement, pg_locks of this backend is read again.

    Every statement reaches PostgreSQL through a cursor of this psycopg connection
    (SQLAlchemy's and the toolkit's raw execute_sql alike), so the connection's
    cursor_factory sees them all; a PL/pgSQL body or a file of statements sent at once
    counts as one statement. Only relations that existed before the rehearsal count: a
    table it creates is invisible to every other session.
    """

    driver: Any
    existing: set[int] = field(default_factory=set)
    held: set[tuple[int, str]] = field(default_factory=set)
    pending: list[StatementLocks] = field(default_factory=list)
    by_revision: list[tuple[str, list[StatementLocks]]] = field(default_factory=list)
    rows: dict[str, int | None] = field(default_factory=dict)
    _factory: Any = None

    def __enter__(self) -> LockRecorder:
        import psycopg

        for oid, schema, name, tuples, _pages in _plain(self.driver, TABLES_SQL, _SYSTEM):
            self.existing.add(int(oid))
            self.rows[f"{schema}.{name}"] = None if tuples < 0 else int(tuples)
        self.existing |= {
            int(r[0])
            for r in _plain(
                self.driver, "SELECT oid FROM pg_class WHERE relkind IN ('v', 'm', 'f')"
            )
        }
        recorder = self

        class RecordingCursor(psycopg.Cursor):
            def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                out = super().execute(query, params, **kwargs)
                recorder.after(query)
                return out

        # Locks this transaction already holds (in place: the catalog snapshot's) are no
        # statement's; a later statement taking the same mode again is not seen.
        self.held = set(self._now())
        self._factory = self.driver.cursor_factory
        self.driver.cursor_factory = RecordingCursor
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.cursor_factory = self._factory

    def after(self, query: Any) -> None:
        """Called after each statement: locks held now and not before are its own."""
        import psycopg

        if self.driver.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            return
        now = self._now()
        new: dict[str, list[str]] = {}
        for key in sorted(now.keys() - self.held, key=lambda k: _STRENGTH.get(k[1], 0)):
            new.setdefault(now[key], []).append(key[1])
        # Locks end with their transaction: a lock retaken after a commit is new again.
        self.held = set(now)
        if new:
            self.pending.append(
                StatementLocks(_first_line(query, self.driver), sorted(new.items()))
            )

    def _now(self) -> dict[tuple[int, str], str]:
        """(oid, mode) -> table, for the relation locks this backend holds now."""
        return {
            (int(oid), mode): name
            for oid, name, mode in _plain(self.driver, LOCKS_SQL, {"skip": _NO_LOCK_SCHEMAS})
            if int(oid) in self.existing
        }

    def end_revision(self, ctx: Any = None, step: Any = None, **_: Any) -> None:
        """Alembic's on_version_apply: the statements so far belong to this revision."""
        name = step.up_revision.revision if step is not None else "?"
        self.by_revision.append((name, self.pending))
        self.pending = []

    def report(self, rows: dict[str, int | None] | None = None) -> list[dict[str, Any]]:
        rows = self.rows if rows is None else rows
        revisions = list(self.by_revision)
        if self.pending:  # statements of a revision that did not finish
            revisions.append(("(unfinished)", self.pending))
        return [
            {"revision": name, "statements": [s.to_dict(rows) for s in statements]}
            for name, statements in revisions
        ]


_NO_LOCK_SCHEMAS = [*_SYSTEM_SCHEMAS, *_NO_ROWS_SCHEMAS]
_SYSTEM = {"skip": list(_SYSTEM_SCHEMAS)}
_STRENGTH = {mode: i for i, mode in enumerate(BLOCKS)}


def _plain(driver: Any, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run a query on a plain cursor (not the recording one) of the same connection."""
    import psycopg

    with psycopg.Cursor(driver) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _first_line(query: Any, driver: Any) -> str:
    if isinstance(query, bytes):
        text = query.decode("utf-8", "replace")
    elif isinstance(query, str):
        text = query
    else:
        text = query.as_string(driver)
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("--")
    ]
    first = lines[0] if lines else text.strip()
    more = len(lines) > 1
    if len(first) > 100:
        first, more = first[:100], True
    return first + (" ..." if more else "")


def strongest(report: list[dict[str, Any]]) -> dict[str, str]:
    """table -> the strongest mode any statement took on it."""
    out: dict[str, str] = {}
    for revision in report:
        for statement in revision["statements"]:
            for lock in statement["locks"]:
                old = out.get(lock["table"])
                if old is None or _STRENGTH.get(lock["mode"], 0) > _STRENGTH.get(old, 0):
                    out[lock["table"]] = lock["mode"]
    return out


def populated_tables(driver: Any) -> list[tuple[str, int | None]]:
    """Application tables holding a row: (table, pg_class.reltuples; None if never analysed).

    Only for a rehearsal in place, which is about to lock them much harder: an estimate of
    0 or unknown (a table filled since its last ANALYZE) is checked by reading one row.
    """
    from psycopg import sql

    found = []
    for _oid, schema, name, tuples, _pages in _plain(
        driver, TABLES_SQL, {"skip": _NO_LOCK_SCHEMAS}
    ):
        if name == "alembic_version":
            continue
        if tuples <= 0:
            probe = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, name))
            if not _plain(driver, probe.as_string(driver))[0][0]:
                continue
        found.append((f"{schema}.{name}", None if tuples < 0 else int(tuples)))
    return found


# -- the scratch copy ------------------------------------------------------------------


def on_a_scratch_copy(
    target: db.Target,
    direction: Direction,
    target_name: str | None,
    options: RunOptions,
    emit: Emit,
    run: Callable[..., RunResult],
) -> RunResult:
    """Rehearse on a copy of the target; the target is only read (pg_dump)."""
    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import RunResult, current_heads

    alembic_target, release = revs.target_for(direction, target_name)
    with db.connect(target, purpose="rehearse (plan)") as conn:
        heads = current_heads(conn)
        planned = revs.plan(direction, alembic_target, heads)
        tables = {
            f"{schema}.{name}": (None if tuples < 0 else int(tuples), int(pages))
            for _oid, schema, name, tuples, pages in _plain(conn, TABLES_SQL, _SYSTEM)
        }
    if not planned:
        emit("info", "nothing to do: the database is already at the target")
        done = RunResult(
            "rehearse",
            alembic_target,
            release.name if release else None,
            planned,
            from_heads=revs.heads_by_branch(heads),
        )
        done.to_heads = done.from_heads
        return done
    # alembic_version always keeps its rows: they are the revisions the copy is at.
    empty = sorted(
        name
        for name, (_rows, pages) in tables.items()
        if name != "public.alembic_version"
        and (pages > COPY_ROWS_BELOW_PAGES or name.split(".")[0] in _NO_ROWS_SCHEMAS)
    )
    with scratch_database(target, options, emit) as scratch:
        emit("info", f"rehearsing on a scratch copy: {scratch.masked}")
        _copy(target, scratch, empty, options.lock_timeout)
        on_copy = replace(options, rehearse_in_place=True, rehearsal_copy_of=target.masked)
        result = run(scratch, direction, target_name, on_copy, emit)
    rows = {name: estimate for name, (estimate, _pages) in tables.items()}
    result.locks = _with_rows(result.locks, rows)
    result.deployment_id = None  # the record was written in the copy, which is gone
    result.rehearsal.update(
        {
            "where": "scratch copy",
            "scratch_database": db_name(scratch.url),
            "copied_without_rows": [t for t in empty if not t.startswith("venuedb.")],
            "caveat": (
                "the copy holds the schema and the rows of small tables only: durations and "
                "row counts are not those of production; the rows_estimate of each locked "
                "table is the target's (pg_class.reltuples)"
            ),
        }
    )
    return result


def _with_rows(report: list[dict[str, Any]], rows: dict[str, int | None]) -> list[dict[str, Any]]:
    for revision in report:
        for statement in revision["statements"]:
            for lock in statement["locks"]:
                lock["rows_estimate"] = rows.get(lock["table"])
    return report


def db_name(url: str) -> str:
    from toolkit.server.urls import database_name

    return database_name(url)


@contextmanager
def scratch_database(target: db.Target, options: RunOptions, emit: Emit) -> Iterator[db.Target]:
    """A new, empty database beside the target (or on --scratch-url's server), dropped on the
    way out whatever happens (failure, Ctrl-C)."""
    import psycopg

    admin = db.Target(options.scratch_url, "--scratch-url") if options.scratch_url else target
    name = f"{SCRATCH_PREFIX}{os.getpid()}_{int(time.time())}"
    with db.connect(admin, purpose="rehearse (scratch)") as conn:
        _drop_leftovers(conn, emit)
        try:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        except psycopg.errors.InsufficientPrivilege as exc:
            raise BadInput(
                f"cannot create a scratch database to rehearse on ({masked_first_line(exc)}); nothing was "
                f"run and {target.masked} was not changed. Either {ADVICE}"
            ) from None
        except psycopg.Error as exc:
            raise OperationFailed(
                f"cannot create the scratch database {name}: {masked_first_line(exc)}; nothing was run. "
                f"Either {ADVICE}"
            ) from None
    try:
        yield db.Target(with_database(admin.url, name), "scratch copy")
    finally:
        try:
            with db.connect(admin, purpose="rehearse (drop scratch)") as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except (psycopg.Error, BadInput) as exc:
            emit(
                "warning",
                f"could not drop the scratch database {name} ({masked_first_line(exc)}); the next "
                f"rehearsal on this server drops it once it is {LEFTOVER_AGE_S // 60} min old",
            )


def _drop_leftovers(conn: Any, emit: Emit) -> None:
    """Scratch databases of killed rehearsals: older than LEFTOVER_AGE_S, nobody connected."""
    import psycopg

    names = [
        r[0]
        for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (SCRATCH_PREFIX.replace("_", r"\_") + "%",),
        )
    ]
    now = time.time()
    for name in names:
        match = _SCRATCH_NAME.match(name)
        if not match or now - int(match["epoch"]) < LEFTOVER_AGE_S:
            continue
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # no FORCE: in use means alive
        except psycopg.Error as exc:
            emit("warning", f"left the scratch database {name} in place: {masked_first_line(exc)}")
            continue
        minutes = (now - int(match["epoch"])) / 60
        emit(
            "notice",
            f"dropped {name}, the scratch database of a rehearsal (pid {match['pid']}) that "
            f"did not finish {minutes:.0f} min ago",
        )


def _copy(source: db.Target, scratch: db.Target, empty: list[str], lock_timeout: float) -> None:
    """pg_dump the source (schema, and the rows of every table but `empty`) into scratch."""
    from toolkit.runbook.backup import _split_password
    from toolkit.server.embedded import binary

    source_url, source_env = _split_password(source.url)
    scratch_url, scratch_env = _split_password(scratch.url)
    source_env["PGAPPNAME"] = "venuedb rehearse (copy)"
    args = [
        str(binary("pg_dump")),
        "--format=plain",
        "--no-owner",
        "--no-privileges",  # the owner's grants and default privileges need its rights
        "--no-comments",  # COMMENT ON EXTENSION needs the extension's owner
        "--no-publications",
        "--no-subscriptions",
        "--no-security-labels",
        "--no-tablespaces",
        f"--lock-wait-timeout={to_postgres(lock_timeout)}",
        *(f"--exclude-table-data={_pattern(t)}" for t in empty),
        f"--dbname={source_url}",
    ]
    # Bytes, not text: the rows are copied in the database's encoding, whatever it is.
    dump = subprocess.run(args, capture_output=True, env=source_env, check=False)
    if dump.returncode != 0:
        stderr = dump.stderr.decode("utf-8", "replace")
        text = _tool_error(stderr)
        if "could not obtain lock" in stderr:
            raise LockBusy(
                f"could not read {source.masked} to copy it: a table is locked by another "
                f"session (pg_dump waited {lock_timeout:g}s): {text}. Nothing was changed; "
                "retry when that session is done"
            )
        raise OperationFailed(f"pg_dump could not copy {source.masked}: {text}")
    # pg_dump 18 sets transaction_timeout, which PostgreSQL < 17 refuses.
    script = b"\n".join(
        line for line in dump.stdout.split(b"\n") if not line.startswith(b"SET transaction_timeout")
    )
    load = subprocess.run(
        [
            str(binary("psql")),
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
            f"--dbname={scratch_url}",
        ],
        input=script,
        capture_output=True,
        env=scratch_env,
        check=False,
    )
    if load.returncode != 0:
        text = _tool_error(load.stderr.decode("utf-8", "replace"))
        raise OperationFailed(
            f"could not load the copy of {source.masked} into the scratch database: {text}"
        )


def _tool_error(stderr: str) -> str:
    """The line of a client tool's stderr that says what failed (not the query it echoes)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower()]
    return mask_text((errors or lines or ["failed"])[0][:300])


def _pattern(table: str) -> str:
    """A pg_dump pattern matching exactly schema.table (quoted: no wildcard, case kept)."""
    schema, name = table.split(".", 1)
    return f'"{schema}"."{name}"'
