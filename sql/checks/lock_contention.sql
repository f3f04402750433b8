-- name: lock_contention
-- domain: booking
-- severity: warning
-- warning: > 10
-- unit: events
-- returns: value
-- requires: public.observability_events
-- description: Coordinator per-booking lock misses in the window (seed 004: coordinator.lock_contention, investigate long-running jobs).
-- runbook: seed 001 "Troubleshooting: Lock contention warnings"
SELECT count(*)
FROM public.observability_events AS e
WHERE
    e.event_type = 'coordinator.lock_contention'
    AND e.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
