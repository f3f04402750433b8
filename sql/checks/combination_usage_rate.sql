-- name: combination_usage_rate
-- domain: booking
-- severity: warning
-- warning: outside 5..15
-- critical: outside 2..30
-- unit: percent
-- returns: value
-- requires: public.booking_table_assignments
-- description: Share of bookings confirmed in the window that sit at more than one table (seed 000: target 5-15%, alert < 2% or > 30%).
-- runbook: seed 000 "Troubleshooting: No combinations being used" / "High combination usage"
WITH seated AS (
    SELECT
        a.booking_id,
        count(*) AS table_count
    FROM public.booking_table_assignments AS a
    WHERE
        a.assigned_at
        > now()
        - make_interval(
            days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int
        )
    GROUP BY a.booking_id
)

SELECT round(100.0 * count(*) FILTER (WHERE table_count > 1) / nullif(count(*), 0), 2)
FROM seated
