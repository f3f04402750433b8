-- function: fill_restaurant_id_from_parent
-- version: 1
-- released in: booking_018 (booking-distribution-keys)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The tenant key of a child row is its parent's (issue 22): a table distributed by
-- restaurant_id must carry restaurant_id in every row, and a child row must live in its
-- parent's restaurant. Three booking tables had no restaurant_id and took it from their
-- parent; booking_018 adds the column, and this BEFORE INSERT OR UPDATE trigger keeps it
-- right whoever writes (confirm_hold_assignment_tx, auto_assign_booking, the application
-- and psql insert without naming the column):
--
--   booking_table_assignments     parent bookings     (booking_id)
--   booking_confirmation_results  parent bookings     (booking_id)
--   table_hold_members            parent table_holds  (hold_id)
--
-- restaurant_id NULL: filled from the parent (left NULL when the parent does not exist:
-- the foreign key reports that). restaurant_id given: it must be the parent's, else
-- SQLSTATE 23503 (foreign_key_violation), CONSTRAINT naming the trigger. Once
-- booking_020's composite foreign keys (restaurant_id, parent) are in place they say the
-- same; the trigger still fills the column for writers that do not name it.

CREATE OR REPLACE FUNCTION public.fill_restaurant_id_from_parent()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_parent uuid;
    v_expected uuid;
BEGIN
    IF TG_TABLE_NAME = 'table_hold_members' THEN
        v_parent := NEW.hold_id;
        SELECT h.restaurant_id INTO v_expected FROM table_holds AS h WHERE h.id = v_parent;
    ELSIF TG_TABLE_NAME IN ('booking_table_assignments', 'booking_confirmation_results') THEN
        v_parent := NEW.booking_id;
        SELECT b.restaurant_id INTO v_expected FROM bookings AS b WHERE b.id = v_parent;
    ELSE
        RAISE EXCEPTION 'fill_restaurant_id_from_parent: no parent known for table %', TG_TABLE_NAME
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF NEW.restaurant_id IS NULL THEN
        NEW.restaurant_id := v_expected;
    ELSIF v_expected IS NOT NULL AND NEW.restaurant_id <> v_expected THEN
        RAISE EXCEPTION '% row names restaurant %, but its parent % belongs to restaurant %',
            TG_TABLE_NAME, NEW.restaurant_id, v_parent, v_expected
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_NAME,
                  HINT = 'Leave restaurant_id out: it is taken from the parent row.';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.fill_restaurant_id_from_parent() IS 'venuedb:version=1';
