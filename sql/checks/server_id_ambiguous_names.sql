-- name: server_id_ambiguous_names
-- domain: bar
-- severity: warning
-- warning: > 0
-- unit: rows
-- returns: value
-- requires: public.migration_server_id_log.correction_reason
-- description: Rows the server_id backfill credited by fallback whose typed name several members of the bar share, so neither the backfill nor its correction guessed (correction_reason ambiguous_name_not_corrected, or fallback_reason ambiguous_name_*), still uncorrected. Their sales count for the creator (usually the manager), not for the server: map the name, then rerun the correction.
-- runbook: runbooks/bar-observability.md#server_id_ambiguous_names
SELECT count(*)
FROM public.migration_server_id_log AS l
WHERE
    l.corrected_at IS NULL
    AND (
        l.correction_reason = 'ambiguous_name_not_corrected'
        OR l.fallback_reason LIKE 'ambiguous_name%'
    )
