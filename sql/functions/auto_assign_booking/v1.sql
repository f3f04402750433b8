-- function: auto_assign_booking
-- version: 1
-- released in: booking_004 (table-combinations)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Seed 000's auto-assignment: seats a pending booking at the best candidate of
-- plan_booking_tables (a single table or a combination) and confirms it through a
-- table hold and confirm_hold_assignment_tx, in the caller's transaction.
--
-- 1. Locks the booking row. A booking that is not 'pending'/'pending_allocation', or
--    that already has table assignments, is left alone:
--    {"status": "skipped", "reason": "not_pending" | "already_assigned", ...}.
-- 2. Plans with p_options (the planner's options, see plan_booking_tables; its limit is
--    forced to 1). No candidate: {"status": "no_tables", "evaluated": n, "attempts": n}.
-- 3. Serialises per zone with a transaction-level advisory lock on
--    hashtextextended('venuedb.zone:' || zone_id, 0): tried first; when another
--    transaction holds it, an observability_events row (source 'auto_assign',
--    event_type 'zone_lock_conflict', severity 'warning', context {"zone_id", "attempt"})
--    is written in this transaction and the lock is then waited for. The lock is held
--    until this transaction ends, so commit soon after.
-- 4. Once locked, plans again restricted to that zone (others may have taken tables
--    meanwhile), puts the chosen tables in a table_holds row (expires in 2 minutes)
--    with table_hold_members, and calls confirm_hold_assignment_tx.
--
-- Overlaps are checked at once: this function runs SET CONSTRAINTS ... IMMEDIATE for
-- every deferrable exclusion constraint of public.allocations (the baseline's
-- allocations_resource_window_excl, INITIALLY DEFERRED; after capacity-overlap,
-- allocations_no_overlap, immediate unless a caller deferred it), so for the rest of
-- the CALLER'S TRANSACTION overlaps are checked per statement, not at commit: an
-- auto-assignment transaction checks overlaps at once. The hold and confirmation run
-- in a subtransaction: on exclusion_violation (a table taken by a writer that does not
-- take the zone lock) it is rolled back; a confirm_hold_assignment_tx that reports the
-- conflict instead (v12: confirmed = false, nothing written but its evidence) has its
-- hold deleted. Either way the booking is planned again, up to options.max_attempts
-- (default 3) attempts in all, each attempt one plan. Then
-- {"status": "conflict", "attempts": n}. Works with confirm_hold_assignment_tx v11
-- and v12 (same arguments; success is read from booking_table_assignments).
-- Success: {"status": "confirmed", "table_ids": [...], "zone_id": ..., "is_combination":
-- bool, "total_capacity": n, "attempts": n, "evaluated": n} (evaluated of the plan that
-- was confirmed).
--
-- Several attempts may lock several zones; two transactions locking two zones in
-- opposite orders end in PostgreSQL's deadlock error for one of them (retry it).

CREATE OR REPLACE FUNCTION public.auto_assign_booking(
    p_booking_id uuid,
    p_options jsonb DEFAULT '{}'::jsonb
)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public
AS $$
DECLARE
    v_opts jsonb := coalesce(p_options, '{}'::jsonb);
    v_max_attempts integer;
    v_booking bookings%ROWTYPE;
    v_attempts integer := 0;
    v_best record;
    v_zone uuid;
    v_key bigint;
    v_hold uuid;
    v_evaluated integer := 0;
    v_constraint text;
