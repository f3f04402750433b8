-- function: create_sale_by_server_name
-- version: 2
-- released in: bar_012 (bar-integrity)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Creates a sale for the current user (auth.uid()) and returns its id.
--   * switching mode off for the bar (switching_mode_enabled(p_bar_id) false: the
--     ENABLE_SWITCHING_MODE row of public.feature_flags, owned by the database): the sale
--     is created as before the feature, without server_id (server_name as typed).
--   * simplified mode (bars.settings->>'operatingMode' = 'simplified'): only a manager or
--     owner of the bar; the server is resolved from the typed name, compared case- and
--     space-insensitively, through server_name_mappings, else through the display names
--     of the bar's active members. An unknown name (P0002) or an ambiguous one (P0003)
--     is refused ("error blocking"), as is a name mapped to a user who left the bar.
--   * full mode (or no mode set): any active member; the sale is theirs (server_id =
--     auth.uid()).
-- SECURITY DEFINER with explicit checks, so the sale can be returned even when the
-- caller's select policy would not show it.
-- v1 took a fifth argument, p_switching_enabled boolean DEFAULT TRUE: the caller chose
-- whether switching mode was on, and by default the opposite of the flag's default. v2
-- decides from the database's state; a caller still passing five arguments gets
-- "function does not exist" instead of silently choosing.

CREATE OR REPLACE FUNCTION public.create_sale_by_server_name(
    p_bar_id uuid,
    p_server_name text,
    p_items jsonb,
    p_total numeric
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_uid uuid := auth.uid();
    v_role text;
    v_mode text;
    v_name text := lower(btrim(regexp_replace(coalesce(p_server_name, ''), '\s+', ' ', 'g')));
    v_server uuid;
    v_matches integer;
    v_sale uuid;
BEGIN
    IF v_uid IS NULL THEN
        RAISE EXCEPTION 'create_sale_by_server_name: no authenticated user'
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
        RETURNING id INTO v_sale;
        RETURN v_sale;
    END IF;

    SELECT b.settings ->> 'operatingMode' INTO v_mode FROM public.bars AS b WHERE b.id = p_bar_id;

    IF v_mode = 'simplified' THEN
        IF v_role NOT IN ('owner', 'manager') THEN
            RAISE EXCEPTION 'in simplified mode only a manager or owner of bar % creates sales', p_bar_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF v_name = '' THEN
            RAISE EXCEPTION 'a server name is required to create a sale in simplified mode (bar %)', p_bar_id
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT m.user_id INTO v_server
        FROM public.server_name_mappings AS m
        WHERE m.bar_id = p_bar_id AND m.name_normalized = v_name;
        IF NOT FOUND THEN
            SELECT count(*), min(bm.user_id::text)::uuid INTO v_matches, v_server
            FROM public.bar_members AS bm
            WHERE bm.bar_id = p_bar_id AND bm.is_active
              AND lower(btrim(regexp_replace(coalesce(bm.display_name, ''), '\s+', ' ', 'g'))) = v_name;
            IF v_matches = 0 THEN
                RAISE EXCEPTION 'unknown server name "%" in bar %', p_server_name, p_bar_id
                    USING ERRCODE = 'no_data_found',
                          HINT = 'Map the name to a server in server_name_mappings for this bar.';
            ELSIF v_matches > 1 THEN
                RAISE EXCEPTION 'ambiguous server name "%" in bar %: % members match',
                        p_server_name, p_bar_id, v_matches
                    USING ERRCODE = 'too_many_rows',
                          HINT = 'Map the name to one server in server_name_mappings for this bar.';
            END IF;
        END IF;
        IF NOT public.is_active_bar_member(p_bar_id, v_server) THEN
            RAISE EXCEPTION 'server name "%" in bar % maps to user %, not an active member of the bar',
                    p_server_name, p_bar_id, v_server
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        v_server := v_uid;
    END IF;

    INSERT INTO public.sales (bar_id, created_by, server_id, server_name, items, total)
    VALUES (p_bar_id, v_uid, v_server, nullif(btrim(p_server_name), ''),
            coalesce(p_items, '[]'::jsonb), p_total)
    RETURNING id INTO v_sale;
    RETURN v_sale;
END;
$$;

COMMENT ON FUNCTION public.create_sale_by_server_name(uuid, text, jsonb, numeric)
IS 'venuedb:version=2';
