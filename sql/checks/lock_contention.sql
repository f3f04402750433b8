-- name: lock_contention
-- domain: booking
-- severity: warning
-- warning: > 10
-- unit: events
-- returns: value
-- window: 1d
-- requires: public.observability_events
-- no_data: ok, the V3 coordinator did not run in the window (no coordinator.start): no booking lock was missed
-- description: Booking-lock misses of the V3 coordinator in the window: coordinator.lock_contention, a worker finding another one on the same booking (seed 004 cheat sheet: "lock miss, investigate long-running jobs"; seed 001: "outcome noop, reason lock_contention"). The threshold is the project's: the seeds name the event, not a number. 0 is a measurement when the coordinator ran; when it did not run nothing was measured.
-- runbook: runbooks/booking-observability.md#lock_contention
-- Window 1d: the seeds give none; a day of coordinator runs, like the other V3 counts.
WITH seen AS (
    SELECT
        count(*) FILTER (WHERE e.event_type = 'coordinator.lock_contention') AS misses,
        count(*) FILTER (WHERE e.event_type = 'coordinator.start') AS runs
    FROM public.observability_events AS e
    WHERE
        e.created_at > now() - current_setting('venuedb.lookback')::interval
        AND e.event_type IN ('coordinator.lock_contention', 'coordinator.start')
)

SELECT CASE WHEN seen.misses > 0 OR seen.runs > 0 THEN seen.misses END
FROM seen
