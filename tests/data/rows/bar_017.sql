-- Rows present once bar_017 is applied (the bar head before bar-distribution-keys): what
-- the bar-observability tables, the server_id backfill's log and the application hold by
-- then, so bar_018 and bar_019 change the keys of tables with rows in them.
INSERT INTO server_name_mappings (bar_id, user_id, server_name, created_by)
SELECT bm.bar_id, bm.user_id, bm.display_name, bm.user_id
FROM bar_members AS bm
WHERE bm.role = 'server';

UPDATE sales AS s
SET server_id = m.user_id
FROM server_name_mappings AS m
WHERE m.bar_id = s.bar_id AND m.server_name = s.server_name;

INSERT INTO migration_server_id_log
    (table_name, row_id, bar_id, server_name, resolved_server_id, fallback_used, fallback_reason)
SELECT 'sales', s.id, s.bar_id, s.server_name, coalesce(s.server_id, s.created_by),
       s.server_id IS NULL,
       CASE WHEN s.server_id IS NULL THEN 'no_server_name_used_creator' END
FROM sales AS s;

INSERT INTO server_id_resolution_log (bar_id, server_name, outcome, server_id, sale_id, created_by)
SELECT s.bar_id, s.server_name,
       CASE WHEN s.server_id IS NULL THEN 'no_name' ELSE 'mapping' END,
       s.server_id, s.id, s.created_by
FROM sales AS s;

INSERT INTO orphaned_sales (sale_id, bar_id, created_by, server_name, created_at)
SELECT s.id, s.bar_id, s.created_by, s.server_name, s.created_at
FROM sales AS s
WHERE s.server_id IS NULL;

-- Events outside any bar: audit_logs.bar_id is NULL for them.
INSERT INTO audit_logs (user_id, event, level, error_type, error_message)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       'auth.login', CASE WHEN n % 2 = 0 THEN 'error' ELSE 'info' END,
       CASE WHEN n % 2 = 0 THEN 'auth' END, CASE WHEN n % 2 = 0 THEN 'wrong password' END
FROM generate_series(1, 4) AS n;
