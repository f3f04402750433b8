-- function: backfill_server_id_batch
-- version: 1
-- released in: bar_007 (mode-switching)
-- immutable: a released version is never edited; a new version is a new file.
--
-- One batch of the server_id backfill of sales, consignments or returns (p_table), for the
-- rows with p_from < id <= p_to (p_from NULL: from the start) that have no server_id:
--   1. the server name typed on the till, compared case- and space-insensitively, found in
--      server_name_mappings for the row's bar -> that user (fallback_used false);
--   2. else the creating user (created_by), when that user still exists in auth.users
--      (reason no_mapping_used_creator / no_server_name_used_creator);
--   3. else server_id stays NULL (no_mapping_creator_missing / no_server_name_creator_missing).
-- Every row examined gets exactly one migration_server_id_log row: UNIQUE (table_name,
-- row_id); a rerun that now resolves a row left NULL before updates that row, never adds
-- a second. Returns the number of rows whose server_id was set. Called by the backfill
-- engine (migrations/backfills.toml) through the per-table wrappers.

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
        resolved AS (
            SELECT todo.id, todo.bar_id, todo.server_name,
                   todo.name_normalized = '' AS no_name,
                   m.user_id AS mapped,
                   u.id AS creator
            FROM todo
            LEFT JOIN public.server_name_mappings AS m
                ON m.bar_id = todo.bar_id
               AND m.name_normalized = todo.name_normalized
               AND todo.name_normalized <> ''
            LEFT JOIN auth.users AS u ON u.id = todo.created_by
        ),
        decided AS (
            SELECT r.id, r.bar_id, r.server_name,
                   coalesce(r.mapped, r.creator) AS server_id,
                   r.mapped IS NULL AS fallback_used,
                   CASE
                       WHEN r.mapped IS NOT NULL THEN NULL
                       WHEN r.no_name AND r.creator IS NOT NULL THEN 'no_server_name_used_creator'
                       WHEN r.no_name THEN 'no_server_name_creator_missing'
                       WHEN r.creator IS NOT NULL THEN 'no_mapping_used_creator'
                       ELSE 'no_mapping_creator_missing'
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
                  AND excluded.resolved_server_id IS NOT NULL
            RETURNING 1
        )
        SELECT count(*)::integer FROM updated
    $sql$, p_table) INTO v_changed USING p_from, p_to;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION public.backfill_server_id_batch(text, uuid, uuid) IS 'venuedb:version=1';
