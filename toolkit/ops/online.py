"""Online DDL for revisions: changes that must not block traffic on big tables.

`CREATE INDEX CONCURRENTLY` cannot run inside a transaction, so these helpers step out
of the revision's transaction (Alembic's autocommit block) and are idempotent: after
a crash or a lock timeout, running the revision again finishes the job (an invalid
index left by a failed concurrent build is dropped and rebuilt). In a rehearsal
(`venuedb apply --rehearse`: on a scratch copy of the target, or with
`--rehearse-in-place` inside one transaction on the target that is rolled back) the plain
transactional form runs instead, so the rehearsal still shows the result and the locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from alembic import context, op

from toolkit.ops.sql_files import execute_sql


def in_rehearsal() -> bool:
    return bool(context.config.attributes.get("venuedb_rehearse"))


@contextmanager
def outside_transaction() -> Iterator[None]:
    """Commit what the revision did so far and run the block in autocommit mode.

    Each statement in the block is its own short transaction, so no lock taken by the
    revision's earlier statements is held while it runs. In a rehearsal the block runs
    inside the one rolled-back transaction instead.
    """
    block = nullcontext() if in_rehearsal() else op.get_context().autocommit_block()
    with block:
        yield


def _index_state(name: str) -> str:
    """missing | valid | invalid (a concurrent build that did not finish)."""
    row = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = %(name)s",
            {"name": name},
        )
        .fetchone()
    )
    if row is None:
        return "missing"
    return "valid" if row[0] else "invalid"


def create_index_concurrently(name: str, definition: str, *, unique: bool = False) -> None:
    """CREATE [UNIQUE] INDEX CONCURRENTLY name <definition>, e.g. 'ON public.t USING btree (c)'."""
    kind = "UNIQUE INDEX" if unique else "INDEX"
    statement = f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} {definition}"

    def build() -> None:
        state = _index_state(name)
        if state == "invalid":
            execute_sql(f"DROP INDEX CONCURRENTLY IF EXISTS public.{name}")
        if state != "valid":
            execute_sql(statement)

    _concurrently(statement, build)


def drop_index_concurrently(name: str) -> None:
    _concurrently(f"DROP INDEX CONCURRENTLY IF EXISTS public.{name}")


def _concurrently(statement: str, online: Callable[[], None] | None = None) -> None:
    """Run a CONCURRENTLY `statement` outside the revision's transaction: offline, written
    in an autocommit block; in a rehearsal, its plain form (without CONCURRENTLY) in the
    transaction; online, `online()` (by default the statement) in an autocommit block."""
    if context.is_offline_mode():
        with op.get_context().autocommit_block():
            op.execute(statement)
        return
    if in_rehearsal():
        op.execute(statement.replace(" CONCURRENTLY", "", 1))
        return
    with op.get_context().autocommit_block():
        if online is None:
            execute_sql(statement)
        else:
            online()
