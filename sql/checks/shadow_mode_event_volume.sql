-- name: shadow_mode_event_volume
-- domain: booking
-- severity: info
-- unit: events/booking
-- returns: value
-- requires: public.observability_events
-- description: State-machine events per booking seen by the pipeline in the last hour (seed 001 Phase 4: coordinator_events ~ unique_bookings); no data when the pipeline saw none, which seed 001 troubleshoots once shadow mode is on.
-- runbook: seed 001 "Troubleshooting: Shadow mode shows no events"
SELECT
    round(
        count(*) FILTER (WHERE e.source = 'assignment.state_machine')::numeric
        / nullif(count(DISTINCT e.booking_id), 0),
        2
    )
FROM public.observability_events AS e
WHERE
    e.source IN ('assignment.state_machine', 'assignment.coordinator')
    AND e.created_at > now() - interval '1 hour'
