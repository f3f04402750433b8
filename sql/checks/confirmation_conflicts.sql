-- name: confirmation_conflicts
-- domain: booking
-- severity: warning
-- warning: > 0
-- unit: confirmations
-- returns: value
-- requires: public.booking_confirmation_results
-- window: 1h
-- description: Confirmations refused in the window because the hold's tables were taken: confirm_hold_assignment_tx records each in booking_confirmation_results with confirmed = false. Seed 003's "allocation overlap errors" (expect 0): the overlaps the constraint refused, where allocation_overlaps counts those that got in. A few are guests racing for one table; a rising count after capacity-overlap is seed 003's rollback criterion "constraint blocks legitimate bookings".
-- runbook: runbooks/alerts.md#confirmation_conflicts
-- Window 1h: seed 003 judges its rollback criteria ("errors > 5% in 1 hour") by the hour.
-- A refused overlap raises 23P01 inside the function, which catches it and records the
-- refusal, so the database itself keeps the count the seed reads from its logs.
SELECT count(*)
FROM public.booking_confirmation_results AS r
WHERE
    NOT r.confirmed
    AND r.checked_at > now() - current_setting('venuedb.lookback')::interval
