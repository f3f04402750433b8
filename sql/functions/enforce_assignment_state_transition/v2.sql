-- function: enforce_assignment_state_transition
-- version: 2
-- released in: booking_012 (booking-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- BEFORE INSERT OR UPDATE OF assignment_state ON bookings (trigger
-- booking_assignment_state_machine). v1 guarded UPDATE only and let NULL enter any state,
-- so a booking inserted in any state, or one created before the release (NULL), escaped
-- the state machine (issue 15, hole 4). The rule now:
--   * NULL means 'created': the pipeline has not seen the booking yet. NULL -> created is
--     the pipeline's intake; NULL -> anything else must be a row of
--     assignment_state_transitions from 'created', like any other transition.
--   * a new booking enters at 'created' (or NULL): inserting any other state is refused.
--   * nothing goes back to NULL.
--   * tied to status: only a pending booking ('pending', 'pending_allocation') moves to
--     capacity_verified, tables_planned or tables_held, and assignment_state 'confirmed'
--     needs status confirmed (or checked_in / completed): confirm_hold_assignment_tx sets
--     the status first, the coordinator then records the transition.
-- Refusals raise SQLSTATE 23514 (check_violation). Every transition (intake included)
-- writes an observability_events row (source assignment.state_machine, event_type
-- booking.assignment_state_transition, context {from, to, reason}); the reason is the
-- transaction-local setting venuedb.assignment_reason, set by the caller.

CREATE OR REPLACE FUNCTION public.enforce_assignment_state_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_reason text := coalesce(nullif(current_setting('venuedb.assignment_reason', true), ''),
                              'unspecified');
    v_from text;
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
    INSERT INTO observability_events
        (source, event_type, severity, restaurant_id, booking_id, context)
    VALUES (
        'assignment.state_machine', 'booking.assignment_state_transition',
        CASE WHEN NEW.assignment_state IN ('manual_review', 'failed') THEN 'warning'
             ELSE 'info' END,
        NEW.restaurant_id, NEW.id,
        jsonb_build_object('from', OLD.assignment_state, 'to', NEW.assignment_state,
                           'reason', v_reason)
    );
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.enforce_assignment_state_transition() IS 'venuedb:version=2';
