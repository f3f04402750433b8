-- name: simplified_mode_adoption
-- domain: bar
-- severity: info
-- unit: percent
-- returns: value
-- requires: public.bars
-- no_data: ok, no bars yet: there is no adoption to measure, and nothing to alert on (info only)
-- description: Share of bars in simplified operating mode (seed 002 health check 1, feature adoption rate). The seed's warning "adoption < expected" names no number, so this check has no threshold: compare it with the rollout plan (seed 002 phase 4: 10%, 50%, 100%).
-- runbook: runbooks/bar-observability.md#simplified_mode_adoption
SELECT
    count(CASE WHEN settings ->> 'operatingMode' = 'simplified' THEN 1 END) * 100.0
    / nullif(count(*), 0) AS adoption_rate
FROM public.bars
