-- name: confirmation_rate_excluding_cancelled
-- domain: booking
-- severity: info
-- unit: percent
-- returns: value
-- requires: public.bookings
-- window: 1d
-- description: The project's confirmation rate: bookings created in the window that are confirmed, checked in or completed, out of those not cancelled. It differs from seed 001's confirmation_rate (the alert) in two ways: a booking that went on to check-in or completion counts as confirmed here and as not confirmed in the seed, and a cancelled booking is left out here while the seed counts it as not confirmed. So over a day with guests seated and cancellations this reads higher (the demo: 99.79% against the seed's 61.27%). Information only: it answers "were the bookings still wanted seated", not the seed's alert.
-- runbook: runbooks/alerts.md#confirmation_rate_excluding_cancelled
-- Window 1d (the seed's daily summary, 5c): in the seed's 5-minute window a booking has
-- rarely gone on to check-in or completion, so the two readings differ mostly over a day.
SELECT
    100.0 * count(*) FILTER (WHERE b.status IN ('confirmed', 'checked_in', 'completed'))
    / nullif(count(*) FILTER (WHERE b.status <> 'cancelled'), 0)
FROM public.bookings AS b
WHERE b.created_at > now() - current_setting('venuedb.lookback')::interval
