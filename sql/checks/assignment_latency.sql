-- name: assignment_latency
-- domain: booking
-- severity: warning
-- warning: > 10
-- critical: > 15
-- unit: seconds
-- returns: value
-- window: 1d
-- requires: public.observability_events
-- description: Average time to auto-assign one booking, over the assignments finished in the window (seed 000: target < 10 s per booking, alert > 15 s average), whatever their outcome: auto_assign_booking's auto_assign.summary (v2 measures it itself, from the call's start to its return, so a direct call is counted; a skipped booking was not an attempt) and the V3 coordinator's .confirmed, .manual_review and .error (from its first attempt, retries and back-off included); shadow runs aside. No assignment in the window is no data.
-- runbook: runbooks/booking-observability.md#assignment_latency
-- Window 1d: seed 000's "alert if > 15 seconds average" is over its daily monitor run.
-- Not rounded: 15.0004 s is over 15.
SELECT avg((e.context ->> 'latency_ms')::numeric) / 1000
FROM public.observability_events AS e
WHERE
    e.created_at > now() - current_setting('venuedb.lookback')::interval
    AND e.event_type IN (
        'auto_assign.summary', 'coordinator.confirmed', 'coordinator.manual_review',
        'coordinator.error'
    )
    AND e.context ? 'latency_ms'
    AND NOT coalesce((e.context ->> 'shadow')::boolean, false)
    AND (e.context ->> 'status') IS DISTINCT FROM 'skipped'
