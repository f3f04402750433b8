"""A deterministic synthetic booking data set for the benchmarks, generated in bulk SQL.

    load(conn, scale=1.0, seed=1, anchor=None) -> {table: rows written}

At scale 1.0: 200 restaurants of 2-3 zones and 20-60 tables of mixed capacities (tables of
a zone stand in rows of 3-6, neighbours side by side and front to back), and 1,000,000
bookings spread over about 60 days around `anchor` (a tenth of the days in the past), each
with one booking_table_assignments row and one 'table' allocation over the booking's
[start_at, end_at). Scale multiplies the restaurants and the bookings (scale 0.001: one
restaurant, 1,000 bookings).

Every table has three seatings a day, each filled or not (busier at weekends), in local
time windows that never overlap, so no two allocations of a table overlap:

    lunch     starts 11:30-12:30, ends by 14:30
    dinner 1  starts 17:30-18:00, ends by 20:00
    dinner 2  starts 20:00-21:00, ends by 23:00

Local 14:30-17:30 (and before 11:30, after 23:00) is never booked: benchmarks put their
own pending bookings there (see FREE_WINDOW). Past bookings are 'completed', today's
lunches 'checked_in', the rest 'confirmed'.

Deterministic: ids are md5(seed:kind:n) uuids and every choice is a hash of (seed, n)
(hashint8extended), never random() or now(); timestamps are relative to `anchor` (default
today, UTC). Only the baseline columns (revision booking_001) are written, so the same
load runs on a database at booking-baseline and on one migrated to all heads; neighbours
go to table_adjacencies only where that table exists (table-combinations onwards), and
the assignments' restaurant_id only where that column exists (booking_018 onwards).

The rows are bulk-inserted with session_replication_role = replica (the row triggers, FK
checks included, are skipped; exclusion constraints still apply), and they are rows the
triggers would accept: every confirmed booking has its assignment, every assignment and
allocation points at an existing booking and table of the same restaurant.
"""

from __future__ import annotations

import datetime as dt
import math

import psycopg

from toolkit.server.connection import scalar

# The same names as `venuedb demo`'s sample, so both data sets read alike.
from toolkit.venue.sample_data import FIRST_NAMES, LAST_NAMES, NAMES, TIMEZONES

# Restaurants at scale 1.0; 8,000 tables or so, each seated ~2 times a day.
RESTAURANTS = 200
BOOKINGS = 1_000_000
# Local wall-clock window that the generator never books (for benchmarks' own bookings).
FREE_WINDOW = (dt.time(14, 30), dt.time(17, 30))
# Mean share of the three seatings filled (see FILL): sizes the number of days generated.
MEAN_FILL = 2.0
PAST_SHARE = 0.1

# Zone 0 is always Main; the others come from this list (first two letters are distinct,
# they prefix the table numbers).
OTHER_ZONES = ("Terrace", "Bar", "Garden", "Mezzanine")
# Percent of tables seated per seating, Monday first (ISODOW 1..7): weekends are busier.
FILL = {
    0: (50, 50, 55, 60, 65, 85, 75),  # lunch
    1: (70, 75, 80, 85, 95, 98, 80),  # dinner 1
    2: (40, 45, 50, 60, 80, 90, 50),  # dinner 2
}


def _h(expr: str, salt: int) -> str:
    """SQL for a non-negative pseudo-random bigint from (seed, expr, salt)."""
    return f"(hashint8extended(({expr})::bigint, %(seed)s::bigint * 64 + {salt}) & {2**63 - 1})"


def _sql_array(values: tuple[object, ...], cast: str = "text") -> str:
    """A SQL array literal of constant values (our own constants, not user input)."""
    items = ", ".join(
        "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(v) for v in values
    )
    return f"ARRAY[{items}]::{cast}[]"


RESTAURANT_ROWS = f"""
CREATE TEMP TABLE _gen_restaurants ON COMMIT DROP AS
SELECT r,
       md5(%(seed)s || ':restaurant:' || r)::uuid AS id,
       ({_sql_array(NAMES)})[1 + r %% {len(NAMES)}] || ' ' || r AS name,
       'bench-' || %(seed)s || '-' || r AS slug,
       ({_sql_array(TIMEZONES)})[1 + {_h("r", 1)} %% {len(TIMEZONES)}] AS timezone,
       20 + {_h("r", 2)} %% 41 AS n_tables,
       2 + {_h("r", 3)} %% 2 AS n_zones,
       3 + {_h("r", 4)} %% 4 AS per_row,
       {_h("r", 5)} %% {len(OTHER_ZONES)} AS zone_pick
FROM generate_series(1, %(restaurants)s) AS r
"""

