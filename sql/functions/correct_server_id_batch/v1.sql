-- function: correct_server_id_batch
-- version: 1
-- released in: bar_017 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- One batch of the server_id correction of sales, consignments or returns (p_table), for
-- the rows with p_from < id <= p_to (p_from NULL: from the start). backfill_server_id_batch
-- v1 credited a row whose typed name had no mapping to its creator (usually the manager
-- at the shared till) or left it NULL; reruns only touch NULL rows, so those credits
-- stayed. This corrects them where the typed name now resolves:
--   * a row is a candidate when its migration_server_id_log row says the backfill fell
--     back (fallback_used), it was never corrected (corrected_at NULL), and the row still
--     holds exactly what the backfill wrote (server_id IS NOT DISTINCT FROM
--     resolved_server_id): a row whose server_id anyone changed since is a human's
--     decision and is never touched;
--   * its typed name resolves as in backfill_server_id_batch v2: the bar's mapping, else
--     the one member of the bar with that display name -> server_id becomes that user,
--     and the log row gets corrected_server_id (new), corrected_at and correction_reason
--     corrected_by_mapping / corrected_by_display_name, and fallback_used false (the row
--     is no longer credited by a fallback: seed 002's `GROUP BY fallback_used` reads the
--     truth); resolved_server_id keeps the old value and fallback_reason why the backfill
--     had fallen back, so the runbook's query undoes it;
--   * several members share the name: nothing changes, the log row's correction_reason
--     says ambiguous_name_not_corrected (counted by the check server_id_ambiguous_names;
--     a mapping for the name, then a rerun, corrects it);
--   * no name, or a name nobody has: nothing changes.
-- Idempotent: a corrected row is no longer a candidate; a rerun writes nothing new.
-- Returns the number of rows whose server_id was changed.

CREATE OR REPLACE FUNCTION public.correct_server_id_batch(p_table text, p_from uuid, p_to uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    v_changed integer;
BEGIN
    IF p_table IS NULL OR p_table NOT IN ('sales', 'consignments', 'returns') THEN
        RAISE EXCEPTION 'correct_server_id_batch: unknown table %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format($sql$
        WITH candidates AS (
            SELECT t.id, t.bar_id, l.id AS log_id, l.correction_reason AS was,
                   lower(btrim(regexp_replace(coalesce(t.server_name, ''), '\s+', ' ', 'g')))
                       AS name_normalized
            FROM public.%1$I AS t
            JOIN public.migration_server_id_log AS l
                ON l.table_name = %1$L AND l.row_id = t.id
            WHERE ($1 IS NULL OR t.id > $1) AND t.id <= $2
              AND l.fallback_used
              AND l.corrected_at IS NULL
              AND t.server_id IS NOT DISTINCT FROM l.resolved_server_id
        ),
        members AS (
            SELECT bm.bar_id,
                   lower(btrim(regexp_replace(coalesce(bm.display_name, ''), '\s+', ' ', 'g')))
                       AS name_normalized,
                   count(*) AS matches,
                   min(bm.user_id::text)::uuid AS user_id
            FROM public.bar_members AS bm
            WHERE bm.bar_id IN (SELECT DISTINCT c.bar_id FROM candidates AS c)
            GROUP BY 1, 2
        ),
        decided AS (
            SELECT c.id, c.log_id, c.was,
                   coalesce(m.user_id, CASE WHEN n.matches = 1 THEN n.user_id END) AS server_id,
                   CASE
                       WHEN m.user_id IS NOT NULL THEN 'corrected_by_mapping'
                       WHEN n.matches = 1 THEN 'corrected_by_display_name'
                       WHEN n.matches > 1 THEN 'ambiguous_name_not_corrected'
                   END AS reason
            FROM candidates AS c
            LEFT JOIN public.server_name_mappings AS m
                ON m.bar_id = c.bar_id AND m.name_normalized = c.name_normalized
            LEFT JOIN members AS n
                ON n.bar_id = c.bar_id AND n.name_normalized = c.name_normalized
            WHERE c.name_normalized <> ''
        ),
        updated AS (
            UPDATE public.%1$I AS t
            SET server_id = d.server_id
            FROM decided AS d
            WHERE t.id = d.id AND d.server_id IS NOT NULL
            RETURNING t.id
        ),
        corrected AS (
            UPDATE public.migration_server_id_log AS l
            SET corrected_server_id = d.server_id,
                fallback_used = false,
                corrected_at = clock_timestamp(),
                correction_reason = d.reason
            FROM decided AS d
            WHERE l.id = d.log_id AND d.server_id IS NOT NULL
            RETURNING 1
        ),
        ambiguous AS (
            UPDATE public.migration_server_id_log AS l
            SET correction_reason = d.reason
            FROM decided AS d
            WHERE l.id = d.log_id
              AND d.server_id IS NULL
              AND d.reason IS NOT NULL
              AND d.was IS DISTINCT FROM d.reason
            RETURNING 1
        )
        SELECT count(*)::integer FROM updated
    $sql$, p_table) INTO v_changed USING p_from, p_to;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION public.correct_server_id_batch(text, uuid, uuid) IS 'venuedb:version=1';
