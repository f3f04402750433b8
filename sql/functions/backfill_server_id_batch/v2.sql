-- function: backfill_server_id_batch
-- version: 2
-- released in: bar_017 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- One batch of the server_id backfill of sales, consignments or returns (p_table), for the
-- rows with p_from < id <= p_to (p_from NULL: from the start) that have no server_id.
-- v1 credited a row whose typed name had no mapping to the user who created it (usually
-- the manager at the shared till), while live sale creation also resolves the name
-- through the members' display names; the rollout runs the backfill right after creating
-- an empty server_name_mappings table, so most rows went to the manager. v2 resolves the
-- typed name as the live path does (resolve_server_name(): the mapping, else the members'
-- display names; here as set-based joins for speed, and tests/test_bar_observability.py
-- holds the two to the same answer for a bar whose members are all active):
--   1. server_name_mappings of the row's bar -> that user (fallback_used false);
--   2. else exactly one member of the bar with that display name -> that member
--      (fallback_used false). Every member, not only the active ones the live path reads
--      (a new sale goes to someone who serves now): a past sale may have been served by
--      someone who has left since, and a name a former and a current member share is
--      ambiguous rather than guessed. Likewise a mapping counts whoever it names, as in v1;
--   3. else the creating user (created_by), when that user still exists, with the reason
--      no_server_name_used_creator, no_mapping_used_creator (no mapping, no member of
--      that name) or ambiguous_name_used_creator (several members of that name);
--   4. else server_id stays NULL, reason no_server_name_resolution_failed,
--      no_mapping_resolution_failed or ambiguous_name_resolution_failed: the seed's
--      `fallback_reason LIKE '%failed%'` finds exactly these. v1 wrote
--      no_server_name_creator_missing / no_mapping_creator_missing for them; such rows
--      keep their code until a rerun examines them again.
-- Every row examined gets exactly one migration_server_id_log row (UNIQUE (table_name,
-- row_id)); a rerun updates the log row of a row left NULL before (with what it decides
-- now), never adds a second. Returns the number of rows whose server_id was set.

CREATE OR REPLACE FUNCTION public.backfill_server_id_batch(p_table text, p_from uuid, p_to uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_changed integer;
BEGIN
    IF p_table IS NULL OR p_table NOT IN ('sales', 'consignments', 'returns') THEN
        RAISE EXCEPTION 'backfill_server_id_batch: unknown table %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format($sql$
        WITH todo AS (
            SELECT t.id, t.bar_id, t.server_name, t.created_by,
                   lower(btrim(regexp_replace(coalesce(t.server_name, ''), '\s+', ' ', 'g')))
                       AS name_normalized
            FROM public.%1$I AS t
            WHERE ($1 IS NULL OR t.id > $1) AND t.id <= $2 AND t.server_id IS NULL
        ),
        members AS (
            SELECT bm.bar_id,
                   lower(btrim(regexp_replace(coalesce(bm.display_name, ''), '\s+', ' ', 'g')))
                       AS name_normalized,
                   count(*) AS matches,
                   min(bm.user_id::text)::uuid AS user_id
            FROM public.bar_members AS bm
            WHERE bm.bar_id IN (SELECT DISTINCT todo.bar_id FROM todo)
            GROUP BY 1, 2
        ),
        resolved AS (
            SELECT todo.id, todo.bar_id, todo.server_name,
                   todo.name_normalized = '' AS no_name,
                   m.user_id AS mapped,
                   CASE WHEN n.matches = 1 THEN n.user_id END AS named,
                   coalesce(n.matches, 0) > 1 AS ambiguous,
                   u.id AS creator
            FROM todo
            LEFT JOIN public.server_name_mappings AS m
                ON m.bar_id = todo.bar_id
               AND m.name_normalized = todo.name_normalized
               AND todo.name_normalized <> ''
            LEFT JOIN members AS n
                ON n.bar_id = todo.bar_id
               AND n.name_normalized = todo.name_normalized
               AND todo.name_normalized <> ''
            LEFT JOIN auth.users AS u ON u.id = todo.created_by
        ),
        decided AS (
            SELECT r.id, r.bar_id, r.server_name,
                   coalesce(r.mapped, r.named, r.creator) AS server_id,
                   r.mapped IS NULL AND r.named IS NULL AS fallback_used,
                   CASE
                       WHEN r.mapped IS NOT NULL OR r.named IS NOT NULL THEN NULL
                       WHEN r.no_name AND r.creator IS NOT NULL THEN 'no_server_name_used_creator'
                       WHEN r.no_name THEN 'no_server_name_resolution_failed'
                       WHEN r.ambiguous AND r.creator IS NOT NULL THEN 'ambiguous_name_used_creator'
                       WHEN r.ambiguous THEN 'ambiguous_name_resolution_failed'
                       WHEN r.creator IS NOT NULL THEN 'no_mapping_used_creator'
                       ELSE 'no_mapping_resolution_failed'
                   END AS fallback_reason
            FROM resolved AS r
        ),
        updated AS (
            UPDATE public.%1$I AS t
            SET server_id = d.server_id
            FROM decided AS d
            WHERE t.id = d.id AND d.server_id IS NOT NULL
            RETURNING t.id
        ),
        logged AS (
            INSERT INTO public.migration_server_id_log AS l
                (table_name, row_id, bar_id, server_name, resolved_server_id,
                 fallback_used, fallback_reason)
            SELECT %1$L, d.id, d.bar_id, d.server_name, d.server_id,
                   d.fallback_used, d.fallback_reason
            FROM decided AS d
            ON CONFLICT (table_name, row_id) DO UPDATE
                SET resolved_server_id = excluded.resolved_server_id,
                    fallback_used = excluded.fallback_used,
                    fallback_reason = excluded.fallback_reason,
                    server_name = excluded.server_name
                WHERE l.resolved_server_id IS NULL
                  AND l.corrected_server_id IS NULL
            RETURNING 1
        )
        SELECT count(*)::integer FROM updated
    $sql$, p_table) INTO v_changed USING p_from, p_to;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION public.backfill_server_id_batch(text, uuid, uuid) IS 'venuedb:version=2';
