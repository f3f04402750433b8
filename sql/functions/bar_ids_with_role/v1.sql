-- function: bar_ids_with_role
-- version: 1
-- released in: bar_004 (mode-switching)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The bars in which the current user (auth.uid()) holds one of the given roles: owner
-- (bars.owner_id or an owner membership), manager, server (active memberships only).
-- Policies call it as (SELECT public.bar_ids_with_role(...)), an init plan evaluated once
-- per statement, not once per row. SECURITY DEFINER: no recursion into bar_members' RLS.

CREATE OR REPLACE FUNCTION public.bar_ids_with_role(p_roles text[])
RETURNS uuid[]
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT x.bar_id), '{}'::uuid[])
    FROM (
        SELECT b.id AS bar_id FROM public.bars AS b
        WHERE b.owner_id = auth.uid() AND 'owner' = ANY(p_roles)
        UNION ALL
        SELECT m.bar_id FROM public.bar_members AS m
        WHERE m.user_id = auth.uid() AND m.is_active AND m.role = ANY(p_roles)
    ) AS x
$$;

COMMENT ON FUNCTION public.bar_ids_with_role(text[]) IS 'venuedb:version=1';
