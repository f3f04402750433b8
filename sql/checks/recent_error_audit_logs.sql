-- name: recent_error_audit_logs
-- domain: bar
-- severity: warning
-- warning: > 0
-- critical: > 10
-- unit: errors
-- returns: value
-- requires: public.audit_logs
-- description: Error-level audit log entries in the last 5 minutes (seed 002 health check 4: zero errors in last 5 minutes).
-- runbook: seed 002 "Root Cause Analysis After Rollback"
SELECT count(*) AS error_count
FROM public.audit_logs
WHERE
    created_at > now() - interval '5 minutes'
    AND level = 'error'
