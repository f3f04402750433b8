-- name: server_id_coverage_24h
-- domain: bar
-- severity: warning
-- warning: < 98
-- critical: < 95
-- unit: percent
-- returns: value
-- requires: public.sales.server_id
-- description: Share of sales created in the last 24 hours that carry a server_id (seed 002 health check 2: >= 98% on day 1; < 95% investigate).
-- runbook: seed 002 "Post-Migration Validation" and "Day 1 After Full Rollout"
SELECT
    round(
        count(CASE WHEN s.server_id IS NOT NULL THEN 1 END) * 100.0 / nullif(count(*), 0), 2
    )
FROM public.sales AS s
WHERE s.created_at > now() - interval '24 hours'