BEGIN
    v_max_attempts := coalesce((v_opts ->> 'max_attempts')::integer, 3);
    IF v_max_attempts < 1 THEN
        RAISE EXCEPTION 'auto_assign_booking: max_attempts must be at least 1, not %',
            v_max_attempts USING ERRCODE = '22023';
    END IF;
    v_opts := (v_opts - 'max_attempts') || jsonb_build_object('limit', 1);

    SELECT * INTO v_booking FROM bookings b WHERE b.id = p_booking_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking % not found', p_booking_id USING ERRCODE = 'P0002';
    END IF;
    IF v_booking.status NOT IN ('pending', 'pending_allocation') THEN
        RETURN jsonb_build_object(
            'status', 'skipped', 'reason', 'not_pending', 'booking_status', v_booking.status
        );
    END IF;
    IF EXISTS (SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = p_booking_id) THEN
        RETURN jsonb_build_object('status', 'skipped', 'reason', 'already_assigned');
    END IF;

    -- Auto-assignment transactions check overlaps at once (see the header).
    FOR v_constraint IN
        SELECT format('%I.%I', n.nspname, c.conname)
        FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.conrelid = 'public.allocations'::regclass
          AND c.contype = 'x'
          AND c.condeferrable
        ORDER BY c.conname
    LOOP
        EXECUTE 'SET CONSTRAINTS ' || v_constraint || ' IMMEDIATE';
    END LOOP;

    WHILE v_attempts < v_max_attempts LOOP
        v_attempts := v_attempts + 1;

        SELECT * INTO v_best
        FROM plan_booking_tables(p_booking_id, v_opts) p
        ORDER BY p.rank
        LIMIT 1;
        IF NOT FOUND THEN
            v_evaluated := coalesce(nullif(current_setting('venuedb.plan_evaluated', true), ''),
                                    '0')::integer;
            RETURN jsonb_build_object(
                'status', 'no_tables', 'evaluated', v_evaluated, 'attempts', v_attempts
            );
        END IF;

        v_zone := v_best.zone_id;
        v_key := hashtextextended('venuedb.zone:' || v_zone::text, 0);
        IF NOT pg_try_advisory_xact_lock(v_key) THEN
            INSERT INTO observability_events
                (source, event_type, severity, restaurant_id, booking_id, context)
            VALUES ('auto_assign', 'zone_lock_conflict', 'warning', v_booking.restaurant_id,
                    p_booking_id, jsonb_build_object('zone_id', v_zone, 'attempt', v_attempts));
            PERFORM pg_advisory_xact_lock(v_key);
        END IF;

        -- Others may have taken tables of the zone while we waited: plan it again.
        SELECT * INTO v_best
        FROM plan_booking_tables(p_booking_id, v_opts || jsonb_build_object('zone_id', v_zone)) p
        ORDER BY p.rank
        LIMIT 1;
        CONTINUE WHEN NOT FOUND;

        BEGIN
            INSERT INTO table_holds
                (restaurant_id, booking_id, zone_id, start_at, end_at, expires_at, metadata)
            VALUES (v_booking.restaurant_id, p_booking_id, v_zone, v_booking.start_at,
                    v_booking.end_at, now() + interval '2 minutes',
                    jsonb_build_object('source', 'auto_assign', 'attempt', v_attempts))
            RETURNING id INTO v_hold;
            INSERT INTO table_hold_members (hold_id, table_id)
            SELECT v_hold, m.table_id FROM unnest(v_best.table_ids) AS m (table_id);
            PERFORM 1 FROM confirm_hold_assignment_tx(v_hold, p_booking_id);
            IF NOT EXISTS (
                SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = p_booking_id
            ) THEN
                -- A version that reports conflicts instead of raising (v12) confirmed
                -- nothing and kept the hold (and wrote its evidence): drop the hold.
                DELETE FROM table_holds h WHERE h.id = v_hold;
                CONTINUE;
            END IF;
            RETURN jsonb_build_object(
                'status', 'confirmed',
                'table_ids', to_jsonb(v_best.table_ids),
                'zone_id', v_zone,
                'is_combination', v_best.is_combination,
                'total_capacity', v_best.total_capacity,
                'attempts', v_attempts,
                'evaluated', v_best.evaluated
            );
        EXCEPTION WHEN exclusion_violation THEN
            -- The hold, its members and any allocation are rolled back; plan again.
            NULL;
        END;
    END LOOP;

    RETURN jsonb_build_object('status', 'conflict', 'attempts', v_attempts);
END;
$$;

COMMENT ON FUNCTION public.auto_assign_booking(uuid, jsonb) IS 'venuedb:version=1';
