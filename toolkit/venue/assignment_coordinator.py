"""The assignment coordinator of pipeline V3 (seeds 001 and 004).

It walks one booking through the state machine enforced by the database
(created -> capacity_verified -> tables_planned -> tables_held -> confirmed, or
manual_review / failed) using the planner (plan_booking_tables) and
confirm_hold_assignment_tx, and reports through observability_events exactly as the
seeds' cheat sheet names them: source 'assignment.coordinator', event types
coordinator.start (mode), .lock_contention, .retry (reason, delay_ms), .manual_review,
.confirmed, .error. In shadow mode it does the same work inside a transaction that is
rolled back, then records what it would have done (context.shadow = true).

Latency (context.latency_ms of .confirmed, .manual_review and .error) runs from the start
of `process`, the first attempt, so retries and their back-off count: seed 000's "per
booking", not the last attempt's share of it.

The zone lock (the one auto_assign_booking takes, so that the two paths take turns in a
zone) is tried, never waited for while the attempt holds the booking: a miss rolls the
attempt back, records seed 000's zone_lock_conflict event in a transaction of its own
(so it survives whatever the attempt does next) and backs off like a retry
(coordinator.retry, reason zone_locked). After `zone_lock_retries` misses the booking is
left untouched for the next run (outcome noop, reason zone_locked), as a missed booking
lock is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from toolkit import backoff
from toolkit.server.urls import masked_first_line

SOURCE = "assignment.coordinator"
STATE_SOURCE = "assignment.state_machine"


@dataclass
class Outcome:
    booking_id: str
    mode: str
    status: str  # confirmed | manual_review | noop | skipped | error
    reason: str | None = None
    retries: int = 0
    lock_contention: bool = False
    zone_lock_conflicts: int = 0
    is_combination: bool = False
    table_ids: list[str] = field(default_factory=list)
    latency_ms: float = 0.0


class _Retry(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ZoneBusy(Exception):
    """Another transaction holds the zone's lock; the attempt was rolled back."""


# The transitions that report a failure, as enforce_assignment_state_transition v3 writes
# them (a shadow run records its transitions itself): into manual_review or failed, or
# back to capacity_verified because the plan or the hold was lost.
def _failed_transition(current: str | None, to: str) -> bool:
    return to in ("manual_review", "failed") or (
        to == "capacity_verified" and current in ("tables_planned", "tables_held")
    )


