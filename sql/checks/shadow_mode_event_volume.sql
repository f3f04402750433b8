-- name: shadow_mode_event_volume
-- domain: booking
-- severity: info
-- unit: events/booking
-- returns: value
-- requires: public.observability_events
-- window: 1h
-- description: State-machine events per booking seen by the pipeline in the window (seed 001 Phase 4, over the last hour: coordinator_events ~ unique_bookings); no data when the pipeline saw none, which seed 001 troubleshoots once shadow mode is on.
-- runbook: runbooks/alerts.md#shadow_mode_event_volume
SELECT
    round(
        count(*) FILTER (WHERE e.source = 'assignment.state_machine')::numeric
        / nullif(count(DISTINCT e.booking_id), 0),
        2
    )
FROM public.observability_events AS e
WHERE
    e.source IN ('assignment.state_machine', 'assignment.coordinator')
    AND e.created_at > now() - current_setting('venuedb.lookback')::interval
