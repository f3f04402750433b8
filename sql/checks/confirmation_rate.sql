-- name: confirmation_rate
-- domain: booking
-- severity: warning
-- warning: < 95
-- critical: < 90
-- unit: percent
-- returns: value
-- requires: public.bookings
-- description: Share of bookings created in the window that are confirmed (seed 001 Phase 3: target >= 95%; panel alert < 90%).
-- runbook: seed 001 "Phase 3: Staging Full Enablement" and "Observability Dashboard Setup"
SELECT
    round(
        100.0 * count(*) FILTER (WHERE b.status IN ('confirmed', 'checked_in', 'completed'))
        / nullif(count(*) FILTER (WHERE b.status <> 'cancelled'), 0),
        2
    )
FROM public.bookings AS b
WHERE
    b.created_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
