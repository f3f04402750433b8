-- name: server_id_resolution_error_rate
-- domain: bar
-- severity: critical
-- critical: > 5
-- unit: percent
-- returns: value
-- window: 5m
-- requires: public.server_id_resolution_log
-- description: Share of the server name resolutions attempted in the window (simplified mode, ENABLE_SWITCHING_MODE on) that failed: no name, an unknown or ambiguous name, a name mapped to someone who is not a member (seed 002 critical alert: server_id resolution error rate > 5% in the last 5 minutes). Read from server_id_resolution_log, which try_create_sale_by_server_name writes for every attempt. No data: no attempt in the window, or the till still calls create_sale_by_server_name, whose failures raise and roll back unrecorded (see the runbook).
-- runbook: runbooks/bar-observability.md#server_id_resolution_error_rate
--
-- create_sale_by_server_name keeps raising on a name it cannot resolve (callers rely on it
-- to block the sale), and a raise rolls back what its transaction wrote: PostgreSQL has
-- no autonomous transaction, so those failures cannot be counted here. Its successes are
-- sales like any other; they are left out of the denominator too, so the rate is never
-- diluted by attempts whose failures are invisible.
SELECT
    round(
        100.0 * count(*) FILTER (WHERE r.outcome NOT IN ('mapping', 'display_name'))
        / nullif(count(*), 0),
        2
    )
FROM public.server_id_resolution_log AS r
WHERE r.created_at > now() - current_setting('venuedb.lookback')::interval
