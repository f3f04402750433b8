-- function: bar_role
-- version: 1
-- released in: bar_004 (mode-switching)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The role of the current user (auth.uid()) in a bar: 'owner' (bars.owner_id or an owner
-- membership), 'manager' or 'server' (an active membership), NULL when not a member.
-- SECURITY DEFINER so that row-level security policies can call it without recursing
-- into the policies of bar_members and bars.

CREATE OR REPLACE FUNCTION public.bar_role(p_bar_id uuid)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (
            SELECT 1 FROM public.bars AS b
            WHERE b.id = p_bar_id AND b.owner_id = auth.uid()
        ) THEN 'owner'
        ELSE (
            SELECT m.role FROM public.bar_members AS m
            WHERE m.bar_id = p_bar_id AND m.user_id = auth.uid() AND m.is_active
        )
    END
$$;

COMMENT ON FUNCTION public.bar_role(uuid) IS 'venuedb:version=1';
