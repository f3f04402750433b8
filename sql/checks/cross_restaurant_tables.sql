-- name: cross_restaurant_tables
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: rows
-- returns: rows
-- requires: public.allocations, public.table_inventory, public.bookings, public.booking_table_assignments, public.table_hold_members, public.table_holds
-- description: Allocations, table assignments and hold members that name a table of another restaurant (or no table at all), and allocations of another restaurant's booking, still in use within the window or later. allocations_no_overlap compares within one restaurant, so such a row can seat two restaurants on one table unseen (issue 15). The booking-integrity triggers and allocations_booking_restaurant_fkey refuse new ones; any row means they were bypassed (replica mode, disabled triggers) or predate the release.
-- runbook: runbooks/booking-integrity.md "When a check fires"
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
    AND upper(a."window")
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
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
    AND upper(a."window")
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
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
    AND b.end_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
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
    AND h.end_at
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
LIMIT 100