ZONE_ROWS = f"""
CREATE TEMP TABLE _gen_zones ON COMMIT DROP AS
SELECT r.r, z, r.id AS restaurant_id,
       md5(%(seed)s || ':zone:' || r.r || ':' || z)::uuid AS id,
       CASE WHEN z = 0 THEN 'Main'
            ELSE ({_sql_array(OTHER_ZONES)})[1 + (r.zone_pick + z - 1) %% {len(OTHER_ZONES)}]
       END AS name,
       -- tables split evenly over the zones, numbered restaurant-wide from `first`
       r.n_tables / r.n_zones + (z < r.n_tables %% r.n_zones)::int AS size,
       z * (r.n_tables / r.n_zones) + least(z, r.n_tables %% r.n_zones) AS first,
       r.per_row
FROM _gen_restaurants AS r
CROSS JOIN LATERAL generate_series(0, r.n_zones - 1) AS z
"""

# Capacities by weight: 2 (30%), 4 (35%), 6 (15%), 8 (12%), 10 (5%), 12 (3%).
TABLE_ROWS = f"""
CREATE TEMP TABLE _gen_tables ON COMMIT DROP AS
SELECT t.*,
       CASE WHEN t.capacity <= 4 THEN 1 ELSE t.capacity / 2 END AS min_party,
       CASE WHEN t.capacity >= 10 OR {_h("t.r * 1000 + t.k", 7)} %% 10 = 0
            THEN 'fixed' ELSE 'movable' END AS mobility,
       row_number() OVER (ORDER BY t.r, t.k) - 1 AS g
FROM (
    SELECT z.r, z.restaurant_id, z.id AS zone_id, z.size, z.per_row, j, z.first + j AS k,
           md5(%(seed)s || ':table:' || z.r || ':' || (z.first + j))::uuid AS id,
           upper(left(z.name, 2)) || lpad((j + 1)::text, 2, '0') AS table_number,
           (SELECT CASE WHEN w < 30 THEN 2 WHEN w < 65 THEN 4 WHEN w < 80 THEN 6
                        WHEN w < 92 THEN 8 WHEN w < 97 THEN 10 ELSE 12 END
            FROM (SELECT {_h("z.r * 1000 + z.first + j", 6)} %% 100 AS w) AS weight) AS capacity
    FROM _gen_zones AS z
    CROSS JOIN LATERAL generate_series(0, z.size - 1) AS j
) AS t
"""

