-- name: coordinator_error_rate
-- domain: booking
-- severity: critical
-- warning: > 1
-- critical: > 5
-- unit: percent
-- returns: value
-- requires: public.observability_events
-- description: Share of assignment.* events in the window that are errors or failures (seed 001 panel 3: alert error_rate > 5%).
-- runbook: seed 004 "Event Cheat Sheet: coordinator.error"; flip FEATURE_ASSIGNMENT_PIPELINE_V3 off if sustained
SELECT
    round(
        100.0 * count(*) FILTER (
            WHERE e.event_type LIKE '%error%' OR e.event_type LIKE '%failure%'
        ) / nullif(count(*), 0),
        2
    )
FROM public.observability_events AS e
WHERE
    e.source LIKE 'assignment.%'
    AND e.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
