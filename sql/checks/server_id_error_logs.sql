-- name: server_id_error_logs
-- domain: bar
-- severity: warning
-- warning: > 100
-- unit: errors
-- returns: value
-- window: 1h
-- requires: public.audit_logs
-- description: Audit log entries of the window (seed 002: the last hour) whose error message names the server id, as serverId (the app's spelling in the seed's warning alert "Error logs contain serverId > 100 in last hour") or server_id (the seed's "Error Tracking" query), case-insensitively.
-- runbook: runbooks/bar-observability.md#server_id_error_logs
SELECT count(*)
FROM public.audit_logs AS a
WHERE
    a.created_at > now() - current_setting('venuedb.lookback')::interval
    AND a.error_message ~* 'server_?id'
