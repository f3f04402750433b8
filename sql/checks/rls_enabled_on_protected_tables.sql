-- name: rls_enabled_on_protected_tables
-- domain: bar
-- severity: critical
-- critical: > 0
-- unit: tables
-- returns: rows
-- requires: public.server_name_mappings
-- description: Protected tables (seed 002 "RLS Policy Verification", plus booking_confirmation_results) without row-level security.
-- runbook: seed 002 "Security & Data Integrity: RLS Policy Verification"
SELECT t.tablename
FROM pg_catalog.pg_tables AS t
WHERE
    t.schemaname = 'public'
    AND t.tablename IN (
        'sales', 'consignments', 'returns', 'server_name_mappings', 'bars', 'bar_members',
        'booking_confirmation_results'
    )
    AND NOT t.rowsecurity
