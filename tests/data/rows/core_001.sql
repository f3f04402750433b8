-- Rows present once core_001 is applied: users and a few observability events.
INSERT INTO auth.users (id, email)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, format('user%s@example.com', n)
FROM generate_series(1, 40) AS n;

INSERT INTO public.observability_events (source, event_type, severity, context, created_at)
SELECT 'auto_assign', 'auto_assign.summary', 'info',
       jsonb_build_object(
           'status', CASE WHEN n % 12 = 0 THEN 'no_tables' ELSE 'confirmed' END,
           'latency_ms', 900 + n
       ),
       now() - make_interval(hours => n)
FROM generate_series(1, 24) AS n;
