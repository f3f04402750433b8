-- name: server_id_coverage_24h
-- domain: bar
-- severity: warning
-- warning: < 98
-- critical: < 95
-- unit: percent
-- returns: value
-- window: 24h
-- requires: public.sales.server_id
-- description: Share of the sales created in the window (seed 002: the last 24 hours) that carry a server_id (seed 002 health check 2 and "Day 1 After Full Rollout": >= 98%; "Post-Migration Validation": < 95% investigate).
-- runbook: runbooks/bar-observability.md#server_id_coverage_24h
SELECT
    round(
        count(CASE WHEN s.server_id IS NOT NULL THEN 1 END) * 100.0 / nullif(count(*), 0), 2
    )
FROM public.sales AS s
WHERE s.created_at > now() - current_setting('venuedb.lookback')::interval
