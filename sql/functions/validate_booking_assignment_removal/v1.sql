-- function: validate_booking_assignment_removal
-- version: 1
-- released in: booking_003 (table-combinations)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of the deferred constraint trigger
-- booking_assignment_removal_validation on booking_table_assignments: removing (or
-- moving away) the last assignment of a confirmed booking is refused at commit, the
-- other side of booking_assignment_validation. A separate function, so that seed 000's
-- "Level 2" rollback SQL (DROP FUNCTION validate_booking_has_assignments) runs unchanged.

CREATE OR REPLACE FUNCTION public.validate_booking_assignment_removal()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public
AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.id = OLD.booking_id
          AND b.status = 'confirmed'
          AND NOT EXISTS (
              SELECT 1 FROM booking_table_assignments a WHERE a.booking_id = b.id
          )
    ) THEN
        RAISE EXCEPTION 'booking % is confirmed and would be left without table assignments',
            OLD.booking_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'booking_assignment_validation',
                  HINT = 'Set the booking back to pending, or assign another table first.';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION public.validate_booking_assignment_removal() IS 'venuedb:version=1';
