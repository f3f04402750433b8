-- name: migration_server_id_failures
-- domain: bar
-- severity: warning
-- warning: > 0
-- unit: rows
-- returns: value
-- requires: public.migration_server_id_log
-- description: Rows the server_id backfill could not resolve (no mapping, no member of that name, no creator left: it left server_id NULL) that still have no server_id, in sales, consignments and returns (seed 002 "Post-Migration Validation" step 4, expected 0 or very low, and the warning "migration_server_id_log shows many failures"). Counted from resolved_server_id, not from the reason text: the seed's fallback_reason LIKE '%failed%' finds only the codes backfill v2 writes (*_resolution_failed), while rows logged by v1 (mode-switching) say *_creator_missing and read 0 there.
-- runbook: runbooks/bar-observability.md#migration_server_id_failures
SELECT count(*)
FROM public.migration_server_id_log AS l
WHERE
    l.resolved_server_id IS NULL
    AND (
        (l.table_name = 'sales' AND EXISTS (
            SELECT 1 FROM public.sales AS t
            WHERE t.id = l.row_id AND t.server_id IS NULL
        ))
        OR (l.table_name = 'consignments' AND EXISTS (
            SELECT 1 FROM public.consignments AS t
            WHERE t.id = l.row_id AND t.server_id IS NULL
        ))
        OR (l.table_name = 'returns' AND EXISTS (
            SELECT 1 FROM public.returns AS t
            WHERE t.id = l.row_id AND t.server_id IS NULL
        ))
    )
