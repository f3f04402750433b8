-- function: enforce_server_id_membership
-- version: 1
-- released in: bar_011 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Trigger function of sales_server_id_member_check, consignments_server_id_member_check
-- and returns_server_id_member_check (BEFORE INSERT OR UPDATE OF server_id, bar_id): a
-- new or changed server_id (an INSERT, or an UPDATE that changes server_id or bar_id) must
-- be an active member or the owner of the row's bar, else SQLSTATE 42501
-- (insufficient_privilege), as the insert policies refuse the same value on INSERT.
-- An unchanged server_id is not checked again: a server who has since left the bar does
-- not block unrelated updates (voiding an old sale). NULL is always allowed. Privileged
-- roles (is_privileged_caller(): superuser or BYPASSRLS, e.g. service_role, the backfill
-- run by the owner) are exempt: the backfill may set a creator who is no longer a member.
-- Membership is asked through is_active_bar_member(), which answers only a manager or
-- owner of the bar, or the server themselves: a server can only name themselves.
-- SECURITY INVOKER: current_user and auth.uid() are the caller's.

CREATE OR REPLACE FUNCTION public.enforce_server_id_membership()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF NEW.server_id IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE'
       AND NEW.server_id IS NOT DISTINCT FROM OLD.server_id
       AND NEW.bar_id IS NOT DISTINCT FROM OLD.bar_id THEN
        RETURN NEW;
    END IF;
    -- Separate statements: EXECUTE on is_active_bar_member() is checked even when not
    -- evaluated.
    IF public.is_privileged_caller() THEN
        RETURN NEW;
    END IF;
    IF NOT public.is_active_bar_member(NEW.bar_id, NEW.server_id) THEN
        RAISE EXCEPTION '%.server_id %: not an active member of bar %',
                TG_TABLE_NAME, NEW.server_id, NEW.bar_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A sale, consignment or return is attributed to a member of its own bar.';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION public.enforce_server_id_membership() IS 'venuedb:version=1';
