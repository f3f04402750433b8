"""Shadow-table swaps that a killed or failed run left half done (toolkit/ops/shadow_swap.py).

A swap works in steps that each commit: the shadow table and its sync trigger, then the
copy batches, then the rename. A run that dies in between leaves the shadow, still
mirrored by the trigger on the live table, carrying the constraint it was building. That
is an operation in progress, not a clean schema: `status` and `verify` report it, and
the next `apply` or `rollback` either resumes it (when its plan runs the revision that
builds the same constraint on the same table) or abandons it, dropping every shadow
object, so that no shadow carrying another rule keeps refusing legal writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit.errors import LockBusy
from toolkit.ops.shadow_swap import SHADOW_SUFFIX, STARTED


@dataclass(frozen=True)
class InterruptedSwap:
    table: str
    shadow: str
    building: str | None  # the constraint the shadow carries (the swap's goal)
    rows_copied: int
    since: str | None  # when the shadow was created, if it says

    def describe(self) -> str:
        goal = self.building or "an unknown constraint"
        since = f" since {self.since}" if self.since else ""
        return (
            f"a shadow-table swap of {self.table} to {goal} is in progress{since} "
            f"({self.rows_copied} rows copied into {self.shadow})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "shadow": self.shadow,
            "building": self.building,
            "rows_copied": self.rows_copied,
            "since": self.since,
        }


def find(conn: Any) -> list[InterruptedSwap]:
    """Every shadow table in schema public (a psycopg connection)."""
    rows = conn.execute(
        """
        SELECT c.relname,
               (SELECT x.conname FROM pg_constraint x WHERE x.conrelid = c.oid
                AND x.contype = 'x' LIMIT 1),
               obj_description(c.oid, 'pg_class')
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
          AND right(c.relname, length(%(suffix)s)) = %(suffix)s
        ORDER BY c.relname
        """,
        {"suffix": SHADOW_SUFFIX},
    ).fetchall()
    found = []
    for shadow, constraint, comment in rows:
        (copied,) = conn.execute(f'SELECT count(*) FROM public."{shadow}"').fetchone()
        since = comment[len(STARTED) :] if comment and comment.startswith(STARTED) else None
        found.append(
            InterruptedSwap(
                table=shadow[: -len(SHADOW_SUFFIX)],
                shadow=shadow,
                building=constraint.removesuffix(SHADOW_SUFFIX) if constraint else None,
                rows_copied=int(copied),
                since=since,
            )
        )
    return found


def abandon(conn: Any, swap: InterruptedSwap, lock_timeout: str = "2s") -> None:
    """Drop the sync trigger, its function and the shadow, in one short transaction."""
    import psycopg.errors

    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            conn.execute(
                f'DROP TRIGGER IF EXISTS "{swap.table}{SHADOW_SUFFIX}_sync" '
                f'ON public."{swap.table}"'
            )
            conn.execute(f'DROP FUNCTION IF EXISTS public."venuedb_sync_{swap.shadow}"()')
            conn.execute(f'DROP TABLE IF EXISTS public."{swap.shadow}"')
    except psycopg.errors.LockNotAvailable:
        raise LockBusy(
            f"could not get the lock on {swap.table} within {lock_timeout} to abandon "
            f"{swap.describe()}. Nothing was changed; retry when its writers are quieter"
        ) from None


def any_left(target: Any, purpose: str = "rollback plan") -> bool:
    """Whether the database `target` names has a swap a run left half done."""
    from toolkit.server import connection as db

    with db.connect(target, purpose=purpose) as conn:
        return bool(find(conn))
