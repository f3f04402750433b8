-- function: backfill_returns_server_id
-- version: 1
-- released in: bar_007 (mode-switching)
-- immutable: a released version is never edited; a new version is a new file.
--
-- The batch function of the backfill returns_server_id (migrations/backfills.toml): the
-- server_id of the returns with p_from < id <= p_to, resolved and logged by
-- backfill_server_id_batch(). Returns the number of rows whose server_id was set.

CREATE OR REPLACE FUNCTION public.backfill_returns_server_id(p_from uuid, p_to uuid)
RETURNS integer
LANGUAGE sql
VOLATILE
SET search_path = public, pg_temp
AS $$
    SELECT public.backfill_server_id_batch('returns', p_from, p_to)
$$;

COMMENT ON FUNCTION public.backfill_returns_server_id(uuid, uuid) IS 'venuedb:version=1';
