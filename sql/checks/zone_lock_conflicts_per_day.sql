-- name: zone_lock_conflicts_per_day
-- domain: booking
-- severity: warning
-- warning: > 5
-- unit: conflicts/day
-- returns: value
-- window: 1d
-- requires: public.observability_events
-- no_data: ok, no auto-assignment ran in the window (no auto_assign.summary, no coordinator.start): nothing contended for a zone, which is seed 000's target
-- description: Zone locks found taken during auto-assignment (zone_lock_conflict events), per day over the window (seed 000: target 0, alert > 5 per day). Both paths record every miss: auto_assign_booking v2 in the transaction that commits its outcome (its bounded wait never aborts it), the V3 coordinator in a transaction of its own; a longer or shorter window is scaled to a day.
-- runbook: runbooks/booking-observability.md#zone_lock_conflicts_per_day
-- Window 1d: the seed counts conflicts per day. The count is 0 (a measurement) when
-- assignments ran without a conflict, and NULL when none ran at all: then nothing was
-- measured, and the header says why that silence is nonetheless the healthy answer.
WITH seen AS (
    SELECT
        count(*) FILTER (WHERE e.event_type = 'zone_lock_conflict') AS conflicts,
        count(*) FILTER (
            WHERE e.event_type IN ('auto_assign.summary', 'coordinator.start')
        ) AS assignments
    FROM public.observability_events AS e
    WHERE
        e.created_at > now() - current_setting('venuedb.lookback')::interval
        AND e.event_type IN ('zone_lock_conflict', 'auto_assign.summary', 'coordinator.start')
)

SELECT
    CASE
        WHEN seen.conflicts > 0 OR seen.assignments > 0
            THEN
                seen.conflicts * 86400.0
                / extract(EPOCH FROM current_setting('venuedb.lookback')::interval)
    END
FROM seen
