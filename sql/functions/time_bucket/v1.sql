-- function: time_bucket
-- version: 1
-- released in: booking_008 (assignment-pipeline-v3)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Seed 001's dashboard panels call TimescaleDB's time_bucket(interval, timestamptz).
-- On plain PostgreSQL (and Supabase without TimescaleDB) this is the same bucketing by
-- date_bin, with TimescaleDB's default origin (Monday 2000-01-03), so those queries run
-- unchanged. Created only where no time_bucket(interval, timestamptz) exists.

DO $compat$
BEGIN
    IF to_regprocedure('time_bucket(interval, timestamp with time zone)') IS NULL THEN
        CREATE FUNCTION public.time_bucket(bucket_width interval, ts timestamptz)
        RETURNS timestamptz
        LANGUAGE sql
        IMMUTABLE PARALLEL SAFE
        AS 'SELECT date_bin(bucket_width, ts, timestamptz ''2000-01-03 00:00:00+00'')';
        COMMENT ON FUNCTION public.time_bucket(interval, timestamptz) IS 'venuedb:version=1';
    END IF;
END
$compat$;
