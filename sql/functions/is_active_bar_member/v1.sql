-- function: is_active_bar_member
-- version: 1
-- released in: bar_004 (mode-switching)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Whether a user is an active member (any role) or the owner of a bar. Used by the
-- policies that let a manager record a sale on behalf of a server: the server must belong
-- to the bar. SECURITY DEFINER: no recursion into bar_members' RLS.

CREATE OR REPLACE FUNCTION public.is_active_bar_member(p_bar_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM public.bar_members AS m
        WHERE m.bar_id = p_bar_id AND m.user_id = p_user_id AND m.is_active
    ) OR EXISTS (
        SELECT 1 FROM public.bars AS b
        WHERE b.id = p_bar_id AND b.owner_id = p_user_id
    )
$$;

COMMENT ON FUNCTION public.is_active_bar_member(uuid, uuid) IS 'venuedb:version=1';
