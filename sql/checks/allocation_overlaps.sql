-- name: allocation_overlaps
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: pairs
-- returns: rows
-- description: Pairs of live allocations of one restaurant and resource whose windows overlap; allocations_no_overlap makes this impossible, so any row means the constraint is missing or disabled (seed 003).
-- runbook: seed 003 "Rollback Plan"; runbooks/capacity-overlap.md
SELECT
    a.id AS allocation_a,
    b.id AS allocation_b,
    a.restaurant_id,
    a.resource_id,
    a."window" AS window_a,
    b."window" AS window_b
FROM public.allocations AS a
INNER JOIN public.allocations AS b
    ON
        a.restaurant_id = b.restaurant_id
        AND a.resource_type = b.resource_type
        AND a.resource_id = b.resource_id
        AND a."window" && b."window"
        AND a.id < b.id
WHERE
    NOT a.shadow
    AND NOT b.shadow
    AND upper(a."window")
    > now()
    - make_interval(days => coalesce(nullif(current_setting('venuedb.days', true), ''), '1')::int)
ORDER BY a.id, b.id
LIMIT 100
