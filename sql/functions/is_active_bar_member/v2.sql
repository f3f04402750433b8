-- function: is_active_bar_member
-- version: 2
-- released in: bar_009 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Whether a user is an active member (any role) or the owner of a bar, answered only to
-- someone entitled to know: the current user (auth.uid()) is an owner or manager of that
-- bar, or is that user. Otherwise false, so the function is no membership oracle: it never
-- reveals more than bar_members_select_by_role already shows the caller. Used by the
-- policies that let a manager record a sale (or map a name) on behalf of a server, by
-- create_sale_by_server_name() after it checked that the caller manages the bar, and by
-- the server_id membership trigger. SECURITY DEFINER: no recursion into bar_members' RLS.
-- Never NULL. v1 answered anyone (it was executable by PUBLIC) about any bar.

CREATE OR REPLACE FUNCTION public.is_active_bar_member(p_bar_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(
        (p_user_id = auth.uid() OR public.bar_role(p_bar_id) IN ('owner', 'manager'))
        AND (
            EXISTS (
                SELECT 1 FROM public.bar_members AS m
                WHERE m.bar_id = p_bar_id AND m.user_id = p_user_id AND m.is_active
            ) OR EXISTS (
                SELECT 1 FROM public.bars AS b
                WHERE b.id = p_bar_id AND b.owner_id = p_user_id
            )
        ),
        false
    )
$$;

COMMENT ON FUNCTION public.is_active_bar_member(uuid, uuid) IS 'venuedb:version=2';
