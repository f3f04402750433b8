"""Auto-assignment of pending bookings: routing, workers and the summary.

Per booking the route follows the seeds' flags, decided per restaurant by
toolkit.venue.flag_rollout.enabled_restaurants: the V3 coordinator when
FEATURE_ASSIGNMENT_PIPELINE_V3 is true and the restaurant is in its rollout (every
restaurant when the flag has no rollout row); otherwise the legacy path
(auto_assign_booking, with auto_assign.* events), preceded by a shadow run of the
coordinator when FEATURE_ASSIGNMENT_PIPELINE_V3_SHADOW is on. The flag false is a total
kill switch: no booking goes through V3, whatever the rollout says. Likewise the planner
plans combinations for a booking only when FEATURE_COMBINATION_PLANNER is true and its
restaurant is in that flag's rollout. Up to --parallel workers, each on its own
connection, one short transaction per step.

The events seed 000's checks read are written by the database paths themselves:
auto_assign_booking v2 (booking-observability) writes its auto_assign.summary and
zone_lock_conflict events in the caller's transaction, as it does for any application
that calls it; this command writes the summary only for an older version that does not
(the result then has no event_id).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from psycopg.types.json import Jsonb

from toolkit import stats
from toolkit.errors import BadInput
from toolkit.server import connection as db
from toolkit.venue.assignment_coordinator import Coordinator, Outcome
from toolkit.venue.flag_rollout import enabled_restaurants

Progress = Callable[[int, int, dict[str, Any]], None]  # (done, total, last result)
V3_FLAG = "FEATURE_ASSIGNMENT_PIPELINE_V3"
PLANNER_FLAG = "FEATURE_COMBINATION_PLANNER"


@dataclass(frozen=True)
class Routing:
    v3: bool = False
    shadow: bool = False
    parallel: int = 1
    max_retries: int = 3


@dataclass
class AssignSummary:
    considered: int = 0
    assigned: int = 0
    combinations: int = 0
    failed: int = 0
    skipped: int = 0
    manual_review: int = 0
    retries: int = 0
    lock_contention: int = 0
    zone_lock_conflicts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    workers: int = 1

    def percentile(self, p: float) -> float | None:
        value = stats.percentile(self.latencies_ms, p)
        return None if value is None else round(value, 2)

    def _rate(self, part: int) -> float | None:
        counted = self.considered - self.skipped
        return round(part / counted, 4) if counted else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "assigned": self.assigned,
            "combinations": self.combinations,
            "failed": self.failed,
            "skipped": self.skipped,
            "manual_review": self.manual_review,
            "retries": self.retries,
            "lock_contention": self.lock_contention,
            "zone_lock_conflicts": self.zone_lock_conflicts,
            "outcomes": self.outcomes,
            "paths": self.paths,
            "workers": self.workers,
            "duration_s": round(self.duration_s, 3),
            "confirmation_rate": self._rate(self.assigned),
            "manual_review_rate": self._rate(self.manual_review),
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

    def add(
        self,
        path: str,
        status: str,
        latency_ms: float,
        combination: bool = False,
        retries: int = 0,
        contention: bool = False,
        zone_lock_conflicts: int = 0,
    ) -> None:
        self.considered += 1
        self.paths[path] = self.paths.get(path, 0) + 1
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        self.latencies_ms.append(latency_ms)
        self.retries += retries
        self.lock_contention += int(contention)
        self.zone_lock_conflicts += zone_lock_conflicts
        if status == "confirmed":
            self.assigned += 1
            self.combinations += int(combination)
        elif status in ("skipped", "noop"):
            self.skipped += 1
        elif status == "manual_review":
            self.manual_review += 1
            self.failed += 1
        else:
            self.failed += 1


def pending_bookings(
    conn: Any, *, on: date | None, restaurant: str | None
) -> list[tuple[str, str]]:
    """(booking, restaurant) of pending bookings without tables, oldest seating first."""
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
        SELECT b.id, b.restaurant_id FROM bookings b
        WHERE b.status IN ('pending', 'pending_allocation')
          AND (%(on)s::date IS NULL OR b.booking_date = %(on)s::date)
          AND (%(restaurant)s::uuid IS NULL OR b.restaurant_id = %(restaurant)s::uuid)
          AND NOT EXISTS (SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = b.id)
        ORDER BY b.start_at, b.id
        """,
        params,
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _v3_release_applied(conn: Any) -> bool:
    return (
        conn.execute("SELECT to_regclass('public.assignment_state_transitions')").fetchone()[0]
        is not None
    )


@dataclass(frozen=True)
class _Routes:
    """Per restaurant: which take V3, which may have combinations planned."""

    v3: set[str]
    combinations: set[str]


def _routes(
    conn: Any, routing: Routing, options: dict[str, Any], restaurants: set[str], v3_applied: bool
) -> _Routes:
    """Each flag's own value is its kill switch: enabled_restaurants checks it before any
    rollout row, so false means no restaurant."""
    v3 = enabled_restaurants(conn, V3_FLAG, restaurants, routing.v3) if v3_applied else set()
    planner = bool(options.get("combination_planner", True))
    return _Routes(v3, enabled_restaurants(conn, PLANNER_FLAG, restaurants, planner))


