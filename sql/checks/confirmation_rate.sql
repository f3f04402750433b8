-- name: confirmation_rate
-- domain: booking
-- severity: critical
-- warning: < 95
-- critical: < 90
-- unit: percent
-- returns: value
-- requires: public.bookings
-- window: 5m
-- for: 10m
-- description: Seed 001's confirmation rate: bookings created in the window whose status is 'confirmed', out of every booking created in it, cancelled included (Panel 1; Phase 3 target >= 95%, alert < 90% for more than 10 minutes). A booking already checked in or completed counts as not confirmed, as in the seed; confirmation_rate_excluding_cancelled is the project's reading.
-- runbook: runbooks/alerts.md#confirmation_rate
-- The seed's formula, unchanged but for nullif: 100.0 * COUNT(*) FILTER (WHERE status =
-- 'confirmed') / COUNT(*). No booking in the window is no data, not a division by zero.
-- Window 5m and for 10m: Panel 1 buckets the rate by 5 minutes and pages when it stays
-- under 90% for more than 10 minutes. Each scrape measures the last 5 minutes (one
-- bucket) and Prometheus fires only after 10 minutes of such readings, so one slow bucket
-- does not page. A 10m window with no `for` would page on the first low reading, and is
-- the seed's alert only when traffic is even. Not rounded: 89.996 is under 90.
SELECT
    100.0 * count(*) FILTER (WHERE b.status = 'confirmed')
    / nullif(count(*), 0)
FROM public.bookings AS b
WHERE b.created_at > now() - current_setting('venuedb.lookback')::interval
