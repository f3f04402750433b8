-- function: confirm_hold_assignment_tx
-- version: 11
-- released in: booking_001 (booking-baseline)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Turns a table hold into booking_table_assignments and allocations and confirms the
-- booking, in the caller's transaction. Overlaps are caught by the deferred exclusion
-- constraint allocations_resource_window_excl when the transaction commits.

CREATE OR REPLACE FUNCTION public.confirm_hold_assignment_tx(
    p_hold_id uuid,
    p_booking_id uuid,
    p_idempotency_key text DEFAULT NULL,
    p_assigned_by uuid DEFAULT NULL
)
RETURNS TABLE (table_id uuid, start_at timestamptz, end_at timestamptz, merge_group_id uuid)
LANGUAGE plpgsql
SET search_path = public
AS $$
DECLARE
    v_booking bookings%ROWTYPE;
    v_hold table_holds%ROWTYPE;
    v_table_count integer;
    v_merge_group uuid;
BEGIN
    SELECT * INTO v_booking FROM bookings b WHERE b.id = p_booking_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking % not found', p_booking_id USING ERRCODE = 'P0002';
    END IF;

    IF p_idempotency_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM booking_table_assignments a
        WHERE a.booking_id = p_booking_id AND a.idempotency_key = p_idempotency_key
    ) THEN
        RETURN QUERY
        SELECT a.table_id, v_booking.start_at, v_booking.end_at, a.merge_group_id
        FROM booking_table_assignments a
        WHERE a.booking_id = p_booking_id AND a.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;

    SELECT * INTO v_hold FROM table_holds h WHERE h.id = p_hold_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'hold % not found', p_hold_id USING ERRCODE = 'P0002';
    END IF;
    IF v_hold.booking_id IS NOT NULL AND v_hold.booking_id <> p_booking_id THEN
        RAISE EXCEPTION 'hold % belongs to booking %, not %',
            p_hold_id, v_hold.booking_id, p_booking_id USING ERRCODE = '22023';
    END IF;
    IF v_hold.restaurant_id <> v_booking.restaurant_id THEN
        RAISE EXCEPTION 'hold % is for another restaurant than booking %',
            p_hold_id, p_booking_id USING ERRCODE = '22023';
    END IF;
    IF v_hold.expires_at <= now() THEN
        RAISE EXCEPTION 'hold % expired at %', p_hold_id, v_hold.expires_at
            USING ERRCODE = '55000';
    END IF;

    SELECT count(*) INTO v_table_count FROM table_hold_members m WHERE m.hold_id = p_hold_id;
    IF v_table_count = 0 THEN
        RAISE EXCEPTION 'hold % has no tables', p_hold_id USING ERRCODE = '22023';
    END IF;
    IF v_table_count > 1 THEN
        v_merge_group := gen_random_uuid();
    END IF;

    INSERT INTO booking_table_assignments AS a
        (booking_id, table_id, assigned_by, merge_group_id, idempotency_key)
    SELECT p_booking_id, m.table_id, p_assigned_by, v_merge_group, p_idempotency_key
    FROM table_hold_members m
    WHERE m.hold_id = p_hold_id;

    INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "window")
    SELECT v_booking.restaurant_id, p_booking_id, 'table', m.table_id,
           tstzrange(v_booking.start_at, v_booking.end_at, '[)')
    FROM table_hold_members m
    WHERE m.hold_id = p_hold_id;

    IF v_merge_group IS NOT NULL THEN
        INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "window")
        VALUES (v_booking.restaurant_id, p_booking_id, 'merge_group', v_merge_group,
                tstzrange(v_booking.start_at, v_booking.end_at, '[)'));
    END IF;

    UPDATE bookings b SET status = 'confirmed', updated_at = now() WHERE b.id = p_booking_id;
    DELETE FROM table_holds h WHERE h.id = p_hold_id;

    RETURN QUERY
    SELECT a.table_id, v_booking.start_at, v_booking.end_at, a.merge_group_id
    FROM booking_table_assignments a
    WHERE a.booking_id = p_booking_id
      AND a.merge_group_id IS NOT DISTINCT FROM v_merge_group
      AND a.idempotency_key IS NOT DISTINCT FROM p_idempotency_key;
END;
$$;

COMMENT ON FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid)
IS 'venuedb:version=11';
