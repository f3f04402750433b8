-- function: try_create_sale_by_server_name
-- version: 1
-- released in: bar_015 (bar-observability)
-- immutable: a released version is never edited; a new version is a new file.
--
-- create_sale_by_server_name v2 that records its name resolutions. Same arguments, same
-- rules, same sale; but a name that does not resolve is returned, not raised:
--   (sale_id, outcome, error_code, message)
--   * the sale was created: sale_id, outcome 'mapping' | 'display_name' (simplified mode,
--     how the typed name resolved), 'full_mode' (the caller's own sale) or
--     'switching_off' (ENABLE_SWITCHING_MODE off for the bar: no server_id);
--   * simplified mode and the name did not resolve: sale_id NULL, outcome 'no_name' |
--     'unknown_name' | 'ambiguous_name' | 'not_member', error_code the SQLSTATE v2 raises
--     for it (22023, P0002, P0003, 22023) and v2's message. No sale is created.
-- Every resolution attempted (simplified mode, switching mode on) writes one row of
-- server_id_resolution_log, resolved or not, and that row commits with the caller's
-- transaction because nothing is raised: the check server_id_resolution_error_rate reads
-- it. create_sale_by_server_name keeps raising (callers rely on it to block the sale at
-- the till); a raised failure rolls back with the caller's transaction, and PostgreSQL
-- has no autonomous transaction to record it, so only this function's attempts are seen.
-- Who may call is unchanged and still raises: no authenticated user, not an active
-- member (42501), simplified mode and not a manager or owner (42501).

CREATE OR REPLACE FUNCTION public.try_create_sale_by_server_name(
    p_bar_id uuid,
    p_server_name text,
    p_items jsonb,
    p_total numeric,
    OUT sale_id uuid,
    OUT outcome text,
    OUT error_code text,
    OUT message text
)
RETURNS record
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_uid uuid := auth.uid();
    v_role text;
    v_mode text;
    v_server uuid;
    v_matches integer;
BEGIN
    IF v_uid IS NULL THEN
        RAISE EXCEPTION 'try_create_sale_by_server_name: no authenticated user'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_role := public.bar_role(p_bar_id);
    IF v_role IS NULL THEN
        RAISE EXCEPTION 'user % is not an active member of bar %', v_uid, p_bar_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    IF NOT public.switching_mode_enabled(p_bar_id) THEN
        INSERT INTO public.sales (bar_id, created_by, server_name, items, total)
        VALUES (p_bar_id, v_uid, nullif(btrim(p_server_name), ''),
                coalesce(p_items, '[]'::jsonb), p_total)
        RETURNING id INTO sale_id;
        outcome := 'switching_off';
        RETURN;
    END IF;

    SELECT b.settings ->> 'operatingMode' INTO v_mode FROM public.bars AS b WHERE b.id = p_bar_id;

    IF v_mode IS DISTINCT FROM 'simplified' THEN
        INSERT INTO public.sales (bar_id, created_by, server_id, server_name, items, total)
        VALUES (p_bar_id, v_uid, v_uid, nullif(btrim(p_server_name), ''),
                coalesce(p_items, '[]'::jsonb), p_total)
        RETURNING id INTO sale_id;
        outcome := 'full_mode';
        RETURN;
    END IF;

    IF v_role NOT IN ('owner', 'manager') THEN
        RAISE EXCEPTION 'in simplified mode only a manager or owner of bar % creates sales', p_bar_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    SELECT r.server_id, r.outcome, r.matches INTO v_server, outcome, v_matches
    FROM public.resolve_server_name(p_bar_id, p_server_name) AS r;

    IF outcome IN ('mapping', 'display_name') THEN
        INSERT INTO public.sales (bar_id, created_by, server_id, server_name, items, total)
        VALUES (p_bar_id, v_uid, v_server, nullif(btrim(p_server_name), ''),
                coalesce(p_items, '[]'::jsonb), p_total)
        RETURNING id INTO sale_id;
    ELSE
        error_code := CASE outcome
            WHEN 'unknown_name' THEN 'P0002'
            WHEN 'ambiguous_name' THEN 'P0003'
            ELSE '22023'
        END;
        message := CASE outcome
            WHEN 'no_name' THEN
                format('a server name is required to create a sale in simplified mode (bar %s)',
                       p_bar_id)
            WHEN 'unknown_name' THEN
                format('unknown server name "%s" in bar %s', p_server_name, p_bar_id)
            WHEN 'ambiguous_name' THEN
                format('ambiguous server name "%s" in bar %s: %s members match',
                       p_server_name, p_bar_id, v_matches)
            ELSE
                format('server name "%s" in bar %s maps to user %s, not an active member of the bar',
                       p_server_name, p_bar_id, v_server)
        END;
    END IF;

    INSERT INTO public.server_id_resolution_log
        (bar_id, server_name, outcome, server_id, sale_id, created_by)
    VALUES (p_bar_id, p_server_name, outcome, v_server, sale_id, v_uid);
    RETURN;
END;
$$;

COMMENT ON FUNCTION public.try_create_sale_by_server_name(uuid, text, jsonb, numeric)
IS 'venuedb:version=1';
