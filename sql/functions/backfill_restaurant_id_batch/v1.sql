-- function: backfill_restaurant_id_batch
-- version: 1
-- released in: booking_018 (booking-distribution-keys)
-- immutable: a released version is never edited; a new version is a new file.
--
-- One batch of the restaurant_id backfill (issue 22) of booking_table_assignments,
-- booking_confirmation_results (key id, parent bookings) or table_hold_members (key
-- hold_id, parent table_holds), p_table: the rows with p_from < key <= p_to (p_from NULL:
-- from the start) whose restaurant_id is NULL get their parent's. Rows written since
-- booking_018 already have it (trigger fill_restaurant_id_from_parent). Returns the
-- number of rows set. Called by the backfill engine (migrations/backfills.toml) through
-- the per-table wrappers, and by booking_019 for whatever is left before it adds NOT NULL.

CREATE OR REPLACE FUNCTION public.backfill_restaurant_id_batch(p_table text, p_from uuid, p_to uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_changed integer;
BEGIN
    IF p_table = 'booking_table_assignments' THEN
        UPDATE booking_table_assignments AS t SET restaurant_id = b.restaurant_id
        FROM bookings AS b
        WHERE b.id = t.booking_id AND t.restaurant_id IS NULL
          AND (p_from IS NULL OR t.id > p_from) AND t.id <= p_to;
    ELSIF p_table = 'booking_confirmation_results' THEN
        UPDATE booking_confirmation_results AS t SET restaurant_id = b.restaurant_id
        FROM bookings AS b
        WHERE b.id = t.booking_id AND t.restaurant_id IS NULL
          AND (p_from IS NULL OR t.id > p_from) AND t.id <= p_to;
    ELSIF p_table = 'table_hold_members' THEN
        UPDATE table_hold_members AS t SET restaurant_id = h.restaurant_id
        FROM table_holds AS h
        WHERE h.id = t.hold_id AND t.restaurant_id IS NULL
          AND (p_from IS NULL OR t.hold_id > p_from) AND t.hold_id <= p_to;
    ELSE
        RAISE EXCEPTION 'backfill_restaurant_id_batch: unknown table %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION public.backfill_restaurant_id_batch(text, uuid, uuid) IS 'venuedb:version=1';
