-- function: enforce_bar_owner_change
-- version: 1
-- released in: bar_010 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of bars_owner_change_guard (BEFORE UPDATE OF owner_id ON bars, only
-- when owner_id really changes): the owner of a bar (bars.owner_id) is changed only by
-- the bar's owner (bar_role(bar) = 'owner' for auth.uid()) or by a privileged role
-- (is_privileged_caller(): superuser or BYPASSRLS, e.g. service_role). Anyone else, a
-- manager whom bars_update_by_manager lets update the bar included, is refused with
-- SQLSTATE 42501 (insufficient_privilege). SECURITY INVOKER: current_user is the caller.

CREATE OR REPLACE FUNCTION public.enforce_bar_owner_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF NEW.owner_id IS NOT DISTINCT FROM OLD.owner_id THEN
        RETURN NEW;
    END IF;
    -- Separate statements: EXECUTE on bar_role() is checked even when not evaluated.
    IF public.is_privileged_caller() THEN
        RETURN NEW;
    END IF;
    IF public.bar_role(OLD.id) IS DISTINCT FROM 'owner' THEN
        RAISE EXCEPTION 'only the owner of bar % ("%") can change its owner', OLD.id, OLD.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('user %s is not the owner of the bar', auth.uid()),
                  HINT = 'The owner transfers the bar, or the platform does (service_role).';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.enforce_bar_owner_change() IS 'venuedb:version=1';
