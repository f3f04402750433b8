-- Rows present once booking_001 is applied: two restaurants, zones, tables, a week of
-- bookings (confirmed ones with assignments and non-overlapping allocations), a hold.
INSERT INTO restaurants (id, name, slug, timezone) VALUES
    ('10000000-0000-4000-8000-000000000001', 'Harbour Kitchen', 'harbour-kitchen', 'Europe/London'),
    ('10000000-0000-4000-8000-000000000002', 'Olive Terrace', 'olive-terrace', 'Europe/Madrid');

INSERT INTO zones (id, restaurant_id, name)
SELECT ('20000000-0000-4000-8000-00000000000' || (r * 2 + z - 2))::uuid,
       ('10000000-0000-4000-8000-00000000000' || r)::uuid,
       CASE z WHEN 1 THEN 'Main floor' ELSE 'Terrace' END
FROM generate_series(1, 2) AS r, generate_series(1, 2) AS z;

INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity,
                             min_party_size, max_party_size, mobility)
SELECT ('30000000-0000-4000-8000-0000000000' || lpad((r * 10 + t)::text, 2, '0'))::uuid,
       ('10000000-0000-4000-8000-00000000000' || r)::uuid,
       ('20000000-0000-4000-8000-00000000000' || (r * 2 + (t % 2) - 1))::uuid,
       'T' || t,
       (ARRAY[2, 2, 4, 4, 6, 8])[1 + t % 6],
       1,
       (ARRAY[2, 2, 4, 4, 6, 8])[1 + t % 6],
       CASE WHEN t % 5 = 0 THEN 'fixed' ELSE 'movable' END
FROM generate_series(1, 2) AS r, generate_series(1, 6) AS t;

INSERT INTO bookings (id, restaurant_id, customer_name, customer_email, party_size,
                      booking_date, start_at, end_at, status, source)
SELECT ('40000000-0000-4000-8000-0000000000' || lpad(n::text, 2, '0'))::uuid,
       ('10000000-0000-4000-8000-00000000000' || (1 + n % 2))::uuid,
       'Guest ' || n, format('guest%s@example.com', n),
       1 + n % 7,
       (date '2030-03-01' + (n / 4)),
       (date '2030-03-01' + (n / 4)) + time '18:00' + make_interval(hours => n % 4),
       (date '2030-03-01' + (n / 4)) + time '20:00' + make_interval(hours => n % 4),
       (ARRAY['confirmed', 'pending', 'confirmed', 'cancelled', 'completed'])[1 + n % 5],
       'web'
FROM generate_series(1, 30) AS n;

-- One table per confirmed or completed booking: each booking its own table, so no overlap.
INSERT INTO booking_table_assignments (booking_id, table_id)
SELECT b.id, t.id
FROM (SELECT id, restaurant_id, row_number() OVER (PARTITION BY restaurant_id ORDER BY id) AS k
      FROM bookings WHERE status IN ('confirmed', 'completed')) AS b
JOIN (SELECT id, restaurant_id, row_number() OVER (PARTITION BY restaurant_id ORDER BY id) AS k
      FROM table_inventory) AS t
  ON t.restaurant_id = b.restaurant_id AND t.k = 1 + (b.k - 1) % 6;

INSERT INTO allocations (restaurant_id, booking_id, resource_type, resource_id, "window")
SELECT b.restaurant_id, b.id, 'table', a.table_id, tstzrange(b.start_at, b.end_at, '[)')
FROM booking_table_assignments a JOIN bookings b ON b.id = a.booking_id;

-- A maintenance block kept as a shadow allocation (ignored by the exclusion constraint).
INSERT INTO allocations (restaurant_id, resource_type, resource_id, "window", shadow, is_maintenance)
VALUES ('10000000-0000-4000-8000-000000000001', 'table', '30000000-0000-4000-8000-000000000011',
        tstzrange('2030-03-01 18:00+00', '2030-03-01 23:00+00'), true, true);

-- A pending booking confirmed from a hold through confirm_hold_assignment_tx.
INSERT INTO bookings (id, restaurant_id, customer_name, party_size, booking_date, start_at, end_at)
VALUES ('40000000-0000-4000-8000-000000000099', '10000000-0000-4000-8000-000000000001',
        'Hold Guest', 6, '2030-04-01', '2030-04-01 19:00+00', '2030-04-01 21:00+00');
INSERT INTO table_holds (id, restaurant_id, booking_id, start_at, end_at, expires_at)
VALUES ('50000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001',
        '40000000-0000-4000-8000-000000000099', '2030-04-01 19:00+00', '2030-04-01 21:00+00',
        now() + interval '10 minutes');
INSERT INTO table_hold_members (hold_id, table_id) VALUES
    ('50000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-000000000012'),
    ('50000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-000000000013');
SELECT count(*) FROM confirm_hold_assignment_tx(
    '50000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-000000000099');

-- An open hold, still waiting for its confirmation.
INSERT INTO table_holds (id, restaurant_id, start_at, end_at, expires_at)
VALUES ('50000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000002',
        '2030-04-02 19:00+00', '2030-04-02 21:00+00', now() + interval '10 minutes');
INSERT INTO table_hold_members (hold_id, table_id)
VALUES ('50000000-0000-4000-8000-000000000002', '30000000-0000-4000-8000-000000000021');
