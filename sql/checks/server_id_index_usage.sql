-- name: server_id_index_usage
-- domain: bar
-- severity: critical
-- critical: < 1
-- unit: uses index
-- returns: explain
-- index: idx_sales_server_id
-- requires: public.sales.server_id
-- description: The seed's per-server sales query can use idx_sales_server_id, the index the row-level security of a server's own sales relies on (seed 002 health check 3, "Look for Index scan, not Sequential scan"; planned with sequential scans disabled, so a small table still proves the index usable): 1 yes, 0 no.
-- runbook: runbooks/bar-observability.md#server_id_index_usage
SELECT count(*) FROM sales
WHERE server_id = '00000000-0000-4000-8000-000000000000'::uuid
