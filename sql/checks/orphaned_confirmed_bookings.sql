-- name: orphaned_confirmed_bookings
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: bookings
-- returns: rows
-- requires: public.bookings, public.booking_table_assignments
-- description: Confirmed bookings with no table assignment (seed 000: target 0, alert > 0).
-- runbook: runbooks/alerts.md#orphaned_confirmed_bookings
-- No window: an orphan stays a double-booking risk however old it is, so every
-- confirmed booking is read; a look-back would let the alert clear while the orphan stays.
SELECT
    b.id,
    b.restaurant_id,
    b.start_at,
    b.updated_at
FROM public.bookings AS b
WHERE
    b.status = 'confirmed'
    AND NOT EXISTS (
        SELECT 1 FROM public.booking_table_assignments AS a
        WHERE a.booking_id = b.id
    )
ORDER BY b.updated_at DESC
