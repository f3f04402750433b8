-- name: orphaned_sales_created
-- domain: bar
-- severity: critical
-- critical: > 0
-- unit: sales
-- returns: value
-- window: 1h
-- requires: public.orphaned_sales
-- description: Sales created in the window (seed 002 "Root Cause Analysis": the last hour) without a server_id while their bar was in simplified mode and ENABLE_SWITCHING_MODE was on for it, that still have none (seed 002 critical alert: orphaned sales created > 0, server_id = NULL when should not be). Which rows count: recorded when inserted (trigger sales_orphaned_sale_record, release bar-observability), by any writer, with server_id NULL, in that mode with that flag, at that moment; a sale created before the release, with the flag off (Option A), in full mode, or whose server's user was deleted later (ON DELETE SET NULL) does not count; one whose server a manager has set since no longer counts.
-- runbook: runbooks/bar-observability.md#orphaned_sales_created
SELECT count(*)
FROM public.orphaned_sales AS o
INNER JOIN public.sales AS s ON o.sale_id = s.id
WHERE
    o.created_at > now() - current_setting('venuedb.lookback')::interval
    AND s.server_id IS NULL
