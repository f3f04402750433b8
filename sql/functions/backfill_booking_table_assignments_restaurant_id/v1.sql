-- function: backfill_booking_table_assignments_restaurant_id
-- version: 1
-- released in: booking_018 (booking-distribution-keys)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The batch function of the backfill booking_table_assignments_restaurant_id
-- (migrations/backfills.toml): restaurant_id of the rows with p_from < id <= p_to,
-- taken from their parent by backfill_restaurant_id_batch(). Returns the number of rows
-- set.

CREATE OR REPLACE FUNCTION public.backfill_booking_table_assignments_restaurant_id(
    p_from uuid, p_to uuid
)
RETURNS integer
LANGUAGE sql
VOLATILE
SET search_path = public, pg_temp
AS $$
    SELECT public.backfill_restaurant_id_batch('booking_table_assignments', p_from, p_to)
$$;

COMMENT ON FUNCTION public.backfill_booking_table_assignments_restaurant_id(uuid, uuid)
IS 'venuedb:version=1';
