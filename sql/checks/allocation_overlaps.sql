-- name: allocation_overlaps
-- domain: booking
-- severity: critical
-- critical: > 0
-- unit: pairs
-- returns: rows
-- requires: public.allocations
-- description: Pairs of live allocations of one restaurant and resource whose windows overlap, ending within the window or later; allocations_no_overlap makes this impossible, so any row means the constraint is missing or disabled (seed 003).
-- runbook: runbooks/alerts.md#allocation_overlaps
-- A self-join compares every two allocations of a table (hundreds each): it timed out at
-- 300,000 rows. Two index-backed shortcuts instead:
-- 1. While a valid GiST exclusion constraint of the overlap rule (allocations_no_overlap,
--    or the stricter allocations_resource_window_excl before capacity-overlap) covers the
--    table, PostgreSQL has refused every overlapping row and the answer is empty: the
--    catalog lookup gates the scan (a One-Time Filter), about a millisecond at any size.
-- 2. Otherwise each resource's allocations are sorted by start once: a row can overlap an
--    earlier one only if the latest end before it reaches its start, a later one only if
--    the next start is before its end (equal bounds only when both may be inclusive,
--    unbounded ends always). Every row of an overlapping pair passes, touching [) windows
--    do not, so the exact && join runs over those few rows. The same test as the
--    rollback's pre-flight (toolkit/shadow_swap.py); seconds at 1,000,000 rows.
WITH guarded AS (
    SELECT c.conname
    FROM pg_catalog.pg_constraint AS c
    INNER JOIN pg_catalog.pg_index AS i ON c.conindid = i.indexrelid
    WHERE
        c.conrelid = 'public.allocations'::regclass
        AND c.contype = 'x'
        AND i.indisvalid
        AND i.indisready
        AND i.indislive
        AND split_part(pg_catalog.pg_get_constraintdef(c.oid), ' DEFERRABLE', 1) IN (
            'EXCLUDE USING gist (restaurant_id WITH =, resource_type WITH =, '
            || 'resource_id WITH =, "window" WITH &&) WHERE ((NOT shadow))',
            'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, '
            || '"window" WITH &&) WHERE ((NOT shadow))'
        )
),

sorted AS (
    SELECT
        a.id,
        a.restaurant_id,
        a.resource_type,
        a.resource_id,
        a."window" AS w,
        count(*) OVER earlier > 0 AS has_prev,
        bool_or(upper_inf(a."window")) OVER earlier AS prev_upper_inf,
        bool_or(upper_inc(a."window")) OVER earlier AS prev_upper_inc,
        max(upper(a."window")) OVER earlier AS prev_upper,
        lead(a.id) OVER g IS NOT NULL AS has_next,
        lead(lower_inf(a."window")) OVER g AS next_lower_inf,
        lead(lower_inc(a."window")) OVER g AS next_lower_inc,
        lead(lower(a."window")) OVER g AS next_lower
    FROM public.allocations AS a
    WHERE
        NOT EXISTS (SELECT 1 FROM guarded)
        AND NOT a.shadow
        AND NOT isempty(a."window")
    WINDOW
        g AS (
            PARTITION BY a.resource_id, a.restaurant_id, a.resource_type
            ORDER BY lower(a."window") NULLS FIRST, lower_inc(a."window") DESC, a.id
        ),
        earlier AS (g ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),

candidates AS (
    SELECT s.* FROM sorted AS s
    WHERE
        (
            s.has_prev
            AND (
                s.prev_upper_inf
                OR lower_inf(s.w)
                OR s.prev_upper > lower(s.w)
                OR (s.prev_upper = lower(s.w) AND s.prev_upper_inc AND lower_inc(s.w))
            )
        )
        OR (
            s.has_next
            AND (
                s.next_lower_inf
                OR upper_inf(s.w)
                OR s.next_lower < upper(s.w)
                OR (s.next_lower = upper(s.w) AND s.next_lower_inc AND upper_inc(s.w))
            )
        )
)

SELECT
    a.id AS allocation_a,
    b.id AS allocation_b,
    a.restaurant_id,
    a.resource_id,
    a.w AS window_a,
    b.w AS window_b
FROM candidates AS a
INNER JOIN candidates AS b
    ON
        a.restaurant_id = b.restaurant_id
        AND a.resource_type = b.resource_type
        AND a.resource_id = b.resource_id
        AND a.w && b.w
        AND a.id < b.id
WHERE upper(a.w) > now() - current_setting('venuedb.lookback')::interval
ORDER BY a.id, b.id
LIMIT 100
