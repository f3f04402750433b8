-- name: backfill_failures
-- domain: core
-- severity: critical
-- critical: > 0
-- unit: backfills
-- returns: rows
-- requires: venuedb.backfill_progress
-- description: Backfills whose last run failed (venuedb backfill status shows the failing key range). Not a rate in time: a failed run stays failed until it is run again.
-- runbook: runbooks/bar-observability.md#backfill_failures
SELECT
    p.name,
    p.last_key,
    p.errors,
    p.last_error,
    p.failing_range,
    p.updated_at
FROM venuedb.backfill_progress AS p
WHERE p.state = 'failed'
