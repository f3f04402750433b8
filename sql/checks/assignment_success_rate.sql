-- name: assignment_success_rate
-- domain: booking
-- severity: warning
-- warning: < 90
-- critical: < 80
-- unit: percent
-- returns: value
-- requires: public.observability_events
-- description: Share of auto-assignment attempts in the window that confirmed tables, legacy and V3 (seed 000: target > 90%, alert < 80%).
-- runbook: seed 000 "Monitoring & Alerts: Assignment Success Rate"
SELECT
    round(
        100.0 * count(*) FILTER (
            WHERE
            (e.event_type = 'auto_assign.summary' AND e.context ->> 'status' = 'confirmed')
            OR e.event_type = 'coordinator.confirmed'
        ) / nullif(count(*), 0),
        2
    )
FROM public.observability_events AS e
WHERE
    e.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
    AND e.event_type IN (
        'auto_assign.summary', 'coordinator.confirmed', 'coordinator.manual_review',
        'coordinator.error'
    )
    AND NOT coalesce((e.context ->> 'shadow')::boolean, false)
