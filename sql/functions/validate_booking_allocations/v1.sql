-- function: validate_booking_allocations
-- version: 1
-- released in: booking_011 (booking-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of three deferred constraint triggers (issue 15, hole 2): at commit,
-- a booking that is confirmed or checked in holds its tables twice, as
-- booking_table_assignments and as live allocations, and the two must agree. Every
-- assigned table has a live (not shadow) 'table' allocation of the booking whose window
-- covers the booking's time, and every live table allocation of the booking is an
-- assigned table covering that time. Otherwise deleting an allocation, setting it
-- shadow, or shrinking its window would free the table for the next confirmation while
-- the booking stays confirmed.
--
--   booking_allocations_validation                   bookings: INSERT, UPDATE OF status,
--                                                    start_at, end_at (confirmed/checked_in)
--   allocations_booking_validation                   allocations: INSERT, DELETE, UPDATE OF
--                                                    booking_id, resource_type, resource_id,
--                                                    window, shadow
--   booking_table_assignments_allocation_validation  booking_table_assignments: INSERT,
--                                                    DELETE, UPDATE OF booking_id, table_id
--
-- Deferred, so one transaction may change assignments, allocations and the booking in
-- any order. It re-reads the rows, because they may have changed again before commit.
-- SQLSTATE 23514, CONSTRAINT booking_allocations_in_step.

CREATE OR REPLACE FUNCTION public.validate_booking_allocations()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_ids uuid[];
    v_booking record;
    v_assigned uuid[];
    v_allocated uuid[];
    v_uncovered uuid[];
BEGIN
    IF TG_TABLE_NAME = 'bookings' THEN
        v_ids := ARRAY[NEW.id];
    ELSIF TG_OP = 'INSERT' THEN
        v_ids := ARRAY[NEW.booking_id];
    ELSIF TG_OP = 'DELETE' THEN
        v_ids := ARRAY[OLD.booking_id];
    ELSE
        v_ids := ARRAY[OLD.booking_id, NEW.booking_id];
    END IF;

    FOR v_booking IN
        SELECT b.id, b.status, tstzrange(b.start_at, b.end_at, '[)') AS booked
        FROM bookings AS b
        WHERE b.id = ANY (v_ids) AND b.status IN ('confirmed', 'checked_in')
    LOOP
        v_assigned := ARRAY(
            SELECT a.table_id FROM booking_table_assignments AS a
            WHERE a.booking_id = v_booking.id ORDER BY a.table_id
        );
        v_allocated := ARRAY(
            SELECT DISTINCT al.resource_id FROM allocations AS al
            WHERE al.booking_id = v_booking.id AND al.resource_type = 'table' AND NOT al.shadow
            ORDER BY al.resource_id
        );
        v_uncovered := ARRAY(
            SELECT al.resource_id FROM allocations AS al
            WHERE al.booking_id = v_booking.id AND al.resource_type = 'table' AND NOT al.shadow
              AND NOT al."window" @> v_booking.booked
            ORDER BY al.resource_id
        );
        IF v_assigned IS DISTINCT FROM v_allocated OR cardinality(v_uncovered) > 0 THEN
            RAISE EXCEPTION 'booking % is % but its tables and its live allocations disagree: assigned %, allocated %, allocations not covering % %',
                v_booking.id, v_booking.status, v_assigned, v_allocated, v_booking.booked,
                v_uncovered
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'booking_allocations_in_step',
                      HINT = 'Change a booking''s assignments and allocations together in one transaction, or set it back to pending first.';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION public.validate_booking_allocations() IS 'venuedb:version=1';
