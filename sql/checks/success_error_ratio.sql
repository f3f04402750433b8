-- name: success_error_ratio
-- domain: booking
-- severity: warning
-- warning: < 97
-- unit: percent
-- returns: value
-- window: 6h
-- requires: public.observability_events
-- description: Seed 004's graduation metric, its "Success/error ratio" query summed over its event types: of the assignment.coordinator and assignment.state_machine events in the window, the share without context.reason (successes; failures carry a reason). Raise FEATURE_ASSIGNMENT_PIPELINE_V3_MAX_PARALLEL only while it stays > 97%. True since booking-observability: the state machine v3 writes a reason only for a failure (into manual_review or failed, back after a lost plan or hold), where v2 wrote one on every transition and every transition read as a failure. No V3 event in the window is no data.
-- runbook: runbooks/booking-observability.md#success_error_ratio
-- Window 6h: the seed's query reads the last 6 hours. A gate before raising MAX_PARALLEL,
-- not a page: severity warning, no `for`. Not rounded: 96.996 is under 97.
SELECT 100.0 * count(*) FILTER (WHERE e.context ->> 'reason' IS NULL) / nullif(count(*), 0)
FROM public.observability_events AS e
WHERE
    e.source IN ('assignment.coordinator', 'assignment.state_machine')
    AND e.created_at > now() - current_setting('venuedb.lookback')::interval
