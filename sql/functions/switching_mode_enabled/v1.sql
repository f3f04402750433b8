-- function: switching_mode_enabled
-- version: 1
-- released in: bar_012 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Whether the ENABLE_SWITCHING_MODE flag (seed 002) is on for a bar, from the database's
-- own state, public.feature_flags: on globally (enabled), or for this bar (listed in
-- bar_ids). False when the row is missing. create_sale_by_server_name() asks it; set it
-- with `venuedb flags set ENABLE_SWITCHING_MODE on|off [--bar BAR_ID ...]`.
-- SECURITY INVOKER: feature_flags is readable by its owner and service_role only.

CREATE OR REPLACE FUNCTION public.switching_mode_enabled(p_bar_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = public, pg_temp
AS $$
    SELECT coalesce(
        (SELECT f.enabled OR coalesce(p_bar_id = ANY(f.bar_ids), false)
         FROM public.feature_flags AS f
         WHERE f.name = 'ENABLE_SWITCHING_MODE'),
        false
    )
$$;

COMMENT ON FUNCTION public.switching_mode_enabled(uuid) IS 'venuedb:version=1';