def assign_pending(
    target: db.Target,
    options: dict[str, Any],
    *,
    routing: Routing | None = None,
    on: date | None = None,
    restaurant: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> AssignSummary:
    routing = routing or Routing()
    summary = AssignSummary(workers=routing.parallel)
    started = time.monotonic()
    with db.connect(target, autocommit=False, purpose="assign") as conn:
        if (
            db.scalar(conn, "SELECT to_regprocedure('public.auto_assign_booking(uuid,jsonb)')")
            is None
        ):
            raise BadInput(
                "auto_assign_booking() is not installed: apply the table-combinations "
                "release first (`venuedb apply table-combinations`)"
            )
        bookings = pending_bookings(conn, on=on, restaurant=restaurant)
        if limit is not None:
            bookings = bookings[:limit]
        v3_applied = _v3_release_applied(conn)
        routes = _routes(conn, routing, options, {r for _, r in bookings}, v3_applied)
        conn.commit()
    single_only = {**options, "combination_planner": False}
    if not v3_applied and (routing.v3 or routing.shadow) and warn:
        warn(
            "the assignment-pipeline-v3 release is not applied: every booking takes the legacy path"
        )
    work: queue.Queue[tuple[str, str]] = queue.Queue()
    for item in bookings:
        work.put(item)
    lock = threading.Lock()
    done = [0]
    crashed: list[BaseException] = []

    def worker() -> None:
        try:
            _work()
        except BaseException as exc:  # re-raised in the caller's thread below
            crashed.append(exc)

    def _work() -> None:
        with db.connect(target, autocommit=False, purpose="assign worker") as wconn:
            coordinator = Coordinator(wconn, options, max_retries=routing.max_retries)
            while True:
                try:
                    booking, rest = work.get_nowait()
                except queue.Empty:
                    return
                use_v3 = rest in routes.v3
                shadow = v3_applied and routing.shadow and not use_v3
                planned = options if rest in routes.combinations else single_only
                result = _one(wconn, coordinator, booking, rest, planned, use_v3, shadow)
                with lock:
                    summary.add(*result)
                    done[0] += 1
                    if progress:
                        progress(done[0], len(bookings), {"status": result[1]})

    threads = [
        threading.Thread(target=worker, name=f"assign-{i}")
        for i in range(max(1, min(routing.parallel, len(bookings) or 1)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]
    summary.duration_s = time.monotonic() - started
    return summary


def _one(
    conn: Any,
    coordinator: Coordinator,
    booking: str,
    restaurant: str,
    options: dict[str, Any],
    use_v3: bool,
    shadow: bool,
) -> tuple[Any, ...]:
    started = time.perf_counter()
    if use_v3:
        outcome = coordinator.process(booking, mode="v3", options=options)
        return _from_outcome("v3", outcome)
    shadow_outcome: Outcome | None = (
        coordinator.process(booking, mode="shadow", options=options) if shadow else None
    )
    conn.execute(
        "INSERT INTO observability_events (source, event_type, restaurant_id, booking_id, "
        "context) VALUES ('auto_assign', 'auto_assign.attempt.start', %s, %s, %s)",
        (restaurant, booking, Jsonb({"attempt": 1})),
    )
    conn.commit()
    result = conn.execute(
        "SELECT auto_assign_booking(%s, %s)", (booking, Jsonb(options))
    ).fetchone()[0]
    if "event_id" not in result:
        # auto_assign_booking v1 (before booking-observability) writes no summary itself.
        context = {
            k: result.get(k)
            for k in ("status", "table_ids", "is_combination", "attempts", "reason")
            if k in result
        }
        context["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        conn.execute(
            "INSERT INTO observability_events (source, event_type, restaurant_id, booking_id, "
            "context) VALUES ('auto_assign', 'auto_assign.summary', %s, %s, %s)",
            (restaurant, booking, Jsonb(context)),
        )
    conn.commit()
    status = str(result.get("status"))
    if shadow_outcome is not None:
        conn.execute(
            "INSERT INTO observability_events (source, event_type, restaurant_id, booking_id, "
            "context) VALUES ('assignment.coordinator', 'coordinator.shadow_result', %s, %s, %s)",
            (
                restaurant,
                booking,
                Jsonb(
                    {
                        "mode": "shadow",
                        "shadow": True,
                        "would": shadow_outcome.status,
                        "would_reason": shadow_outcome.reason,
                        "would_tables": shadow_outcome.table_ids,
                        "legacy": status,
                        "legacy_tables": result.get("table_ids"),
                        "agrees": (shadow_outcome.status == "confirmed") == (status == "confirmed"),
                    }
                ),
            ),
        )
        conn.commit()
    mapped = {"no_tables": "failed", "conflict": "failed"}.get(status, status)
    return (
        "legacy+shadow" if shadow else "legacy",
        mapped,
        (time.perf_counter() - started) * 1000,
        bool(result.get("is_combination")),
        0,
        False,
        int(result.get("zone_lock_conflicts") or 0),
    )


def _from_outcome(path: str, outcome: Outcome) -> tuple[Any, ...]:
    return (
        path,
        outcome.status,
        outcome.latency_ms,
        outcome.is_combination,
        outcome.retries,
        outcome.lock_contention,
        outcome.zone_lock_conflicts,
    )
