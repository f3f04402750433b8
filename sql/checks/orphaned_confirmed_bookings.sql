-- name: orphaned_confirmed_bookings
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: bookings
-- returns: rows
-- requires: public.bookings, public.booking_table_assignments
-- description: Confirmed bookings with no table assignment (seed 000: target 0, alert > 0).
-- runbook: seed 000 "Troubleshooting: Orphaned bookings appearing"; runbooks/table-combinations.md
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
