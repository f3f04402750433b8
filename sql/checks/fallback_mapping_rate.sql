-- name: fallback_mapping_rate
-- domain: bar
-- severity: warning
-- warning: > 10
-- unit: percent
-- returns: value
-- requires: public.migration_server_id_log
-- no_data: ok, the backfill logs every row it fills: an empty log means none fell back
-- description: Share of backfilled rows whose server_id came from a fallback rather than a server name mapping (seed 002 warning alert: fallback mappings > 10%).
-- runbook: seed 002 "If validation fails: check server_name_mappings are correctly configured"
SELECT
    round(
        100.0 * count(*) FILTER (WHERE l.fallback_used) / nullif(count(*), 0), 2
    )
FROM public.migration_server_id_log AS l
