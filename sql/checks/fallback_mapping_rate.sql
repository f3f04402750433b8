-- name: fallback_mapping_rate
-- domain: bar
-- severity: warning
-- warning: > 10
-- unit: percent
-- returns: value
-- requires: public.migration_server_id_log
-- no_data: ok, the backfill logs every row it fills: an empty log means none fell back
-- description: Share of the rows the server_id backfill examined that are still credited by a fallback (the creator, or nothing) rather than by the typed name: a mapping, a member's display name (backfill v2), or a later correction, which sets fallback_used false (seed 002 warning alert: fallback mappings used > 10% of sales). Over the whole log: the backfill is one-off, not a rate in time.
-- runbook: runbooks/bar-observability.md#fallback_mapping_rate
SELECT
    round(
        100.0 * count(*) FILTER (WHERE l.fallback_used) / nullif(count(*), 0), 2
    )
FROM public.migration_server_id_log AS l
