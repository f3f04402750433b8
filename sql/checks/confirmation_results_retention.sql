-- name: confirmation_results_retention
-- domain: booking
-- severity: warning
-- warning: > 0
-- unit: rows
-- returns: value
-- requires: public.booking_confirmation_results
-- description: booking_confirmation_results rows older than the 30-day retention (seed 003); run CALL prune_booking_confirmation_results().
-- runbook: runbooks/alerts.md#confirmation_results_retention
-- No window: the 30 days are the retention the seed sets, the age a row must not pass,
-- not a look-back; --window does not change them.
SELECT count(*)
FROM public.booking_confirmation_results AS r
WHERE r.checked_at < now() - interval '30 days'