# Seating s of table t on day d is candidate number c = (d * tables + t.g) * 3 + s; a
# hash of c decides whether it is booked, the first %(bookings)s booked ones are kept.
SLOT_ROWS = f"""
CREATE TEMP TABLE _gen_bookings ON COMMIT DROP AS
WITH candidates AS (
    SELECT d, s, t.r, t.restaurant_id, t.id AS table_id, t.capacity, t.min_party,
           (%(first_day)s::date + d) AS day,
           (d::bigint * %(tables)s + t.g) * 3 + s AS c
    FROM generate_series(0, %(days)s - 1) AS d
    CROSS JOIN _gen_tables AS t
    CROSS JOIN generate_series(0, 2) AS s
), booked AS (
    SELECT c.*, row_number() OVER (ORDER BY c.c) AS n
    FROM candidates AS c
    WHERE {_h("c.c", 8)} %% 100 < (CASE c.s
        WHEN 0 THEN {_sql_array(FILL[0], "int")}
        WHEN 1 THEN {_sql_array(FILL[1], "int")}
        ELSE {_sql_array(FILL[2], "int")} END)[extract(isodow FROM c.day)::int]
), timed AS (
    SELECT b.*,
           (CASE b.s WHEN 0 THEN time '11:30' + make_interval(mins => 15 * ({_h("b.c", 9)} %% 5)::int)
                     WHEN 1 THEN time '17:30' + make_interval(mins => 15 * ({_h("b.c", 9)} %% 3)::int)
                     ELSE time '20:00' + make_interval(mins => 15 * ({_h("b.c", 9)} %% 5)::int)
            END)::time AS start_time,
           make_interval(mins => 90 + 15 * ({_h("b.c", 10)} %% 3)::int) AS duration
    FROM booked AS b
    WHERE b.n <= %(bookings)s
)
SELECT t.n,
       md5(%(seed)s || ':booking:' || t.n)::uuid AS id,
       t.restaurant_id, t.table_id, t.day, t.start_time,
       (t.start_time + t.duration)::time AS end_time,
       (t.day + t.start_time) AT TIME ZONE r.timezone AS start_at,
       (t.day + t.start_time + t.duration) AT TIME ZONE r.timezone AS end_at,
       t.min_party + ({_h("t.c", 11)} %% (t.capacity - t.min_party + 1))::int AS party_size,
       CASE WHEN t.day < %(anchor)s::date THEN 'completed'
            WHEN t.day = %(anchor)s::date AND t.s = 0 THEN 'checked_in'
            ELSE 'confirmed' END AS status,
       ({_sql_array(FIRST_NAMES)})[1 + {_h("t.c", 12)} %% {len(FIRST_NAMES)}] AS first_name,
       ({_sql_array(LAST_NAMES)})[1 + {_h("t.c", 13)} %% {len(LAST_NAMES)}] AS last_name,
       -- booked 1-30 days ahead, at some minute of the day; never after the anchor (a
       -- data set is a snapshot taken then): a seating further ahead was booked at some
       -- minute of the 30 days before it, so a day's window holds a day's bookings
       LEAST(
           (t.day + t.start_time) AT TIME ZONE r.timezone
               - make_interval(days => 1 + ({_h("t.c", 14)} %% 30)::int,
                               mins => ({_h("t.c", 15)} %% 1440)::int),
           (%(anchor)s::date::timestamp AT TIME ZONE 'UTC')
               - make_interval(mins => 1 + ({_h("t.c", 16)} %% (30 * 1440))::int)
       ) AS created_at
FROM timed AS t
JOIN _gen_restaurants AS r ON r.r = t.r
"""

INSERTS = {
    "restaurants": """
INSERT INTO restaurants (id, name, slug, timezone, is_active, created_at, updated_at)
SELECT id, name, slug, timezone, true, %(epoch)s, %(epoch)s FROM _gen_restaurants ORDER BY r
""",
    "zones": """
INSERT INTO zones (id, restaurant_id, name, created_at)
SELECT id, restaurant_id, name, %(epoch)s FROM _gen_zones ORDER BY r, z
""",
    "table_inventory": """
INSERT INTO table_inventory (id, restaurant_id, zone_id, table_number, capacity,
                             min_party_size, max_party_size, seating_type, mobility, active,
                             created_at, updated_at)
SELECT id, restaurant_id, zone_id, table_number, capacity, min_party, capacity, 'standard',
       mobility, true, %(epoch)s, %(epoch)s
FROM _gen_tables ORDER BY g
""",
    # Neighbours within a zone's grid: side by side in a row, and front to back.
    "table_adjacencies": """
INSERT INTO table_adjacencies (restaurant_id, table_a, table_b, created_at)
SELECT a.restaurant_id, a.id, b.id, %(epoch)s
FROM _gen_tables AS a
JOIN _gen_tables AS b
  ON b.zone_id = a.zone_id
 AND ((b.j = a.j + 1 AND b.j %% a.per_row <> 0) OR b.j = a.j + a.per_row)
ORDER BY a.g, b.g
""",
    "bookings": """
INSERT INTO bookings (id, restaurant_id, customer_name, customer_email, party_size,
                      booking_date, start_time, end_time, start_at, end_at, status, source,
                      created_at, updated_at)
SELECT id, restaurant_id, first_name || ' ' || last_name,
       lower(first_name || '.' || last_name || '.' || n || '@example.com'), party_size,
       day, start_time, end_time, start_at, end_at, status, 'bench', created_at, created_at
FROM _gen_bookings ORDER BY n
""",
    "booking_table_assignments": """
INSERT INTO booking_table_assignments (id, booking_id, table_id, assigned_at)
SELECT md5(%(seed)s || ':assignment:' || n)::uuid, id, table_id, created_at
FROM _gen_bookings ORDER BY n
""",
    "allocations": """
INSERT INTO allocations (id, restaurant_id, booking_id, resource_type, resource_id, "window",
                         shadow, is_maintenance, created_at, updated_at)
SELECT md5(%(seed)s || ':allocation:' || n)::uuid, restaurant_id, id, 'table', table_id,
       tstzrange(start_at, end_at, '[)'), false, false, created_at, created_at
FROM _gen_bookings ORDER BY n
""",
}
# The assignments from booking_018 on (restaurant_id, the booking's).
ASSIGNMENTS_WITH_TENANT_KEY = """
INSERT INTO booking_table_assignments (id, booking_id, table_id, assigned_at, restaurant_id)
SELECT md5(%(seed)s || ':assignment:' || n)::uuid, id, table_id, created_at, restaurant_id
FROM _gen_bookings ORDER BY n
"""


