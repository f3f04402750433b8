-- name: orphaned_server_ids
-- domain: bar
-- severity: critical
-- critical: > 0
-- unit: sales
-- returns: value
-- requires: public.sales.server_id
-- description: Sales whose server_id references no auth user (seed 002 "Post-Migration Validation" and "Day 1": expected 0 orphaned FKs). Every sale, not a window: the foreign key should make it impossible.
-- runbook: runbooks/bar-observability.md#orphaned_server_ids
SELECT count(*)
FROM public.sales AS s
WHERE
    s.server_id IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM auth.users AS u
        WHERE u.id = s.server_id
    )
