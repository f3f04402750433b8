-- function: auto_assign_booking
-- version: 2
-- released in: booking_014 (booking-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- v1 (seed 000's auto-assignment) that reports itself, whoever calls it (issue 19).
-- Seed 000's success rate, latency and zone-lock checks read observability_events that
-- only `venuedb assign` wrote around its call of v1: an application calling the function
-- directly produced none, and the checks could not see it. v2 writes them itself, in the
-- caller's transaction, so they commit exactly when the assignment's outcome commits.
--
-- Same arguments, same result keys as v1 (plus "latency_ms" and "event_id"), and the same
-- steps: lock the booking, leave a non-pending or already assigned booking alone
-- (status skipped), plan, lock the zone, plan again in the zone, hold and confirm through
-- confirm_hold_assignment_tx, up to options.max_attempts (default 3) attempts. What
-- changed:
--
-- 1. Every return (confirmed, no_tables, conflict, skipped) first writes one
--    observability_events row: source 'auto_assign', event_type 'auto_assign.summary',
--    context {status, reason (skipped and conflict only), attempts, latency_ms (from
--    the call's start, by clock_timestamp(), the booking's row lock included),
--    zone_lock_conflicts, function_version 2, and on success table_ids, zone_id,
--    is_combination}. An error still raises (booking not found, a bad option, a
--    constraint of another function): the caller's transaction is then rolled back with
--    its summary, and the assignment never happened.
-- 2. The zone lock is never waited for without bound. v1 tried it, wrote its
--    zone_lock_conflict event and then blocked in pg_advisory_xact_lock: a deadlock
--    between two assignments holding one zone each (attempt 1 in zone A, attempt 2 in
--    zone B, and the other way round) or a statement_timeout aborted the caller's
--    transaction, and the event with it, so the conflict that mattered most was never
--    counted. v2 tries the lock; when another transaction holds it, it waits at most
--    options.zone_lock_wait_ms (default 2000, never longer than the caller's own
--    lock_timeout when that is shorter) in a subtransaction that catches the timeout
--    (55P03) and a deadlock (40P01), then writes the zone_lock_conflict event (source
--    'auto_assign', severity 'warning', context {zone_id, attempt, waited_ms, outcome:
--    acquired | timed_out | deadlock}). No error leaves the wait, so the transaction
--    that holds the event goes on to write the summary and commit. A lock not granted
--    ends the attempt; when no attempt is left the result is {"status": "conflict",
--    "reason": "zone_locked"}.
-- 3. options.zone_lock_wait_ms and options.max_attempts are the function's own and are
--    not passed to the planner.
--
-- As in v1: auto-assignment transactions check overlaps at once (SET CONSTRAINTS ...
-- IMMEDIATE for every deferrable exclusion constraint of public.allocations, for the rest
-- of the caller's transaction); the hold and confirmation run in a subtransaction, and
-- on exclusion_violation or a confirmation that reports the conflict (confirmed = false)
-- the booking is planned again. The zone lock is transaction-level: commit soon after.

CREATE OR REPLACE FUNCTION public.auto_assign_booking(
    p_booking_id uuid,
    p_options jsonb DEFAULT '{}'::jsonb
)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_opts jsonb := coalesce(p_options, '{}'::jsonb);
    v_max_attempts integer;
    v_lock_wait_ms integer;
    v_caller_timeout text := current_setting('lock_timeout');
    v_caller_ms numeric;
    v_booking bookings%ROWTYPE;
    v_attempts integer := 0;
    v_best record;
    v_zone uuid;
    v_key bigint;
    v_hold uuid;
    v_evaluated integer := 0;
    v_constraint text;
    v_wait_started timestamptz;
    v_lock_outcome text;
    v_conflicts integer := 0;
    v_last_failure text;
    v_result jsonb;
    v_event bigint;
BEGIN
    v_max_attempts := coalesce((v_opts ->> 'max_attempts')::integer, 3);
    IF v_max_attempts < 1 THEN
        RAISE EXCEPTION 'auto_assign_booking: max_attempts must be at least 1, not %',
            v_max_attempts USING ERRCODE = '22023';
    END IF;
    v_lock_wait_ms := coalesce((v_opts ->> 'zone_lock_wait_ms')::integer, 2000);
    IF v_lock_wait_ms < 0 THEN
        RAISE EXCEPTION 'auto_assign_booking: zone_lock_wait_ms must be 0 or more, not %',
            v_lock_wait_ms USING ERRCODE = '22023';
    END IF;
    -- A caller that allows shorter lock waits than ours keeps its own limit.
    v_caller_ms := extract(epoch FROM v_caller_timeout::interval) * 1000;
    IF v_caller_ms > 0 AND v_caller_ms < v_lock_wait_ms THEN
        v_lock_wait_ms := v_caller_ms::integer;
    END IF;
    v_opts := (v_opts - 'max_attempts' - 'zone_lock_wait_ms') || jsonb_build_object('limit', 1);

    SELECT * INTO v_booking FROM bookings b WHERE b.id = p_booking_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking % not found', p_booking_id USING ERRCODE = 'P0002';
    END IF;

    IF v_booking.status NOT IN ('pending', 'pending_allocation') THEN
        v_result := jsonb_build_object(
            'status', 'skipped', 'reason', 'not_pending', 'booking_status', v_booking.status
        );
    ELSIF EXISTS (
        SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = p_booking_id
    ) THEN
        v_result := jsonb_build_object('status', 'skipped', 'reason', 'already_assigned');
    END IF;

    IF v_result IS NULL THEN
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
    END IF;

    WHILE v_result IS NULL AND v_attempts < v_max_attempts LOOP
        v_attempts := v_attempts + 1;

        SELECT * INTO v_best
        FROM plan_booking_tables(p_booking_id, v_opts) p
        ORDER BY p.rank
        LIMIT 1;
        IF NOT FOUND THEN
            v_evaluated := coalesce(nullif(current_setting('venuedb.plan_evaluated', true), ''),
                                    '0')::integer;
            v_result := jsonb_build_object(
                'status', 'no_tables', 'evaluated', v_evaluated, 'attempts', v_attempts
            );
            EXIT;
        END IF;

        v_zone := v_best.zone_id;
        v_key := hashtextextended('venuedb.zone:' || v_zone::text, 0);
        IF NOT pg_try_advisory_xact_lock(v_key) THEN
            -- Contention: wait a bounded time in a subtransaction, so that neither a
            -- timeout nor a deadlock aborts the transaction that records it.
            v_conflicts := v_conflicts + 1;
            v_wait_started := clock_timestamp();
            PERFORM set_config('lock_timeout', v_lock_wait_ms || 'ms', true);
            BEGIN
                IF v_lock_wait_ms > 0 THEN
                    PERFORM pg_advisory_xact_lock(v_key);
                    v_lock_outcome := 'acquired';
                ELSE
                    v_lock_outcome := 'timed_out';
                END IF;
            EXCEPTION
                WHEN lock_not_available THEN
                    v_lock_outcome := 'timed_out';
                WHEN deadlock_detected THEN
                    v_lock_outcome := 'deadlock';
            END;
            PERFORM set_config('lock_timeout', v_caller_timeout, true);
            INSERT INTO observability_events
                (source, event_type, severity, restaurant_id, booking_id, context)
            VALUES ('auto_assign', 'zone_lock_conflict', 'warning', v_booking.restaurant_id,
                    p_booking_id,
                    jsonb_build_object(
                        'zone_id', v_zone,
                        'attempt', v_attempts,
                        'outcome', v_lock_outcome,
                        'waited_ms', round(extract(epoch FROM clock_timestamp()
                                                   - v_wait_started) * 1000, 2)
                    ));
            IF v_lock_outcome <> 'acquired' THEN
                v_last_failure := 'zone_locked';
                CONTINUE;
            END IF;
        END IF;

        -- Others may have taken tables of the zone while we waited: plan it again.
        SELECT * INTO v_best
        FROM plan_booking_tables(p_booking_id, v_opts || jsonb_build_object('zone_id', v_zone)) p
        ORDER BY p.rank
        LIMIT 1;
        IF NOT FOUND THEN
            v_last_failure := 'zone_taken';
            CONTINUE;
        END IF;

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
                -- The confirmation reported a conflict (confirmed = false), wrote its
                -- evidence and kept the hold: drop the hold and plan again.
                DELETE FROM table_holds h WHERE h.id = v_hold;
                v_last_failure := 'tables_taken';
            ELSE
                v_result := jsonb_build_object(
                    'status', 'confirmed',
                    'table_ids', to_jsonb(v_best.table_ids),
                    'zone_id', v_zone,
                    'is_combination', v_best.is_combination,
                    'total_capacity', v_best.total_capacity,
                    'attempts', v_attempts,
                    'evaluated', v_best.evaluated
                );
            END IF;
        EXCEPTION WHEN exclusion_violation THEN
            -- The hold, its members and any allocation are rolled back; plan again.
            v_last_failure := 'tables_taken';
        END;
    END LOOP;

    IF v_result IS NULL THEN
        v_result := jsonb_build_object(
            'status', 'conflict', 'reason', coalesce(v_last_failure, 'tables_taken'),
            'attempts', v_attempts
        );
    END IF;

    v_result := v_result || jsonb_build_object(
        'latency_ms', round(extract(epoch FROM clock_timestamp() - v_started) * 1000, 2),
        'zone_lock_conflicts', v_conflicts
    );
    INSERT INTO observability_events
        (source, event_type, severity, restaurant_id, booking_id, context)
    VALUES (
        'auto_assign', 'auto_assign.summary',
        CASE WHEN v_result ->> 'status' IN ('confirmed', 'skipped') THEN 'info'
             ELSE 'warning' END,
        v_booking.restaurant_id, p_booking_id,
        jsonb_strip_nulls(jsonb_build_object(
            'status', v_result ->> 'status',
            'reason', v_result ->> 'reason',
            'attempts', (v_result ->> 'attempts')::integer,
            'latency_ms', (v_result ->> 'latency_ms')::numeric,
            'zone_lock_conflicts', v_conflicts,
            'table_ids', v_result -> 'table_ids',
            'zone_id', v_result ->> 'zone_id',
            'is_combination', (v_result ->> 'is_combination')::boolean,
            'function_version', 2
        ))
    )
    RETURNING id INTO v_event;
    RETURN v_result || jsonb_build_object('event_id', v_event);
END;
$$;

COMMENT ON FUNCTION public.auto_assign_booking(uuid, jsonb) IS 'venuedb:version=2';
