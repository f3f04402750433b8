"""Auto-assignment of pending bookings: one short transaction per booking.

The work happens in the database (auto_assign_booking: plan, zone lock, hold,
confirm_hold_assignment_tx, retry on a concurrent conflict); this module picks the
bookings, calls it, and measures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from toolkit import connection as db
from toolkit.errors import BadInput

Progress = Callable[[int, int, dict[str, Any]], None]  # (done, total, last result)


@dataclass
class AssignSummary:
    considered: int = 0
    assigned: int = 0
    combinations: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return round(ordered[index], 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "assigned": self.assigned,
            "combinations": self.combinations,
            "failed": self.failed,
            "skipped": self.skipped,
            "outcomes": self.outcomes,
            "duration_s": round(self.duration_s, 3),
            "latency_ms": {
                "p50": self.percentile(50),
                "p95": self.percentile(95),
                "p99": self.percentile(99),
                "max": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
            },
            "combination_rate": round(self.combinations / self.assigned, 4)
            if self.assigned
            else None,
        }


def pending_bookings(conn: Any, *, on: date | None, restaurant: str | None) -> list[str]:
    """Pending bookings without tables, oldest seating first."""
    params: dict[str, Any] = {"on": on, "restaurant": restaurant}
    if restaurant is not None:
        found = conn.execute(
            "SELECT id FROM restaurants WHERE id::text = %(restaurant)s OR slug = %(restaurant)s",
            params,
        ).fetchone()
        if found is None:
            raise BadInput(f"no restaurant with id or slug {restaurant!r}")
        params["restaurant"] = found[0]
    rows = conn.execute(
        """
        SELECT b.id FROM bookings b
        WHERE b.status IN ('pending', 'pending_allocation')
          AND (%(on)s::date IS NULL OR b.booking_date = %(on)s::date)
          AND (%(restaurant)s::uuid IS NULL OR b.restaurant_id = %(restaurant)s::uuid)
          AND NOT EXISTS (SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = b.id)
        ORDER BY b.start_at, b.id
        """,
        params,
    ).fetchall()
    return [str(r[0]) for r in rows]


def assign_pending(
    target: db.Target,
    options: dict[str, Any],
    *,
    on: date | None = None,
    restaurant: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> AssignSummary:
    summary = AssignSummary()
    started = time.monotonic()
    with db.connect(target, autocommit=False, purpose="assign") as conn:
        if (
            conn.execute(
                "SELECT to_regprocedure('public.auto_assign_booking(uuid,jsonb)')"
            ).fetchone()[0]
            is None
        ):
            raise BadInput(
                "auto_assign_booking() is not installed: apply the table-combinations "
                "release first (`venuedb apply table-combinations`)"
            )
        bookings = pending_bookings(conn, on=on, restaurant=restaurant)
        conn.commit()
        if limit is not None:
            bookings = bookings[:limit]
        payload = json.dumps(options)
        for index, booking in enumerate(bookings, 1):
            t0 = time.perf_counter()
            result = conn.execute(
                "SELECT auto_assign_booking(%s, %s::jsonb)", (booking, payload)
            ).fetchone()[0]
            conn.commit()
            summary.latencies_ms.append((time.perf_counter() - t0) * 1000)
            _count(summary, result)
            if progress:
                progress(index, len(bookings), result)
    summary.duration_s = time.monotonic() - started
    return summary


def _count(summary: AssignSummary, result: dict[str, Any]) -> None:
    status = str(result.get("status"))
    summary.considered += 1
    summary.outcomes[status] = summary.outcomes.get(status, 0) + 1
    if status == "confirmed":
        summary.assigned += 1
        summary.combinations += int(bool(result.get("is_combination")))
    elif status == "skipped":
        summary.skipped += 1
    else:
        summary.failed += 1
