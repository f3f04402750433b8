-- name: operating_mode_index_usage
-- domain: bar
-- severity: critical
-- critical: < 1
-- unit: uses index
-- returns: explain
-- index: idx_bars_operating_mode
-- requires: public.server_name_mappings
-- description: The seed's operatingMode query can use idx_bars_operating_mode (planned with sequential scans disabled, so a small table still proves the index usable): 1 yes, 0 no (seed 002 "Post-Migration Validation: Verify index performance").
-- runbook: runbooks/bar-observability.md#operating_mode_index_usage
SELECT count(*) FROM bars
WHERE settings ->> 'operatingMode' = 'simplified'
