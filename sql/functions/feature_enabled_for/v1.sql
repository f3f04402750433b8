-- function: feature_enabled_for
-- version: 1
-- released in: booking_008 (assignment-pipeline-v3)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Per-restaurant rollout (seed 000 "Option A", seed 001 5b): true when the restaurant
-- is listed for the flag, or its bucket, abs(hashtextextended(flag || ':' || id, 0))
-- % 100, is below the flag's percentage. Deterministic: the same restaurant always
-- lands on the same side for a given percentage, and raising it only adds restaurants.

CREATE OR REPLACE FUNCTION public.feature_enabled_for(p_flag text, p_restaurant_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = public
AS $$
    SELECT coalesce((
        SELECT p_restaurant_id = ANY(r.restaurant_ids)
            OR abs(hashtextextended(p_flag || ':' || p_restaurant_id::text, 0)) % 100
            < r.percentage
        FROM feature_rollouts AS r
        WHERE r.flag = p_flag
    ), false)
$$;

COMMENT ON FUNCTION public.feature_enabled_for(text, uuid) IS 'venuedb:version=1';
