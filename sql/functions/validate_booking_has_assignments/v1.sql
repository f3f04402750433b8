-- function: validate_booking_has_assignments
-- version: 1
-- released in: booking_003 (table-combinations)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of the deferred constraint trigger booking_assignment_validation on
-- bookings: at commit, a booking that is confirmed must have at least one table
-- assignment. Deferred, so one transaction may confirm and assign in either order.
-- It re-reads the booking, because the row may have changed again before commit.

CREATE OR REPLACE FUNCTION public.validate_booking_has_assignments()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public
AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.id = NEW.id
          AND b.status = 'confirmed'
          AND NOT EXISTS (
              SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = b.id
          )
    ) THEN
        RAISE EXCEPTION 'booking % is confirmed but has no table assignments', NEW.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'booking_assignment_validation',
                  HINT = 'Assign tables in the same transaction, or leave the booking pending.';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION public.validate_booking_has_assignments() IS 'venuedb:version=1';
