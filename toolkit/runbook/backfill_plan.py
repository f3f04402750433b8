"""`venuedb backfill run|resume NAME --plan`: the rows still to do (counted as `--dry-run`
counts them), where the run would start, and the batches it would take with these
options. Reads only: no progress row, no record, no lock."""

from __future__ import annotations

import math
from typing import Any

from toolkit.errors import BadInput
from toolkit.runbook.backfill import Backfill, Options, standing
from toolkit.server import connection as db


def plan_backfill(target: db.Target, backfill: Backfill, options: Options) -> dict[str, Any]:
    with db.connect(target, purpose=f"backfill {backfill.name} (plan)") as conn:
        where = standing(conn, backfill)
        if where is None:
            raise BadInput(
                f"backfill {backfill.name}: its table public.{backfill.table} or function "
                f"{backfill.function} does not exist (is its release applied?)"
            )
        progress = _progress(conn, backfill.name)
    rows = where.remaining if options.max_rows is None else min(where.remaining, options.max_rows)
    batches = math.ceil(rows / options.batch_size) if rows else 0
    resumes = where.done > 0 and not options.restart
    return {
        "name": backfill.name,
        "table": backfill.table,
        "function": backfill.function,
        "remaining": where.remaining,
        "done_by_current_run": where.done,
        "starts": (
            f"after key {progress['last_key']} (the current run's last committed batch)"
            if resumes and progress and progress.get("last_key") is not None
            else "at the first key"
        ),
        "state": progress["state"] if progress else "not started",
        "rows_planned": rows,
        "batch_size": options.batch_size,
        "batches": batches,
        "adaptive": options.adaptive,
        "sleep_seconds_between_batches": options.sleep,
        "sleep_seconds_total": round(max(batches - 1, 0) * options.sleep, 3),
        "max_rows": options.max_rows,
        "max_duration_seconds": options.max_duration,
        "lock_timeout_seconds": options.lock_timeout,
        "statement_timeout_seconds": options.statement_timeout,
    }


def _progress(conn: Any, name: str) -> dict[str, Any] | None:
    exists = conn.execute("SELECT to_regclass('venuedb.backfill_progress') IS NOT NULL")
    if not exists.fetchone()[0]:
        return None
    row = conn.execute(
        "SELECT state, last_key FROM venuedb.backfill_progress WHERE name = %s", (name,)
    ).fetchone()
    return {"state": row[0], "last_key": row[1]} if row else None
