-- name: average_tables_per_booking
-- domain: booking
-- severity: info
-- warning: > 3
-- unit: tables
-- returns: value
-- requires: public.booking_table_assignments
-- window: 1d
-- no_data: ok, no booking was seated in the window, so none sits at more tables than k_max allows
-- description: Average number of tables per booking seated in the window (seed 000 "Review Metrics"); above k_max means something bypasses the planner.
-- runbook: runbooks/alerts.md#average_tables_per_booking
-- Window 1d: seed 000 reviews it 24 hours after the deploy, from production-monitor --days=1.
SELECT round(avg(table_count), 2)
FROM (
    SELECT count(*) AS table_count
    FROM public.booking_table_assignments AS a
    WHERE a.assigned_at > now() - current_setting('venuedb.lookback')::interval
    GROUP BY a.booking_id
) AS per_booking
