-- function: enforce_same_restaurant
-- version: 1
-- released in: booking_010 (booking-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- One rule, enforced on every table that names a physical table or a restaurant: a
-- table belongs to exactly one restaurant, and whatever refers to it belongs to that
-- restaurant too. allocations_no_overlap compares allocations within one restaurant, so
-- an allocation, an assignment or a hold naming another restaurant's table would put
-- two restaurants' guests on one table without any overlap being detected (issue 15,
-- hole 1).
--
--   allocations                BEFORE INSERT OR UPDATE: a 'table' allocation names a
--                              table of the allocation's restaurant.
--   booking_table_assignments  BEFORE INSERT OR UPDATE: the table belongs to the
--                              booking's restaurant.
--   table_hold_members         BEFORE INSERT OR UPDATE: the table belongs to the hold's
--                              restaurant.
--   bookings, table_holds,     BEFORE UPDATE: restaurant_id never changes (and a table's
--   table_inventory            id never changes: allocations name it without a foreign
--                              key), so a reference checked once stays true.
--
-- SQLSTATE 23503 (foreign_key_violation) for a reference to another restaurant's table,
-- 23514 (check_violation) for a change of restaurant; CONSTRAINT names the trigger.

CREATE OR REPLACE FUNCTION public.enforce_same_restaurant()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_table uuid;
    v_owner uuid;
    v_expected uuid;
BEGIN
    IF TG_TABLE_NAME IN ('bookings', 'table_holds', 'table_inventory') THEN
        IF NEW.restaurant_id IS DISTINCT FROM OLD.restaurant_id OR NEW.id <> OLD.id THEN
            RAISE EXCEPTION '% % belongs to restaurant % and cannot move to another restaurant or id',
                TG_TABLE_NAME, OLD.id, OLD.restaurant_id
                USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME,
                      HINT = 'Create a new row in the other restaurant instead.';
        END IF;
        RETURN NEW;
    END IF;

    IF TG_TABLE_NAME = 'allocations' THEN
        IF NEW.resource_type <> 'table' THEN
            RETURN NEW;
        END IF;
        v_table := NEW.resource_id;
        v_expected := NEW.restaurant_id;
    ELSIF TG_TABLE_NAME = 'booking_table_assignments' THEN
        v_table := NEW.table_id;
        SELECT b.restaurant_id INTO v_expected FROM bookings AS b WHERE b.id = NEW.booking_id;
    ELSE  -- table_hold_members
        v_table := NEW.table_id;
        SELECT h.restaurant_id INTO v_expected FROM table_holds AS h WHERE h.id = NEW.hold_id;
    END IF;

    SELECT t.restaurant_id INTO v_owner FROM table_inventory AS t WHERE t.id = v_table;
    -- A missing booking or hold is the foreign key's to report; a missing table is ours.
    IF v_expected IS NOT NULL AND v_owner IS DISTINCT FROM v_expected THEN
        RAISE EXCEPTION '% row names table %, which is %, not a table of restaurant %',
            TG_TABLE_NAME, v_table,
            CASE WHEN v_owner IS NULL THEN 'not a table at all'
                 ELSE 'a table of restaurant ' || v_owner END,
            v_expected
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_NAME,
                  HINT = 'Only a table of the same restaurant can be allocated, assigned or held.';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.enforce_same_restaurant() IS 'venuedb:version=1';
