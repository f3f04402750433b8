-- function: confirm_hold_conflicts
-- version: 1
-- released in: booking_007 (capacity-overlap)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The non-shadow allocations of a restaurant that overlap `p_window` on any of
-- `p_tables`, as a JSON array, or NULL when there are none. Used by
-- confirm_hold_assignment_tx v12 before it writes, and again after losing a race.

CREATE OR REPLACE FUNCTION public.confirm_hold_conflicts(
    p_restaurant_id uuid,
    p_tables uuid[],
    p_window tstzrange
)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = public
AS $$
    SELECT jsonb_agg(jsonb_build_object(
        'allocation_id', a.id,
        'booking_id', a.booking_id,
        'resource_type', a.resource_type,
        'resource_id', a.resource_id,
        'window', a."window"::text
    ) ORDER BY a.id)
    FROM allocations AS a
    WHERE a.restaurant_id = p_restaurant_id
      AND a.resource_type = 'table'
      AND a.resource_id = ANY(p_tables)
      AND a."window" && p_window
      AND NOT a.shadow
$$;

COMMENT ON FUNCTION public.confirm_hold_conflicts(uuid, uuid[], tstzrange)
IS 'venuedb:version=1';
