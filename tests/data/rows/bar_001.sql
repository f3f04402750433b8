-- Rows present once bar_001 is applied: two bars, members, a month of sales (most with a
-- server name typed on the till), consignments, returns and audit logs.
INSERT INTO bars (id, name, owner_id, settings)
VALUES
    ('60000000-0000-4000-8000-000000000001', 'The Copper Tap', '00000000-0000-4000-8000-000000000001',
     '{"currency": "EUR"}'),
    ('60000000-0000-4000-8000-000000000002', 'Night Owl', '00000000-0000-4000-8000-000000000002',
     '{"currency": "EUR", "operatingMode": "full"}');

INSERT INTO bar_members (bar_id, user_id, role, display_name)
SELECT ('60000000-0000-4000-8000-00000000000' || (1 + n % 2))::uuid,
       ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       CASE WHEN n <= 2 THEN 'owner' WHEN n <= 4 THEN 'manager' ELSE 'server' END,
       'Staff ' || n
FROM generate_series(1, 12) AS n;

INSERT INTO sales (bar_id, created_by, server_name, items, total, payment_method, created_at)
SELECT ('60000000-0000-4000-8000-00000000000' || (1 + n % 2))::uuid,
       ('00000000-0000-4000-8000-' || lpad((3 + n % 2)::text, 12, '0'))::uuid,
       CASE WHEN n % 10 = 0 THEN NULL ELSE 'Staff ' || (5 + n % 8) END,
       jsonb_build_array(jsonb_build_object('product', 'Beer', 'qty', 1 + n % 3)),
       (4.5 * (1 + n % 3))::numeric(12, 2),
       (ARRAY['cash', 'card'])[1 + n % 2],
       now() - make_interval(hours => n)
FROM generate_series(1, 60) AS n;

INSERT INTO consignments (bar_id, created_by, server_name, product_name, quantity, amount)
SELECT ('60000000-0000-4000-8000-00000000000' || (1 + n % 2))::uuid,
       ('00000000-0000-4000-8000-' || lpad((3 + n % 2)::text, 12, '0'))::uuid,
       'Staff ' || (5 + n % 8), 'Bottle of wine', 1, 18.00
FROM generate_series(1, 8) AS n;

INSERT INTO returns (bar_id, sale_id, created_by, server_name, amount, reason)
SELECT s.bar_id, s.id, s.created_by, s.server_name, s.total, 'spilled'
FROM sales AS s
ORDER BY s.created_at
LIMIT 5;

INSERT INTO audit_logs (bar_id, user_id, event, level, error_type, error_message, created_at)
SELECT ('60000000-0000-4000-8000-00000000000' || (1 + n % 2))::uuid,
       ('00000000-0000-4000-8000-' || lpad((3 + n % 2)::text, 12, '0'))::uuid,
       'sale.create',
       CASE WHEN n % 6 = 0 THEN 'error' ELSE 'info' END,
       CASE WHEN n % 6 = 0 THEN 'validation' END,
       CASE WHEN n % 6 = 0 THEN 'unknown server name' END,
       now() - make_interval(mins => n * 17)
FROM generate_series(1, 20) AS n;
