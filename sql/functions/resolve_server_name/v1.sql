-- function: resolve_server_name
-- version: 1
-- released in: bar_015 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The live path's rule for the name typed on the till, as one function: one row
-- (server_id, outcome, matches) for a bar and a typed name. The name is compared case- and
-- space-insensitively (lower case, trimmed, inner runs of white space folded to one space):
--   outcome 'mapping'       server_name_mappings of the bar maps the name to server_id;
--   outcome 'display_name'  no mapping, exactly one active member of the bar has that
--                           display name (matches = 1);
--   outcome 'no_name'       nothing typed (server_id NULL);
--   outcome 'unknown_name'  no mapping, no active member with that display name;
--   outcome 'ambiguous_name' no mapping, `matches` (> 1) active members share the name;
--   outcome 'not_member'    the mapping names a user who is neither an active member nor
--                           the owner of the bar (server_id is that user; not usable).
-- create_sale_by_server_name v2 applies the same rule; try_create_sale_by_server_name
-- calls this function. SECURITY INVOKER: it reads members and mappings, so it is an oracle
-- of a bar's staff; EXECUTE is for the owner only (the SECURITY DEFINER functions).

CREATE OR REPLACE FUNCTION public.resolve_server_name(p_bar_id uuid, p_server_name text)
RETURNS TABLE (server_id uuid, outcome text, matches integer)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
    WITH typed AS (
        SELECT lower(btrim(regexp_replace(coalesce(p_server_name, ''), '\s+', ' ', 'g'))) AS name
    ),
    mapped AS (
        SELECT m.user_id
        FROM public.server_name_mappings AS m, typed
        WHERE m.bar_id = p_bar_id AND m.name_normalized = typed.name AND typed.name <> ''
    ),
    named AS (
        SELECT count(*)::integer AS matches, min(bm.user_id::text)::uuid AS user_id
        FROM public.bar_members AS bm, typed
        WHERE bm.bar_id = p_bar_id
          AND bm.is_active
          AND typed.name <> ''
          AND lower(btrim(regexp_replace(coalesce(bm.display_name, ''), '\s+', ' ', 'g')))
              = typed.name
    )
    SELECT
        CASE
            WHEN typed.name = '' THEN NULL
            WHEN mapped.user_id IS NOT NULL THEN mapped.user_id
            WHEN named.matches = 1 THEN named.user_id
        END,
        CASE
            WHEN typed.name = '' THEN 'no_name'
            WHEN mapped.user_id IS NOT NULL AND NOT (
                EXISTS (SELECT 1 FROM public.bar_members AS a
                        WHERE a.bar_id = p_bar_id AND a.user_id = mapped.user_id AND a.is_active)
                OR EXISTS (SELECT 1 FROM public.bars AS b
                           WHERE b.id = p_bar_id AND b.owner_id = mapped.user_id)
            ) THEN 'not_member'
            WHEN mapped.user_id IS NOT NULL THEN 'mapping'
            WHEN named.matches = 1 THEN 'display_name'
            WHEN named.matches > 1 THEN 'ambiguous_name'
            ELSE 'unknown_name'
        END,
        CASE WHEN mapped.user_id IS NOT NULL THEN 1 ELSE named.matches END
    FROM typed
    CROSS JOIN named
    LEFT JOIN mapped ON true
$$;

COMMENT ON FUNCTION public.resolve_server_name(uuid, text) IS 'venuedb:version=1';
