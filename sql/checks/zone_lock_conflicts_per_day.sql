-- name: zone_lock_conflicts_per_day
-- domain: booking
-- severity: warning
-- warning: > 5
-- unit: conflicts/day
-- returns: value
-- requires: public.observability_events
-- description: Contended zone locks during auto-assignment, per day over the window (seed 000: target 0, alert > 5 per day).
-- runbook: seed 000 "Monitoring & Alerts: Zone Lock Conflicts"
SELECT
    round(
        count(*)::numeric / coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int,
        2
    )
FROM public.observability_events AS e
WHERE
    e.event_type = 'zone_lock_conflict'
    AND e.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
