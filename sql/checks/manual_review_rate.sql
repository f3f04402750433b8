-- name: manual_review_rate
-- domain: booking
-- severity: warning
-- warning: > 10
-- critical: > 20
-- unit: percent
-- returns: value
-- requires: public.bookings.assignment_state
-- description: Share of bookings created in the window waiting in manual_review (seed 001: < 10% of total; panel alert > 20% of daily bookings).
-- runbook: seed 001 "Troubleshooting: High manual review rate"
SELECT
    round(
        100.0 * count(*) FILTER (WHERE b.assignment_state = 'manual_review')
        / nullif(count(*), 0),
        2
    )
FROM public.bookings AS b
WHERE
    b.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
