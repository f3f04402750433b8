-- function: is_privileged_caller
-- version: 1
-- released in: bar_010 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Whether the current role (current_user) is privileged: a superuser, or a role with
-- BYPASSRLS (service_role; the table owner running a backfill is a superuser or has
-- BYPASSRLS on Supabase). The bar's integrity triggers exempt privileged callers: they
-- act for the platform, not for a user of a bar. SECURITY INVOKER on purpose: inside a
-- trigger function (also SECURITY INVOKER) current_user is the caller's role, e.g.
-- authenticated after SET ROLE; a SECURITY DEFINER function would always see its owner.
-- Never NULL: an unknown role is not privileged.

CREATE OR REPLACE FUNCTION public.is_privileged_caller()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(
        (SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles AS r
         WHERE r.rolname = current_user),
        false
    )
$$;

COMMENT ON FUNCTION public.is_privileged_caller() IS 'venuedb:version=1';
