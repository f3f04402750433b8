-- function: enforce_assignment_state_transition
-- version: 3
-- released in: booking_015 (booking-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- v2's rules, unchanged (NULL means 'created', a booking enters at 'created', only a
-- pending booking moves through the pipeline, 'confirmed' needs a confirmed booking,
-- every other change a row of assignment_state_transitions; refusals SQLSTATE 23514).
-- What changed is the event every transition writes (source assignment.state_machine,
-- event_type booking.assignment_state_transition), issue 19:
--
-- v2 put the caller's venuedb.assignment_reason in context.reason on EVERY transition,
-- and seed 004's graduation metric counts an event with a reason as a failure
-- ("failures: context->>'reason' is not null"), so every state-machine event read as a
-- failure: the success/error ratio could never pass 97 %, whatever the pipeline did.
-- v3 writes context {from, to, step} on every transition, step being the caller's
-- venuedb.assignment_reason ('unspecified' when unset), and adds reason (the same text)
-- only when the transition reports a failure:
--   * into manual_review or failed (the seed's own "High manual review rate" query reads
--     context->>'reason' of the transitions to manual_review: it still finds it);
--   * back from tables_planned or tables_held to capacity_verified: the attempt lost its
--     plan or its hold (a conflict, or a run that died half way) and plans again.
-- Forward steps, the intake, an operator sending a booking back to created and an
-- operator's manual confirmation carry no reason: seed 004's SQL, run unchanged, then
-- counts exactly the failures.

CREATE OR REPLACE FUNCTION public.enforce_assignment_state_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_reason text := coalesce(nullif(current_setting('venuedb.assignment_reason', true), ''),
                              'unspecified');
    v_from text;
    v_failure boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.assignment_state <> 'created' THEN  -- NULL (the default's absence) is created too
            RAISE EXCEPTION 'a new booking enters the assignment pipeline at created, not %',
                NEW.assignment_state
                USING ERRCODE = 'check_violation',
                      HINT = 'Insert the booking, then move it through assignment_state_transitions.';
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.assignment_state IS NOT DISTINCT FROM OLD.assignment_state THEN
        RETURN NEW;
    END IF;
    IF NEW.assignment_state IS NULL THEN
        RAISE EXCEPTION 'assignment_state cannot go back from % to NULL', OLD.assignment_state
            USING ERRCODE = 'check_violation';
    END IF;
    v_from := coalesce(OLD.assignment_state, 'created');
    IF NEW.assignment_state <> v_from AND NOT EXISTS (
        SELECT 1 FROM assignment_state_transitions t
        WHERE t.from_state = v_from AND t.to_state = NEW.assignment_state
    ) THEN
        RAISE EXCEPTION 'invalid assignment_state transition from % to % for booking %',
            coalesce(OLD.assignment_state, 'NULL (created)'), NEW.assignment_state, NEW.id
            USING ERRCODE = 'check_violation',
                  HINT = 'The allowed transitions are the rows of assignment_state_transitions.';
    END IF;
    IF NEW.assignment_state IN ('capacity_verified', 'tables_planned', 'tables_held')
       AND NEW.status NOT IN ('pending', 'pending_allocation') THEN
        RAISE EXCEPTION 'booking % is %: only a pending booking moves to %',
            NEW.id, NEW.status, NEW.assignment_state
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.assignment_state = 'confirmed'
       AND NEW.status NOT IN ('confirmed', 'checked_in', 'completed') THEN
        RAISE EXCEPTION 'booking % is %: assignment_state confirmed needs a confirmed booking',
            NEW.id, NEW.status
            USING ERRCODE = 'check_violation',
                  HINT = 'confirm_hold_assignment_tx confirms the booking; record the transition after it.';
    END IF;
    v_failure := NEW.assignment_state IN ('manual_review', 'failed')
        OR (NEW.assignment_state = 'capacity_verified'
            AND v_from IN ('tables_planned', 'tables_held'));
    INSERT INTO observability_events
        (source, event_type, severity, restaurant_id, booking_id, context)
    VALUES (
        'assignment.state_machine', 'booking.assignment_state_transition',
        CASE WHEN NEW.assignment_state IN ('manual_review', 'failed') THEN 'warning'
             ELSE 'info' END,
        NEW.restaurant_id, NEW.id,
        jsonb_build_object('from', OLD.assignment_state, 'to', NEW.assignment_state,
                           'step', v_reason)
        || CASE WHEN v_failure THEN jsonb_build_object('reason', v_reason)
                ELSE '{}'::jsonb END
    );
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.enforce_assignment_state_transition() IS 'venuedb:version=3';
