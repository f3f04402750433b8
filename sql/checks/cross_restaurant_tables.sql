-- name: cross_restaurant_tables
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: rows
-- returns: rows
-- window: 1d
-- requires: public.allocations, public.table_inventory, public.bookings, public.booking_table_assignments, public.table_hold_members, public.table_holds
-- description: Allocations, table assignments and hold members that name a table of another restaurant (or no table at all), and allocations of another restaurant's booking, still in use within the window or later. allocations_no_overlap compares within one restaurant, so such a row can seat two restaurants on one table unseen (issue 15). The booking-integrity triggers and allocations_booking_restaurant_fkey refuse new ones; any row means they were bypassed (replica mode, disabled triggers) or predate the release.
-- runbook: runbooks/booking-observability.md#cross_restaurant_tables
-- Window 1d: a row whose time ended more than a day ago holds no table any more. The
-- findings are gathered in a MATERIALIZED CTE and only then capped, so the planner
-- plans for reading everything (there is usually nothing to find) rather than for the
-- first 100 rows. idx_allocations_upper_window and idx_bookings_end_at
-- (booking-observability) find the rows still in use: their statistics also give the
-- planner the real share of them (without the expression index upper("window") had
-- none, and it assumed a third).
WITH found AS MATERIALIZED (
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
        b.restaurant_id AS table_restaurant_id
    FROM public.allocations AS a
    INNER JOIN public.bookings AS b ON a.booking_id = b.id
    WHERE
        b.restaurant_id <> a.restaurant_id
        AND upper(a."window") > now() - current_setting('venuedb.lookback')::interval
    UNION ALL
    SELECT
        'booking_table_assignments' AS relation,
        x.id AS row_id,
        b.restaurant_id,
        x.table_id,
        t.restaurant_id AS table_restaurant_id
    FROM public.booking_table_assignments AS x
    INNER JOIN public.bookings AS b ON x.booking_id = b.id
    INNER JOIN public.table_inventory AS t ON x.table_id = t.id
    WHERE
        t.restaurant_id <> b.restaurant_id
        AND b.end_at > now() - current_setting('venuedb.lookback')::interval
    UNION ALL
    SELECT
        'table_hold_members' AS relation,
        m.hold_id AS row_id,
        h.restaurant_id,
        m.table_id,
        t.restaurant_id AS table_restaurant_id
    FROM public.table_hold_members AS m
    INNER JOIN public.table_holds AS h ON m.hold_id = h.id
    INNER JOIN public.table_inventory AS t ON m.table_id = t.id
    WHERE
        t.restaurant_id <> h.restaurant_id
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
