-- function: enforce_assignment_state_transition
-- version: 1
-- released in: booking_008 (assignment-pipeline-v3)
-- immutable: a released version is never edited; a new version is a new file.
--
-- BEFORE UPDATE OF assignment_state ON bookings: a change of assignment_state must be
-- a row of assignment_state_transitions (NULL, a booking the pipeline has not seen
-- yet, may enter any state); anything else is refused naming both states. Every
-- transition writes an observability_events row (source assignment.state_machine,
-- event_type booking.assignment_state_transition, context {from, to, reason}); the
-- reason is the transaction-local setting venuedb.assignment_reason, set by the caller.

CREATE OR REPLACE FUNCTION public.enforce_assignment_state_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public
AS $$
DECLARE
    v_reason text := coalesce(nullif(current_setting('venuedb.assignment_reason', true), ''),
                              'unspecified');
BEGIN
    IF NEW.assignment_state IS NOT DISTINCT FROM OLD.assignment_state THEN
        RETURN NEW;
    END IF;
    IF NEW.assignment_state IS NULL THEN
        RAISE EXCEPTION 'assignment_state cannot go back from % to NULL', OLD.assignment_state
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.assignment_state IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM assignment_state_transitions t
        WHERE t.from_state = OLD.assignment_state AND t.to_state = NEW.assignment_state
    ) THEN
        RAISE EXCEPTION 'invalid assignment_state transition from % to % for booking %',
            OLD.assignment_state, NEW.assignment_state, NEW.id
            USING ERRCODE = 'check_violation',
                  HINT = 'The allowed transitions are the rows of assignment_state_transitions.';
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

COMMENT ON FUNCTION public.enforce_assignment_state_transition() IS 'venuedb:version=1';
