-- name: confirmed_bookings_out_of_step
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: tables
-- returns: rows
-- window: 1d
-- requires: public.bookings, public.booking_table_assignments, public.allocations, public.table_inventory
-- description: Confirmed or checked-in bookings (ending within the window or later) whose table assignments and live allocations disagree, as validate_booking_allocations() refuses at commit: an assigned or allocated table of another restaurant, an assigned table with no live allocation, a live allocation of a table not assigned, one not covering the booking, or one held under another restaurant (allocations_no_overlap compares within a restaurant, so it does not hold the table in the booking's). Such a table looks free to the next confirmation: a double booking waiting to happen (issue 15). Any row means the deferred triggers of booking-integrity were bypassed or the row predates the release.
-- runbook: runbooks/booking-observability.md#confirmed_bookings_out_of_step
-- Window 1d: bookings that ended more than a day ago no longer hold a table; every later
-- one is checked, however far ahead. One pass: the assignments FULL JOIN the allocations
-- still in use, on (booking, table), then the bookings still to come and their tables'
-- restaurants. Those bookings' tables are compared here, not in cross_restaurant_tables
-- (issue 19): one read of the 1,000,000 assignments instead of two. The findings are
-- gathered in a MATERIALIZED CTE and only then capped: a LIMIT the planner sees makes it
-- choose nested loops that stop early, and with nothing to find they probed
-- allocations_no_overlap once per booking (a timeout at 1,000,000 bookings).
-- idx_bookings_end_at and idx_allocations_upper_window (booking-observability) find what
-- is still to come.
WITH live AS (
    SELECT
        b.id,
        b.restaurant_id,
        b.status,
        tstzrange(b.start_at, b.end_at, '[)') AS booked
    FROM public.bookings AS b
    WHERE
        b.status IN ('confirmed', 'checked_in')
        AND b.end_at > now() - current_setting('venuedb.lookback')::interval
),

held AS (
    SELECT
        a.booking_id,
        a.resource_id,
        a.restaurant_id,
        a."window"
    FROM public.allocations AS a
    WHERE
        a.resource_type = 'table'
        AND NOT a.shadow
        AND a.booking_id IS NOT NULL
        AND upper(a."window") > now() - current_setting('venuedb.lookback')::interval
),

pairs AS (
    SELECT
        h.restaurant_id,
        h."window",
        coalesce(x.booking_id, h.booking_id) AS booking_id,
        coalesce(x.table_id, h.resource_id) AS table_id,
        x.booking_id IS NOT NULL AS assigned
    FROM public.booking_table_assignments AS x
    FULL JOIN held AS h ON x.booking_id = h.booking_id AND x.table_id = h.resource_id
),

found AS MATERIALIZED (
    SELECT
        l.id AS booking_id,
        l.restaurant_id,
        l.status,
        p.table_id,
        CASE
            WHEN (t.restaurant_id IS DISTINCT FROM l.restaurant_id)
                THEN 'table of another restaurant'
            WHEN p."window" IS NULL THEN 'assigned, no live allocation covering the booking'
            WHEN NOT p.assigned THEN 'live allocation of a table not assigned'
            WHEN p.restaurant_id <> l.restaurant_id THEN 'live allocation of another restaurant'
            ELSE 'live allocation not covering the booking'
        END AS problem
    FROM live AS l
    INNER JOIN pairs AS p ON l.id = p.booking_id
    LEFT JOIN public.table_inventory AS t ON p.table_id = t.id
    WHERE
        p."window" IS NULL
        OR NOT p.assigned
        OR p.restaurant_id <> l.restaurant_id
        OR NOT p."window" @> l.booked
        OR t.restaurant_id IS DISTINCT FROM l.restaurant_id
)

SELECT
    found.booking_id,
    found.restaurant_id,
    found.status,
    found.problem,
    found.table_id
FROM found
ORDER BY found.booking_id, found.table_id
LIMIT 100
