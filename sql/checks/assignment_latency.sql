-- name: assignment_latency
-- domain: booking
-- severity: warning
-- warning: > 10
-- critical: > 15
-- unit: seconds
-- returns: value
-- requires: public.observability_events
-- description: Average time to auto-assign one booking in the window (seed 000: target < 10 s per booking, alert > 15 s average).
-- runbook: seed 000 "Troubleshooting: Performance degradation"
SELECT round(avg((e.context ->> 'latency_ms')::numeric) / 1000, 3)
FROM public.observability_events AS e
WHERE
    e.event_type IN ('auto_assign.summary', 'coordinator.confirmed')
    AND e.context ? 'latency_ms'
    AND e.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
