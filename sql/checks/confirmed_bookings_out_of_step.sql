-- name: confirmed_bookings_out_of_step
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: tables
-- returns: rows
-- requires: public.bookings, public.booking_table_assignments, public.allocations
-- description: Confirmed or checked-in bookings (ending within the window or later) whose table assignments and live allocations disagree: an assigned table with no live allocation covering the booking, or a live allocation of a table not assigned. Such a table looks free to the next confirmation: a double booking waiting to happen (issue 15). The deferred triggers of booking-integrity refuse this at commit; any row means they were bypassed or the row predates the release.
-- runbook: runbooks/booking-integrity.md "When a check fires"
WITH live AS (
    SELECT
        b.id,
        b.restaurant_id,
        b.status,
        tstzrange(b.start_at, b.end_at, '[)') AS booked
    FROM public.bookings AS b
    WHERE
        b.status IN ('confirmed', 'checked_in')
        AND b.end_at
        > now()
        - make_interval(
            days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int
        )
)

SELECT
    l.id AS booking_id,
    l.restaurant_id,
    l.status,
    'assigned, no live allocation covering the booking' AS problem,
    x.table_id
FROM live AS l
INNER JOIN public.booking_table_assignments AS x ON l.id = x.booking_id
WHERE
    NOT EXISTS (
        SELECT 1 FROM public.allocations AS a
        WHERE
            a.booking_id = l.id
            AND a.resource_type = 'table'
            AND a.resource_id = x.table_id
            AND NOT a.shadow
            AND a."window" @> l.booked
    )
UNION ALL
SELECT
    l.id AS booking_id,
    l.restaurant_id,
    l.status,
    'live allocation of a table not assigned' AS problem,
    a.resource_id AS table_id
FROM live AS l
INNER JOIN public.allocations AS a ON l.id = a.booking_id
WHERE
    a.resource_type = 'table'
    AND NOT a.shadow
    AND NOT EXISTS (
        SELECT 1 FROM public.booking_table_assignments AS x
        WHERE x.booking_id = l.id AND x.table_id = a.resource_id
    )
LIMIT 100