class Coordinator:
    """One coordinator per connection (a worker); `process` handles one booking."""

    def __init__(
        self,
        conn: Any,
        options: dict[str, Any],
        *,
        max_retries: int = 3,
        base_delay_ms: int = 25,
        zone_lock_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn = conn
        self.options = options
        self.max_retries = max_retries
        self.base_delay_ms = base_delay_ms
        self.zone_lock_retries = zone_lock_retries
        self.sleep = sleep
        self._shadow_events: list[tuple[str, str, str, dict[str, Any]]] | None = None
        self._started = time.perf_counter()

    def _elapsed_ms(self) -> float:
        """Milliseconds since `process` began: the booking's whole assignment so far."""
        return round((time.perf_counter() - self._started) * 1000, 2)

    def _delay_ms(self, attempt: int) -> int:
        return round(backoff.delay(self.base_delay_ms, attempt))

    # -- events ---------------------------------------------------------------------------
    def _event(
        self,
        event_type: str,
        booking: str,
        restaurant: str | None,
        context: dict[str, Any],
        severity: str = "info",
        source: str = SOURCE,
    ) -> None:
        if self._shadow_events is not None:
            self._shadow_events.append((source, event_type, severity, {**context, "shadow": True}))
            return
        self.conn.execute(
            "INSERT INTO observability_events (source, event_type, severity, restaurant_id, "
            "booking_id, context) VALUES (%s, %s, %s, %s, %s, %s)",
            (source, event_type, severity, restaurant, booking, Jsonb(context)),
        )

    def _commit(self) -> None:
        if self._shadow_events is None:
            self.conn.commit()

    # -- the state machine ----------------------------------------------------------------
    def _transition(
        self, booking: str, restaurant: str, current: str | None, to: str, reason: str
    ) -> str:
        self.conn.execute("SELECT set_config('venuedb.assignment_reason', %s, true)", (reason,))
        self.conn.execute(
            "UPDATE bookings SET assignment_state = %s, updated_at = now() WHERE id = %s",
            (to, booking),
        )
        if self._shadow_events is not None:  # the trigger's row is rolled back with the rest
            context: dict[str, Any] = {"from": current, "to": to, "step": reason}
            if _failed_transition(current, to):
                context["reason"] = reason
            self._shadow_events.append(
                (
                    STATE_SOURCE,
                    "booking.assignment_state_transition",
                    "warning" if to in ("manual_review", "failed") else "info",
                    {**context, "shadow": True},
                )
            )
        return to

    def process(
        self, booking: str, *, mode: str = "v3", options: dict[str, Any] | None = None
    ) -> Outcome:
        """mode 'v3' persists; mode 'shadow' rolls everything back and logs what it would do.
        `options`: the planner's options for this booking (its restaurant's rollout of
        FEATURE_COMBINATION_PLANNER), else the coordinator's."""
        planner = self.options if options is None else options
        started = self._started = time.perf_counter()
        outcome = Outcome(booking, mode, "error")
        shadow = mode == "shadow"
        self._shadow_events = [] if shadow else None
        row = self.conn.execute(
            "SELECT restaurant_id FROM bookings WHERE id = %s", (booking,)
        ).fetchone()
        restaurant = str(row[0]) if row else None
        self._event("coordinator.start", booking, restaurant, {"mode": mode})
        self._commit()
        locked = self.conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended('venuedb.booking:' || %s, 0))", (booking,)
        ).fetchone()[0]
        if not locked:
            self._event(
                "coordinator.lock_contention",
                booking,
                restaurant,
                {"reason": "lock_contention", "mode": mode},
                "warning",
            )
            self._commit()
            outcome.status, outcome.reason, outcome.lock_contention = (
                "noop",
                "lock_contention",
                True,
            )
            return self._finish(outcome, started, restaurant)
        try:
            self._run(booking, restaurant, outcome, mode, planner)
        except Exception as exc:  # unexpected: recorded, never raised into the batch
            self.conn.rollback()
            if shadow:
                self._shadow_events = []
            outcome.status, outcome.reason = "error", type(exc).__name__
            self._event(
                "coordinator.error",
                booking,
                restaurant,
                {
                    "reason": "exception",
                    "error": masked_first_line(exc)[:500],
                    "mode": mode,
                    "latency_ms": self._elapsed_ms(),
                },
                "error",
            )
            self._commit()
        finally:
            if shadow:
                self.conn.rollback()
            self.conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended('venuedb.booking:' || %s, 0))",
                (booking,),
            )
            self.conn.commit()
        return self._finish(outcome, started, restaurant)

    def _finish(self, outcome: Outcome, started: float, restaurant: str | None) -> Outcome:
        outcome.latency_ms = (time.perf_counter() - started) * 1000
        if self._shadow_events is not None:
            events, self._shadow_events = self._shadow_events, None
            for source, event_type, severity, context in events:
                self._event(event_type, outcome.booking_id, restaurant, context, severity, source)
            self.conn.commit()
        return outcome

    def _run(
        self,
        booking: str,
        restaurant: str | None,
        outcome: Outcome,
        mode: str,
        options: dict[str, Any],
    ) -> None:
        attempt = retries = zone_waits = 0
        while True:
            try:
                self._attempt(booking, outcome, mode, attempt, options)
                return
            except _ZoneBusy:
                # Its own budget: a busy zone is another booking being seated there, not
                # a failure of this one; a booking still waiting is left for the next run.
                if zone_waits == self.zone_lock_retries:
                    outcome.status, outcome.reason = "noop", "zone_locked"
                    return
                self._back_off(booking, restaurant, mode, "zone_locked", zone_waits, attempt)
                zone_waits += 1
            except _Retry as retry:
                if retries == self.max_retries:
                    self._escalate(booking, restaurant, outcome, mode, "retries_exhausted")
                    return
                self._back_off(booking, restaurant, mode, retry.reason, retries, attempt)
                retries += 1
                outcome.retries += 1
            attempt += 1

    def _back_off(
        self,
        booking: str,
        restaurant: str | None,
        mode: str,
        reason: str,
        tries: int,
        attempt: int,
    ) -> None:
        delay_ms = self._delay_ms(tries)
        self._event(
            "coordinator.retry",
            booking,
            restaurant,
            {"reason": reason, "delay_ms": delay_ms, "attempt": attempt + 1, "mode": mode},
        )
        self._commit()
        if self._shadow_events is None:
            self.sleep(delay_ms / 1000)

    def _escalate(
        self, booking: str, restaurant: str | None, outcome: Outcome, mode: str, reason: str
    ) -> None:
        state = self.conn.execute(
            "SELECT assignment_state FROM bookings WHERE id = %s FOR UPDATE", (booking,)
        ).fetchone()[0]
        if state != "manual_review":
            self._transition(booking, str(restaurant), state, "manual_review", reason)
        self._event(
            "coordinator.manual_review",
            booking,
            restaurant,
            {"reason": reason, "mode": mode, "latency_ms": self._elapsed_ms()},
            "warning",
        )
        self._commit()
        outcome.status, outcome.reason = "manual_review", reason

    def _attempt(
        self, booking: str, outcome: Outcome, mode: str, attempt: int, options: dict[str, Any]
    ) -> None:
        row = self.conn.execute(
            "SELECT restaurant_id, status, assignment_state, party_size FROM bookings "
            "WHERE id = %s FOR UPDATE",
            (booking,),
        ).fetchone()
        if row is None:
            raise LookupError(f"booking {booking} not found")
        restaurant, status, state, party = str(row[0]), row[1], row[2], row[3]
        if status not in ("pending", "pending_allocation") or state in (
            "confirmed",
            "manual_review",
            "failed",
        ):
            self._commit()
            outcome.status, outcome.reason = "skipped", f"status {status}, state {state}"
            return
        if state is None:
            state = self._transition(booking, restaurant, None, "created", "intake")
        if state in ("tables_planned", "tables_held"):
            state = self._transition(booking, restaurant, state, "capacity_verified", "replan")
        if state == "created":
            if not self._capacity_exists(restaurant, party):
                self._escalate(booking, restaurant, outcome, mode, "no_tables")
                return
            state = self._transition(booking, restaurant, state, "capacity_verified", "capacity_ok")
        plan = self.conn.execute(
            "SELECT zone_id, table_ids, is_combination FROM plan_booking_tables(%s, %s) "
            "ORDER BY rank LIMIT 1",
            (booking, Jsonb(options)),
        ).fetchone()
        if plan is None:
            self._escalate(booking, restaurant, outcome, mode, "no_tables")
            return
        zone, tables, is_combination = plan
        if not self._zone_locked(booking, restaurant, zone, mode, attempt):
            outcome.zone_lock_conflicts += 1
            raise _ZoneBusy()
        state = self._transition(booking, restaurant, state, "tables_planned", "planned")
        hold = self.conn.execute(
            "INSERT INTO table_holds (restaurant_id, booking_id, zone_id, start_at, end_at, "
            "expires_at, metadata) SELECT restaurant_id, id, %s, start_at, end_at, "
            "now() + interval '2 minutes', %s FROM bookings WHERE id = %s RETURNING id",
            (zone, Jsonb({"source": SOURCE}), booking),
        ).fetchone()[0]
        self.conn.execute(
            "INSERT INTO table_hold_members (hold_id, table_id) SELECT %s, unnest(%s::uuid[])",
            (hold, tables),
        )
        state = self._transition(booking, restaurant, state, "tables_held", "hold_placed")
        confirmed = self.conn.execute(
            "SELECT bool_and(confirmed) FROM confirm_hold_assignment_tx(%s, %s)", (hold, booking)
        ).fetchone()[0]
        if not confirmed:
            self.conn.execute("DELETE FROM table_holds WHERE id = %s", (hold,))
            self._transition(booking, restaurant, state, "capacity_verified", "conflict")
            self._commit()  # keeps confirm v12's evidence of the conflict
            raise _Retry("no_assignment")
        self._transition(booking, restaurant, state, "confirmed", "confirmed")
        outcome.status, outcome.is_combination = "confirmed", bool(is_combination)
        outcome.table_ids = [str(t) for t in tables]
        self._event(
            "coordinator.confirmed",
            booking,
            restaurant,
            {
                "mode": mode,
                "attempt": attempt + 1,
                "table_ids": outcome.table_ids,
                "is_combination": outcome.is_combination,
                "latency_ms": self._elapsed_ms(),
            },
        )
        self._commit()

    def _zone_locked(
        self, booking: str, restaurant: str, zone: Any, mode: str, attempt: int
    ) -> bool:
        """Try the zone's transaction-level lock. On a miss, roll the attempt back (its
        transitions and the booking's row lock) and record the conflict in a transaction
        of its own: written inside the attempt, a later rollback would erase it."""
        locked = self.conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('venuedb.zone:' || %s::text, 0))",
            (zone,),
        ).fetchone()[0]
        if locked:
            return True
        self.conn.rollback()
        self._event(
            "zone_lock_conflict",
            booking,
            restaurant,
            {"zone_id": str(zone), "attempt": attempt + 1, "mode": mode, "reason": "zone_locked"},
            "warning",
        )
        self._commit()
        return False

    def _capacity_exists(self, restaurant: str, party: int) -> bool:
        return bool(
            self.conn.execute(
                "SELECT EXISTS (SELECT 1 FROM table_inventory WHERE restaurant_id = %(r)s AND active "
                "AND capacity >= %(p)s) OR EXISTS (SELECT 1 FROM table_inventory WHERE "
                "restaurant_id = %(r)s AND active AND mobility = 'movable' GROUP BY zone_id "
                "HAVING sum(capacity) >= %(p)s)",
                {"r": restaurant, "p": party},
            ).fetchone()[0]
        )
