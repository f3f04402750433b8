-- name: simplified_mode_adoption
-- domain: bar
-- severity: info
-- unit: percent
-- returns: value
-- requires: public.bars
-- no_data: ok, no bars yet: there is no adoption to measure, and nothing to alert on (info only)
-- description: Share of bars in simplified operating mode (seed 002 health check 1, feature adoption rate).
-- runbook: seed 002 "Phase 4: Feature Flag Progressive Rollout"
SELECT
    count(CASE WHEN settings ->> 'operatingMode' = 'simplified' THEN 1 END) * 100.0
    / nullif(count(*), 0) AS adoption_rate
FROM public.bars
