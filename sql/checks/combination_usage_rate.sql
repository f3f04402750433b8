-- name: combination_usage_rate
-- domain: booking
-- severity: warning
-- warning: outside 5..15
-- critical: outside 2..30
-- unit: percent
-- returns: value
-- requires: public.booking_table_assignments
-- window: 1d
-- description: Share of bookings confirmed in the window that sit at more than one table (seed 000: target 5-15%, alert < 2% or > 30%).
-- runbook: runbooks/alerts.md#combination_usage_rate
-- Window 1d: seed 000 alerts from production-monitor --days=1, run every hour by cron.
WITH seated AS (
    SELECT
        a.booking_id,
        count(*) AS table_count
    FROM public.booking_table_assignments AS a
    WHERE a.assigned_at > now() - current_setting('venuedb.lookback')::interval
    GROUP BY a.booking_id
)

SELECT round(100.0 * count(*) FILTER (WHERE table_count > 1) / nullif(count(*), 0), 2)
FROM seated
