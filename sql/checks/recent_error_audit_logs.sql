-- name: recent_error_audit_logs
-- domain: bar
-- severity: warning
-- warning: > 0
-- critical: > 10
-- unit: errors
-- returns: value
-- window: 5m
-- requires: public.audit_logs
-- description: Error-level audit log entries in the window (seed 002 health check 4: zero errors in the last 5 minutes). The nearest signal PostgreSQL has of the seed's application error rate (> 1% rollback), which needs the count of requests, only the application knows.
-- runbook: runbooks/bar-observability.md#recent_error_audit_logs
SELECT count(*) AS error_count
FROM public.audit_logs
WHERE
    created_at > now() - current_setting('venuedb.lookback')::interval
    AND level = 'error'
