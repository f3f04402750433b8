-- name: cross_restaurant_tables
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: rows
-- returns: rows
-- window: 1d
-- requires: public.allocations, public.table_inventory, public.bookings, public.booking_table_assignments, public.table_hold_members, public.table_holds
-- description: Rows still in use (within the window or later) that name a table of another restaurant (or no table at all): allocations whose table is another restaurant's, hold members of another restaurant's hold, and the table assignments and allocations of bookings that are neither confirmed nor checked in (the confirmed and checked-in ones are confirmed_bookings_out_of_step's: it reads their tables in the same pass). allocations_no_overlap compares within one restaurant, so such a row can seat two restaurants on one table unseen (issue 15). The booking-integrity triggers and allocations_booking_restaurant_fkey refuse new ones; any row means they were bypassed (replica mode, disabled triggers) or predate the release.
-- runbook: runbooks/booking-observability.md#cross_restaurant_tables
-- Window 1d: a row whose time ended more than a day ago holds no table any more.
-- Issue 19 split the work with confirmed_bookings_out_of_step so that each row still to
-- come is read once: that check joins every confirmed or checked-in booking to its
-- assignments, allocations and tables anyway. This one reads the few other bookings
-- still to come (pending, cancelled, ...) and fetches their rows by booking_id, one
-- index probe each: OFFSET 0 keeps each LATERAL a probe, because the planner, which
-- cannot see that few of the bookings still to come are in these statuses, would
-- otherwise hash all 1,000,000 assignments (0.5 s of the 0.7 s this check took).
-- An allocation still in use whose booking ended before the window is no booking's
-- seat any more; its table is still compared with its restaurant (the first part).
-- The findings are gathered in a MATERIALIZED CTE and only then capped, so the planner
-- plans for reading everything (there is usually nothing to find).
WITH other AS (
    SELECT
        b.id,
        b.restaurant_id
    FROM public.bookings AS b
    WHERE
        b.status NOT IN ('confirmed', 'checked_in')
        AND b.end_at > now() - current_setting('venuedb.lookback')::interval
),

found AS MATERIALIZED (
    SELECT
        'allocations' AS relation,
        a.id AS row_id,
        a.restaurant_id,
        a.resource_id AS table_id,
        t.restaurant_id AS table_restaurant_id
    FROM public.allocations AS a
    LEFT JOIN public.table_inventory AS t ON a.resource_id = t.id
    WHERE
        a.resource_type = 'table'
        AND t.restaurant_id IS DISTINCT FROM a.restaurant_id
        AND upper(a."window") > now() - current_setting('venuedb.lookback')::interval
    UNION ALL
    SELECT
        'allocations (booking)' AS relation,
        a.id AS row_id,
        a.restaurant_id,
        a.resource_id AS table_id,
        o.restaurant_id AS table_restaurant_id
    FROM other AS o
    CROSS JOIN
        LATERAL (
            SELECT
                a.id,
                a.restaurant_id,
                a.resource_id
            FROM public.allocations AS a
            WHERE
                a.booking_id = o.id
                AND a.restaurant_id <> o.restaurant_id
                AND upper(a."window") > now() - current_setting('venuedb.lookback')::interval
            OFFSET 0  -- noqa: AM09
        ) AS a
    UNION ALL
    SELECT
        'booking_table_assignments' AS relation,
        x.id AS row_id,
        o.restaurant_id,
        x.table_id,
        t.restaurant_id AS table_restaurant_id
    FROM other AS o
    CROSS JOIN
        LATERAL (
            SELECT
                x.id,
                x.table_id
            FROM public.booking_table_assignments AS x
            WHERE x.booking_id = o.id
            OFFSET 0  -- noqa: AM09
        ) AS x
    LEFT JOIN public.table_inventory AS t ON x.table_id = t.id
    WHERE t.restaurant_id IS DISTINCT FROM o.restaurant_id
    UNION ALL
    SELECT
        'table_hold_members' AS relation,
        m.hold_id AS row_id,
        h.restaurant_id,
        m.table_id,
        t.restaurant_id AS table_restaurant_id
    FROM public.table_hold_members AS m
    INNER JOIN public.table_holds AS h ON m.hold_id = h.id
    LEFT JOIN public.table_inventory AS t ON m.table_id = t.id
    WHERE
        t.restaurant_id IS DISTINCT FROM h.restaurant_id
        AND h.end_at > now() - current_setting('venuedb.lookback')::interval
)

SELECT
    found.relation,
    found.row_id,
    found.restaurant_id,
    found.table_id,
    found.table_restaurant_id
FROM found
ORDER BY found.relation, found.row_id, found.table_id
LIMIT 100
