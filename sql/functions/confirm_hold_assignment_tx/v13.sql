-- function: confirm_hold_assignment_tx
-- version: 13
-- released in: booking_012 (booking-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- v12 (seed 003) with the two refusals issue 15 found missing (holes 1 and 3):
--   * only a booking that is still pending ('pending', 'pending_allocation') is
--     confirmed: a cancelled, completed or no-show booking, or one already confirmed
--     (a second hold would add tables to it), is refused with SQLSTATE 55000
--     (object_not_in_prerequisite_state). An idempotent retry (same idempotency key)
--     still returns the tables it confirmed, as before;
--   * every table of the hold must be a table of the booking's restaurant, else 22023
--     (the hold is refused like any other hold that does not fit the booking).
-- Everything else is v12: the hold turns into booking_table_assignments and allocations
-- and the booking is confirmed atomically, or nothing is confirmed and the conflicting
-- allocations are returned; every call that gets that far persists its evidence to
-- booking_confirmation_results. Confirmations of the same tables take turns through
-- transaction-level advisory locks in table-id order.

CREATE OR REPLACE FUNCTION public.confirm_hold_assignment_tx(
    p_hold_id uuid,
    p_booking_id uuid,
    p_idempotency_key text DEFAULT NULL,
    p_assigned_by uuid DEFAULT NULL
)
RETURNS TABLE (
    table_id uuid,
    start_at timestamptz,
    end_at timestamptz,
    merge_group_id uuid,
    confirmed boolean,
    conflicts jsonb
)
LANGUAGE plpgsql
SET search_path = public
AS $$
DECLARE
    v_booking bookings%ROWTYPE;
    v_hold table_holds%ROWTYPE;
    v_tables uuid[];
    v_table uuid;
    v_window tstzrange;
    v_merge_group uuid;
    v_conflicts jsonb;
    v_snapshot jsonb;
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
        SELECT a.table_id, v_booking.start_at, v_booking.end_at, a.merge_group_id, true,
               NULL::jsonb
        FROM booking_table_assignments a
        WHERE a.booking_id = p_booking_id AND a.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;

    IF v_booking.status NOT IN ('pending', 'pending_allocation') THEN
        RAISE EXCEPTION 'booking % is %: only a pending booking can be confirmed', p_booking_id,
            v_booking.status
            USING ERRCODE = '55000',
                  HINT = 'A confirmed booking changes tables by moving its assignments and allocations together; a cancelled one is booked again.';
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

    SELECT array_agg(m.table_id ORDER BY m.table_id) INTO v_tables
    FROM table_hold_members m WHERE m.hold_id = p_hold_id;
    IF v_tables IS NULL THEN
        RAISE EXCEPTION 'hold % has no tables', p_hold_id USING ERRCODE = '22023';
    END IF;
    IF EXISTS (
        SELECT 1 FROM unnest(v_tables) AS h (id)
        LEFT JOIN table_inventory AS t ON t.id = h.id
        WHERE t.restaurant_id IS DISTINCT FROM v_booking.restaurant_id
    ) THEN
        RAISE EXCEPTION 'hold % names tables that are not tables of restaurant % (booking %)',
            p_hold_id, v_booking.restaurant_id, p_booking_id USING ERRCODE = '22023';
    END IF;
    v_window := tstzrange(v_booking.start_at, v_booking.end_at, '[)');

    -- Confirmations of the same tables take turns (ids in ascending order, so two of them
    -- never wait on each other): two concurrent inserts of overlapping allocations would
    -- otherwise wait on each other's exclusion check and deadlock. The loser then sees the
    -- winner's committed allocations below and returns a clean conflict.
    FOREACH v_table IN ARRAY v_tables LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('venuedb.table:' || v_table::text, 0));
    END LOOP;

    v_snapshot := jsonb_build_object(
        'hold_id', p_hold_id,
        'party_size', v_booking.party_size,
        'window', v_window::text,
        'tables', (
            SELECT jsonb_agg(jsonb_build_object(
                'id', t.id, 'table_number', t.table_number, 'capacity', t.capacity,
                'zone_id', t.zone_id) ORDER BY t.id)
            FROM table_inventory t WHERE t.id = ANY (v_tables)
        ),
        'allocations', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'id', a.id, 'booking_id', a.booking_id, 'resource_id', a.resource_id,
                'window', a."window"::text, 'shadow', a.shadow) ORDER BY a.id)
            FROM allocations a
            WHERE a.restaurant_id = v_booking.restaurant_id
              AND a.resource_type = 'table'
              AND a.resource_id = ANY (v_tables)
              AND a."window" && v_window
        ), '[]'::jsonb)
    );

    v_conflicts := public.confirm_hold_conflicts(v_booking.restaurant_id, v_tables, v_window);

    IF v_conflicts IS NULL THEN
        BEGIN
            IF cardinality(v_tables) > 1 THEN
                v_merge_group := gen_random_uuid();
            END IF;

            INSERT INTO booking_table_assignments
                (booking_id, table_id, assigned_by, merge_group_id, idempotency_key)
            SELECT p_booking_id, t, p_assigned_by, v_merge_group, p_idempotency_key
            FROM unnest(v_tables) AS t;

            INSERT INTO allocations
                (restaurant_id, booking_id, resource_type, resource_id, "window")
            SELECT v_booking.restaurant_id, p_booking_id, 'table', t, v_window
            FROM unnest(v_tables) AS t;

            IF v_merge_group IS NOT NULL THEN
                INSERT INTO allocations
                    (restaurant_id, booking_id, resource_type, resource_id, "window")
                VALUES (v_booking.restaurant_id, p_booking_id, 'merge_group', v_merge_group,
                        v_window);
            END IF;

            UPDATE bookings b SET status = 'confirmed', updated_at = now()
            WHERE b.id = p_booking_id;
            DELETE FROM table_holds h WHERE h.id = p_hold_id;
        EXCEPTION WHEN exclusion_violation OR deadlock_detected THEN
            -- A concurrent confirmation won: it committed while we waited on its rows.
            v_conflicts := coalesce(
                public.confirm_hold_conflicts(v_booking.restaurant_id, v_tables, v_window),
                jsonb_build_array(jsonb_build_object('error', SQLERRM))
            );
        END;
    END IF;

    INSERT INTO booking_confirmation_results
        (booking_id, confirmed, conflict_details, snapshot_data)
    VALUES (p_booking_id, v_conflicts IS NULL, v_conflicts, v_snapshot);

    IF v_conflicts IS NOT NULL THEN
        RETURN QUERY
        SELECT NULL::uuid, v_booking.start_at, v_booking.end_at, NULL::uuid, false, v_conflicts;
        RETURN;
    END IF;

    RETURN QUERY
    SELECT t, v_booking.start_at, v_booking.end_at, v_merge_group, true, NULL::jsonb
    FROM unnest(v_tables) AS t;
END;
$$;

COMMENT ON FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid)
IS 'venuedb:version=13';
