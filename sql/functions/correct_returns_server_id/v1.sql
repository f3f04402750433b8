-- function: correct_returns_server_id
-- version: 1
-- released in: bar_017 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The batch function of the backfill returns_server_id_correction (migrations/backfills.toml):
-- the returns with p_from < id <= p_to that the server_id backfill credited by fallback and
-- whose typed name now resolves, corrected and logged by correct_server_id_batch().
-- Returns the number of rows whose server_id was changed.

CREATE OR REPLACE FUNCTION public.correct_returns_server_id(p_from uuid, p_to uuid)
RETURNS integer
LANGUAGE sql
VOLATILE
SET search_path = public, pg_temp
AS $$
    SELECT public.correct_server_id_batch('returns', p_from, p_to)
$$;

COMMENT ON FUNCTION public.correct_returns_server_id(uuid, uuid) IS 'venuedb:version=1';
