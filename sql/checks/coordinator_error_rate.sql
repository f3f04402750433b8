-- name: coordinator_error_rate
-- domain: booking
-- severity: critical
-- warning: > 1
-- critical: > 5
-- unit: percent
-- returns: value
-- window: 5m
-- for: 10m
-- requires: public.observability_events
-- description: Seed 001 Panel 3, its formula unchanged: of the events of sources assignment.* in the window (coordinator and state machine, shadow runs included, as the panel counts them), the share whose event_type names an error or a failure (coordinator.error). Alert error_rate > 5% for more than 10 minutes; seed 004: page on-call, flip FEATURE_ASSIGNMENT_PIPELINE_V3 off if sustained. No V3 event in the window is no data.
-- runbook: runbooks/booking-observability.md#coordinator_error_rate
-- Window 5m and for 10m: Panel 3 buckets by 5 minutes and alerts when the rate stays
-- over 5% for more than 10 minutes; each scrape reads one bucket's worth and Prometheus
-- fires after 10 minutes of breaches. Not rounded: 5.004 is over 5.
SELECT
    100.0 * count(*) FILTER (
        WHERE e.event_type LIKE '%error%' OR e.event_type LIKE '%failure%'
    ) / nullif(count(*), 0)
FROM public.observability_events AS e
WHERE
    e.source LIKE 'assignment.%'
    AND e.created_at > now() - current_setting('venuedb.lookback')::interval