def plan(scale: float, anchor: dt.date, past_share: float = PAST_SHARE) -> dict[str, int | dt.date]:
    """How many restaurants, bookings and days a load at `scale` generates, and from when
    (`past_share` of the days before the anchor)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    restaurants = max(1, round(RESTAURANTS * scale))
    bookings = max(1, round(BOOKINGS * scale))
    # 40 tables a restaurant on average; margin so the candidates always cover `bookings`.
    days = math.ceil(bookings / (restaurants * 40 * MEAN_FILL) * 1.25) + 2
    if not 0 <= past_share < 1:
        raise ValueError("past_share must be in [0, 1)")
    # The bookings fill the first days in order (the 1.25 margin leaves the last ones
    # empty): past_share is of the days they fill.
    filled = bookings / (restaurants * 40 * MEAN_FILL)
    first_day = anchor - dt.timedelta(days=math.floor(filled * past_share))
    return {"restaurants": restaurants, "bookings": bookings, "days": days, "first_day": first_day}


def load(
    conn: psycopg.Connection,
    *,
    scale: float = 1.0,
    seed: int = 1,
    anchor: dt.date | None = None,
    past_share: float = PAST_SHARE,
) -> dict[str, int]:
    """Generate the data set into `conn` (autocommit) and return the rows written per table.
    `past_share` of the days lie before the anchor (the rest, ahead, are confirmed).

    One transaction for the rows (a failed load leaves nothing), then VACUUM ANALYZE of the
    tables written so that benchmarks start from fresh statistics and visibility maps.
    """
    anchor = anchor or dt.datetime.now(dt.UTC).date()
    sizes = plan(scale, anchor, past_share)
    params: dict[str, object] = {
        "seed": seed,
        **sizes,
        "anchor": anchor,
        # created_at of the floor plan: fixed, a year before the anchor (not now()).
        "epoch": dt.datetime.combine(anchor, dt.time(), dt.UTC) - dt.timedelta(days=365),
    }
    has_adjacencies = scalar(conn, "SELECT to_regclass('public.table_adjacencies')") is not None
    # booking-distribution-keys (booking_018) gave the assignments restaurant_id, which the
    # trigger skipped here would fill: written by the load where the column exists.
    assignment_tenant_key = bool(
        scalar(
            conn,
            "SELECT count(*) FROM pg_attribute WHERE attname = 'restaurant_id' "
            "AND attrelid = to_regclass('public.booking_table_assignments')",
        )
    )
    counts: dict[str, int] = {}
    with conn.transaction():
        # Bulk load: skip row triggers and FK checks (the rows satisfy them by construction).
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(RESTAURANT_ROWS, params)
        conn.execute(ZONE_ROWS, params)
        conn.execute(TABLE_ROWS, params)
        params["tables"] = scalar(conn, "SELECT count(*) FROM _gen_tables")
        conn.execute(SLOT_ROWS, params)
        for table, statement in INSERTS.items():
            if table == "table_adjacencies" and not has_adjacencies:
                continue
            if table == "booking_table_assignments" and assignment_tenant_key:
                statement = ASSIGNMENTS_WITH_TENANT_KEY
            counts[table] = conn.execute(statement, params).rowcount
    # Not in the transaction: VACUUM cannot run inside one.
    conn.execute("VACUUM (ANALYZE) " + ", ".join(counts))
    return counts
