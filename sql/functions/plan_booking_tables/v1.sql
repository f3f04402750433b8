-- function: plan_booking_tables
-- version: 1
-- released in: booking_004 (table-combinations)
-- immutable: a released version is never edited; a new version is a new file.
--
-- Seed 000's combination planner: the tables a booking could sit at, best first. It
-- reads only (STABLE); auto_assign_booking turns the best candidate into a hold and
-- confirms it.
--
-- Free table: active, of the booking's restaurant (and of options.zone_id when given),
-- with no non-shadow 'table' allocation of that restaurant whose window overlaps
-- tstzrange(start_at, end_at, '[)') (scoped like allocations_no_overlap and
-- confirm_hold_assignment_tx v12; a table belongs to one restaurant, so this is the
-- baseline's rule too). The booking's own allocations, if any, block as well.
--
-- Single table: fits when capacity >= party_size and party_size is between
-- min_party_size and coalesce(max_party_size, capacity). Fixed tables may be singles.
--
-- Combination: 2..k_max free MOVABLE tables of ONE zone whose capacities sum to at
-- least party_size (per-table party bounds do not apply to a combination), such that
--   * no table of the set alone covers the party (such a table would be the only one
--     needed);
--   * with require_adjacency, the set is 'connected' in table_adjacencies, or for
--     adjacency_mode 'neighbors' one table of it (the anchor) is adjacent to every
--     other table;
--   * no table can be dropped with the rest still covering the party and still
--     satisfying the adjacency rule (no redundant table).
--
-- Ranking (rank 1 is the best):
--   1. every single table that fits, before any combination ("prefers a single
--      table"); among singles least waste (capacity - party_size), then table_number,
--      then id;
--   2. then combinations: fewer tables first, then least waste (total_capacity -
--      party_size), then enumeration order (zone_id, then the tables' ids).
-- At most options.limit rows. table_ids of a single is one id; of a combination the
-- ids ascending, except in 'neighbors' mode where the anchor (the one with the
-- smallest id) comes first and the others follow ascending.
--
-- Enumeration: the free movable tables of each zone with capacity < party_size, in a
-- fixed order (zone_id, id). Sets grow one table at a time, level by level (all pairs,
-- then all triples, ...), each set generated once: without adjacency a set only grows
-- with a table of a larger id; with adjacency it grows with a neighbour and a set is
-- kept only when the table added is the largest whose removal leaves a valid set.
-- A set that already covers the party is never grown (more tables only add waste).
-- `evaluated` counts the distinct sets of 2+ tables examined (under adjacency, only
-- sets that satisfy it); enumeration stops at max_combination_evaluations, and after a
-- level once the singles and combinations found fill options.limit (later levels
-- could only rank lower). No enumeration when the singles alone fill the limit.
-- Every returned row carries the same `evaluated`; it is also published for the
-- caller's transaction as the setting venuedb.plan_evaluated (read it with
-- current_setting('venuedb.plan_evaluated', true)), so a caller learns it even when
-- no row comes back.
--
-- Options (jsonb, all optional, defaults in brackets), after seed 000's flags:
--   combination_planner bool [true]         FEATURE_COMBINATION_PLANNER
--   merges_enabled bool [true]              FEATURE_ALLOCATOR_MERGES_ENABLED
--   k_max int [3]                           FEATURE_ALLOCATOR_K_MAX (>= 1)
--   max_combination_evaluations int [1000]  FEATURE_SELECTOR_MAX_COMBINATION_EVALUATIONS
--   require_adjacency bool [false]          FEATURE_ALLOCATOR_REQUIRE_ADJACENCY
--   adjacency_mode text ['connected']       'connected' | 'neighbors'
--   zone_id uuid [null: any zone]
--   limit int [5]                           candidates returned (>= 1)
-- combination_planner or merges_enabled false, or k_max 1: single tables only.

CREATE OR REPLACE FUNCTION public.plan_booking_tables(
    p_booking_id uuid,
    p_options jsonb DEFAULT '{}'::jsonb
)
RETURNS TABLE (
    rank integer,
    zone_id uuid,
    table_ids uuid[],
    total_capacity integer,
    is_combination boolean,
    evaluated integer
)
LANGUAGE plpgsql
STABLE
SET search_path = public
AS $$
DECLARE
    v_opts constant jsonb := coalesce(p_options, '{}'::jsonb);
    v_planner boolean;
    v_merges boolean;
    v_k_max integer;
    v_max_evals integer;
    v_require_adj boolean;
    v_mode text;
    v_zone uuid;
    v_limit integer;
    v_booking bookings%ROWTYPE;
    v_party integer;
    v_window tstzrange;
    v_busy uuid[];
    -- single tables that fit, best first
    v_single_ids uuid[];
    v_single_zones uuid[];
    v_single_caps integer[];
    v_singles integer;
    v_need integer;
    -- the combination pool, ordered by (zone_id, id); sets hold positions in it
    v_ids uuid[];
    v_caps integer[];
    v_zones uuid[];
    v_zone_first integer[];
    v_zone_last integer[];
    v_n integer;
    v_adj boolean[];
    v_a integer;
    v_b integer;
    -- level-by-level enumeration; a level's sets are flattened with stride v_k
    v_k integer := 1;
    v_front integer[];
    v_front_sum integer[];
    v_front_count integer;
    v_next integer[];
    v_next_sum integer[];
    v_next_count integer;
    v_set integer[];
    v_new integer[];
    v_sub integer[];
    v_sum integer;
    v_w integer;
    v_from integer;
    v_f integer;
    v_i integer;
    v_j integer;
    v_x integer;
    v_pos integer;
    v_ok boolean;
    v_all boolean;
    v_minimal boolean;
    v_p boolean;
    v_anchor integer;
    v_star integer;
    v_seen boolean[];
    v_reached integer;
    v_grew boolean;
    v_evaluated integer := 0;
    v_stop boolean := false;
    -- combinations found: positions flattened (anchor first), with start offsets
    v_cand_tables integer[] := '{}';
    v_cand_start integer[] := '{}';
    v_cand_size integer[] := '{}';
    v_cand_sum integer[] := '{}';
    v_cand_count integer := 0;
    v_cand_len integer := 0;
    v_row record;
    v_rank integer := 0;
BEGIN
    v_planner := coalesce((v_opts ->> 'combination_planner')::boolean, true);
    v_merges := coalesce((v_opts ->> 'merges_enabled')::boolean, true);
    v_k_max := coalesce((v_opts ->> 'k_max')::integer, 3);
    v_max_evals := coalesce((v_opts ->> 'max_combination_evaluations')::integer, 1000);
    v_require_adj := coalesce((v_opts ->> 'require_adjacency')::boolean, false);
    v_mode := coalesce(v_opts ->> 'adjacency_mode', 'connected');
    v_zone := (v_opts ->> 'zone_id')::uuid;
    v_limit := coalesce((v_opts ->> 'limit')::integer, 5);
    IF v_k_max < 1 THEN
        RAISE EXCEPTION 'plan_booking_tables: k_max must be at least 1, not %', v_k_max
            USING ERRCODE = '22023';
    END IF;
    IF v_max_evals < 0 THEN
        RAISE EXCEPTION 'plan_booking_tables: max_combination_evaluations must not be negative'
            USING ERRCODE = '22023';
    END IF;
    IF v_limit < 1 THEN
        RAISE EXCEPTION 'plan_booking_tables: limit must be at least 1, not %', v_limit
            USING ERRCODE = '22023';
    END IF;
    IF v_mode NOT IN ('connected', 'neighbors') THEN
        RAISE EXCEPTION 'plan_booking_tables: adjacency_mode must be connected or neighbors, not %',
            v_mode USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_booking FROM bookings b WHERE b.id = p_booking_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking % not found', p_booking_id USING ERRCODE = 'P0002';
    END IF;
    v_party := v_booking.party_size;
    v_window := tstzrange(v_booking.start_at, v_booking.end_at, '[)');

    -- Tables taken during the booking's window (one scan of the overlap index).
    SELECT coalesce(array_agg(DISTINCT al.resource_id), '{}') INTO v_busy
    FROM allocations al
    WHERE al.restaurant_id = v_booking.restaurant_id
      AND al.resource_type = 'table'
      AND NOT al.shadow
      AND al."window" && v_window;

    -- 1. Single tables that fit, best first.
    SELECT coalesce(array_agg(s.id ORDER BY s.ord), '{}'),
           coalesce(array_agg(s.zone ORDER BY s.ord), '{}'),
           coalesce(array_agg(s.capacity ORDER BY s.ord), '{}')
    INTO v_single_ids, v_single_zones, v_single_caps
    FROM (
        SELECT t.id, t.zone_id AS zone, t.capacity,
               row_number() OVER (ORDER BY t.capacity - v_party, t.table_number, t.id) AS ord
        FROM table_inventory t
        WHERE t.restaurant_id = v_booking.restaurant_id
          AND t.active
          AND (v_zone IS NULL OR t.zone_id = v_zone)
          AND t.capacity >= v_party
          AND v_party BETWEEN t.min_party_size AND coalesce(t.max_party_size, t.capacity)
          AND t.id <> ALL(v_busy)
        ORDER BY t.capacity - v_party, t.table_number, t.id
        LIMIT v_limit
    ) s;
    v_singles := cardinality(v_single_ids);
    v_need := v_limit - v_singles;

    -- 2. Combinations, only when singles leave room in the limit.
    IF v_planner AND v_merges AND v_k_max >= 2 AND v_max_evals > 0 AND v_need > 0 THEN
        SELECT coalesce(array_agg(t.id ORDER BY t.zone_id, t.id), '{}'),
               coalesce(array_agg(t.capacity ORDER BY t.zone_id, t.id), '{}'),
               coalesce(array_agg(t.zone_id ORDER BY t.zone_id, t.id), '{}')
        INTO v_ids, v_caps, v_zones
        FROM table_inventory t
        WHERE t.restaurant_id = v_booking.restaurant_id
          AND t.active
          AND t.mobility = 'movable'
          AND t.capacity < v_party
          AND (v_zone IS NULL OR t.zone_id = v_zone)
          AND t.id <> ALL(v_busy);
        v_n := cardinality(v_ids);
    ELSE
        v_n := 0;
    END IF;

    IF v_n >= 2 THEN
        -- Each position's zone runs from v_zone_first to v_zone_last.
        v_zone_first := array_fill(0, ARRAY[v_n]);
        v_zone_last := array_fill(0, ARRAY[v_n]);
        FOR v_i IN 1..v_n LOOP
            IF v_i > 1 AND v_zones[v_i] = v_zones[v_i - 1] THEN
                v_zone_first[v_i] := v_zone_first[v_i - 1];
            ELSE
                v_zone_first[v_i] := v_i;
            END IF;
        END LOOP;
        FOR v_i IN REVERSE v_n..1 LOOP
            IF v_i < v_n AND v_zones[v_i] = v_zones[v_i + 1] THEN
                v_zone_last[v_i] := v_zone_last[v_i + 1];
            ELSE
                v_zone_last[v_i] := v_i;
            END IF;
        END LOOP;

        IF v_require_adj THEN
            -- Adjacency matrix over pool positions, both directions of each pair.
            v_adj := array_fill(false, ARRAY[v_n * v_n]);
            FOR v_a, v_b IN
                SELECT pa.pos::integer, pb.pos::integer
                FROM table_adjacencies ta
                JOIN unnest(v_ids) WITH ORDINALITY AS pa (id, pos) ON pa.id = ta.table_a
                JOIN unnest(v_ids) WITH ORDINALITY AS pb (id, pos) ON pb.id = ta.table_b
                WHERE ta.restaurant_id = v_booking.restaurant_id
            LOOP
                v_adj[(v_a - 1) * v_n + v_b] := true;
                v_adj[(v_b - 1) * v_n + v_a] := true;
            END LOOP;
        END IF;

        -- Level 1: every pool table (all are below the party: none covers alone).
        v_front := '{}';
        FOR v_i IN 1..v_n LOOP
            v_front[v_i] := v_i;
        END LOOP;
        v_front_sum := v_caps;
        v_front_count := v_n;

        WHILE v_k < v_k_max AND v_front_count > 0 LOOP
            v_k := v_k + 1;
            v_next := '{}';
            v_next_sum := '{}';
            v_next_count := 0;
            <<parents>>
            FOR v_f IN 1..v_front_count LOOP
                v_set := v_front[(v_f - 1) * (v_k - 1) + 1:v_f * (v_k - 1)];
                IF v_require_adj THEN
                    v_from := v_zone_first[v_set[1]];
                ELSE
                    v_from := v_set[v_k - 1] + 1;
                END IF;
                FOR v_w IN v_from..v_zone_last[v_set[1]] LOOP
                    v_sum := v_front_sum[v_f] + v_caps[v_w];
                    v_minimal := true;
                    v_anchor := 1;
                    IF NOT v_require_adj THEN
                        v_new := v_set || v_w;
                        IF v_sum >= v_party THEN
                            FOR v_i IN 1..v_k LOOP
                                IF v_sum - v_caps[v_new[v_i]] >= v_party THEN
                                    v_minimal := false;
                                    EXIT;
                                END IF;
                            END LOOP;
                        END IF;
                    ELSE
                        CONTINUE WHEN v_w = ANY(v_set);
                        -- The new table must touch the set (needed in both modes).
                        v_ok := false;
                        FOR v_i IN 1..v_k - 1 LOOP
                            IF v_adj[(v_set[v_i] - 1) * v_n + v_w] THEN
                                v_ok := true;
                                EXIT;
                            END IF;
                        END LOOP;
                        CONTINUE WHEN NOT v_ok;
                        v_pos := 1;
                        WHILE v_pos < v_k AND v_set[v_pos] < v_w LOOP
                            v_pos := v_pos + 1;
                        END LOOP;
                        v_new := v_set[1:v_pos - 1] || v_w || v_set[v_pos:v_k - 1];
                        -- v_x = 0: the rule on the new set itself ('neighbors' only: a
                        -- connected set plus a neighbour is connected). v_x > 0: the rule
                        -- on the set without its v_x-th table, needed when that table has
                        -- a larger position than v_w (then this is not the set's canonical
                        -- parent) or when dropping it keeps the party covered (redundancy).
                        FOR v_x IN 0..v_k LOOP
                            IF v_x = 0 THEN
                                CONTINUE WHEN v_mode = 'connected';
                                v_sub := v_new;
                            ELSE
                                CONTINUE WHEN v_new[v_x] = v_w;
                                CONTINUE WHEN v_new[v_x] < v_w
                                    AND v_sum - v_caps[v_new[v_x]] < v_party;
                                v_sub := v_new[1:v_x - 1] || v_new[v_x + 1:v_k];
                            END IF;
                            v_star := 1;
                            IF cardinality(v_sub) = 1 THEN
                                v_p := true;
                            ELSIF v_mode = 'connected' THEN
                                v_seen := array_fill(false, ARRAY[cardinality(v_sub)]);
                                v_seen[1] := true;
                                v_reached := 1;
                                v_grew := true;
                                WHILE v_grew LOOP
                                    v_grew := false;
                                    FOR v_i IN 1..cardinality(v_sub) LOOP
                                        CONTINUE WHEN NOT v_seen[v_i];
                                        FOR v_j IN 1..cardinality(v_sub) LOOP
                                            IF NOT v_seen[v_j]
                                               AND v_adj[(v_sub[v_i] - 1) * v_n + v_sub[v_j]] THEN
                                                v_seen[v_j] := true;
                                                v_reached := v_reached + 1;
                                                v_grew := true;
                                            END IF;
                                        END LOOP;
                                    END LOOP;
                                END LOOP;
                                v_p := v_reached = cardinality(v_sub);
                            ELSE
                                v_p := false;
                                FOR v_i IN 1..cardinality(v_sub) LOOP
                                    v_all := true;
                                    FOR v_j IN 1..cardinality(v_sub) LOOP
                                        IF v_j <> v_i
                                           AND NOT v_adj[(v_sub[v_i] - 1) * v_n + v_sub[v_j]] THEN
                                            v_all := false;
                                            EXIT;
                                        END IF;
                                    END LOOP;
                                    IF v_all THEN
                                        v_p := true;
                                        v_star := v_i;
                                        EXIT;
                                    END IF;
                                END LOOP;
                            END IF;
                            IF v_x = 0 THEN
                                IF NOT v_p THEN
                                    v_ok := false;
                                    EXIT;
                                END IF;
                                v_anchor := v_star;
                            ELSIF v_p THEN
                                IF v_new[v_x] > v_w THEN
                                    v_ok := false;  -- generated from another parent
                                    EXIT;
                                END IF;
                                v_minimal := false;
                            END IF;
                        END LOOP;
                        CONTINUE WHEN NOT v_ok;
                    END IF;

                    IF v_evaluated >= v_max_evals THEN
                        v_stop := true;
                        EXIT parents;
                    END IF;
                    v_evaluated := v_evaluated + 1;
                    IF v_sum >= v_party THEN
                        IF v_minimal THEN
                            v_cand_count := v_cand_count + 1;
                            v_cand_start[v_cand_count] := v_cand_len;
                            v_cand_size[v_cand_count] := v_k;
                            v_cand_sum[v_cand_count] := v_sum;
                            v_cand_len := v_cand_len + 1;
                            v_cand_tables[v_cand_len] := v_new[v_anchor];
                            FOR v_i IN 1..v_k LOOP
                                CONTINUE WHEN v_i = v_anchor;
                                v_cand_len := v_cand_len + 1;
                                v_cand_tables[v_cand_len] := v_new[v_i];
                            END LOOP;
                        END IF;
                    ELSIF v_k < v_k_max THEN
                        FOR v_i IN 1..v_k LOOP
                            v_next[v_next_count * v_k + v_i] := v_new[v_i];
                        END LOOP;
                        v_next_count := v_next_count + 1;
                        v_next_sum[v_next_count] := v_sum;
                    END IF;
                END LOOP;
            END LOOP;
            EXIT WHEN v_stop OR v_cand_count >= v_need;
            v_front := v_next;
            v_front_sum := v_next_sum;
            v_front_count := v_next_count;
        END LOOP;
    END IF;

    PERFORM set_config('venuedb.plan_evaluated', v_evaluated::text, true);

    FOR v_i IN 1..v_singles LOOP
        v_rank := v_rank + 1;
        rank := v_rank;
        zone_id := v_single_zones[v_i];
        table_ids := ARRAY[v_single_ids[v_i]];
        total_capacity := v_single_caps[v_i];
        is_combination := false;
        evaluated := v_evaluated;
        RETURN NEXT;
    END LOOP;

    IF v_cand_count > 0 AND v_need > 0 THEN
        FOR v_row IN
            SELECT c.ord::integer AS ord
            FROM unnest(v_cand_size, v_cand_sum) WITH ORDINALITY AS c (size, total, ord)
            ORDER BY c.size, c.total, c.ord
            LIMIT v_need
        LOOP
            v_rank := v_rank + 1;
            rank := v_rank;
            zone_id := v_zones[v_cand_tables[v_cand_start[v_row.ord] + 1]];
            table_ids := '{}';
            FOR v_i IN 1..v_cand_size[v_row.ord] LOOP
                table_ids[v_i] := v_ids[v_cand_tables[v_cand_start[v_row.ord] + v_i]];
            END LOOP;
            total_capacity := v_cand_sum[v_row.ord];
            is_combination := true;
            evaluated := v_evaluated;
            RETURN NEXT;
        END LOOP;
    END IF;
END;
$$;

COMMENT ON FUNCTION public.plan_booking_tables(uuid, jsonb) IS 'venuedb:version=1';
