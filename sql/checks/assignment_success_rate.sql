-- name: assignment_success_rate
-- domain: booking
-- severity: warning
-- warning: < 90
-- critical: < 80
-- unit: percent
-- returns: value
-- window: 1d
-- requires: public.observability_events
-- description: Share of the auto-assignments finished in the window that confirmed tables (seed 000: target > 90%, alert < 80%): legacy, auto_assign_booking's auto_assign.summary (confirmed out of confirmed, no_tables and conflict; a skipped booking was not an attempt), and V3, coordinator.confirmed out of .confirmed, .manual_review and .error; shadow runs aside. auto_assign_booking v2 (booking-observability) writes its summary itself, so an application calling it directly is counted. No assignment in the window is no data, not a pass.
-- runbook: runbooks/booking-observability.md#assignment_success_rate
-- Window 1d: seed 000's monitor runs hourly over the last day (production-monitor.ts
-- --days=1) and gives no `for`. Not rounded: 79.996 is under 80.
SELECT
    100.0 * count(*) FILTER (
        WHERE
        (e.event_type = 'auto_assign.summary' AND e.context ->> 'status' = 'confirmed')
        OR e.event_type = 'coordinator.confirmed'
    ) / nullif(count(*), 0)
FROM public.observability_events AS e
WHERE
    e.created_at > now() - current_setting('venuedb.lookback')::interval
    AND e.event_type IN (
        'auto_assign.summary', 'coordinator.confirmed', 'coordinator.manual_review',
        'coordinator.error'
    )
    AND NOT coalesce((e.context ->> 'shadow')::boolean, false)
    AND (e.context ->> 'status') IS DISTINCT FROM 'skipped'
