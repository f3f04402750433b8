-- name: rls_enabled_on_protected_tables
-- domain: bar
-- severity: critical
-- critical: > 0
-- unit: tables
-- returns: rows
-- requires: public.server_name_mappings
-- description: Protected tables (seed 002 "RLS Policy Verification", the bar tables added since, plus booking_confirmation_results) without row-level security. The nearest observable signal of seed 002's "RLS policy violations > 10": see the comment below.
-- runbook: runbooks/bar-observability.md#rls_enabled_on_protected_tables
--
-- Seed 002's critical alert "RLS policy violations > 10" cannot be observed in PostgreSQL:
-- a row a policy's USING hides is silently filtered (no error, no counter), and a
-- WITH CHECK refusal raises 42501 and rolls back with the caller's transaction, leaving
-- only a server log line. What the database can state is that the guard is in place:
-- every protected table has row-level security on (this check); the attacker matrix in
-- tests/test_adversary_bar.py proves the policies themselves.
SELECT t.tablename
FROM pg_catalog.pg_tables AS t
WHERE
    t.schemaname = 'public'
    AND t.tablename IN (
        'sales', 'consignments', 'returns', 'server_name_mappings', 'bars', 'bar_members',
        'migration_server_id_log', 'feature_flags', 'server_id_resolution_log',
        'orphaned_sales', 'booking_confirmation_results'
    )
    AND NOT t.rowsecurity
