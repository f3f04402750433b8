-- name: manual_review_rate
-- domain: booking
-- severity: warning
-- warning: > 10
-- critical: > 20
-- unit: percent
-- returns: value
-- requires: public.bookings.assignment_state
-- window: 1d
-- description: Share of bookings created in the window waiting in manual_review (seed 001: < 10% of total; panel alert > 20% of daily bookings).
-- runbook: runbooks/alerts.md#manual_review_rate
-- Window 1d: Panel 2 counts the last 24 hours against "20% of daily bookings"; the seed
-- gives no `for`.
SELECT
    round(
        100.0 * count(*) FILTER (WHERE b.assignment_state = 'manual_review')
        / nullif(count(*), 0),
        2
    )
FROM public.bookings AS b
WHERE b.created_at > now() - current_setting('venuedb.lookback')::interval
