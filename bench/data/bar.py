"""Deterministic synthetic bar data (seed 002's domain) for the benchmarks, in bulk SQL.

    from bench.data.bar import load
    counts = load(conn, scale=1.0, seed=1)   # conn: an autocommit psycopg 3 connection

At scale 1.0: 500 bars (a third in simplified mode, a third in full mode, a third with no
mode set), their owner, 1-2 managers and 4-8 servers each (auth.users + bar_members), the
server_name_mappings of most servers when that table exists (release mode-switching),
1,000,000 sales, 100,000 consignments and 50,000 returns over the 30 days before `anchor`.
Like toolkit/venue/bar_sample.py, activity records the server only by the name typed on the
till, in varied case and spacing; about 3 % carry a name nobody mapped ("Temp Staff"),
3 % no name at all, 2 % were created by a user who has since left (created_by NULL), and
in every other bar the second server was never mapped. server_id is never set: that is
the backfill's job.

Only bar-baseline columns are written, so the same load runs on a database migrated to
bar-baseline and on one migrated to all heads. Every uuid is md5(seed:kind:n) and every
choice a hashint8extended() of (n, seed), timestamps are relative to `anchor` (midnight
UTC): one (seed, scale, anchor) always yields the same rows, ids included.
"""

from __future__ import annotations

import datetime as dt
import time

import psycopg

from toolkit.server.connection import scalar

FIRST = ("Marie", "Jean", "Luc", "Sofia", "Ama", "Kofi", "Nadia", "Omar", "Lea", "Hugo")
LAST = ("Claire", "Dupont", "Mensah", "Okafor", "Martin", "Diallo", "Rossi", "Bernard")
PRODUCTS = (("Beer", "4.50"), ("Wine", "6.00"), ("Soda", "2.50"), ("Cocktail", "9.00"))
BOTTLES = (("Bottle of wine", "18.00"), ("Bottle of whisky", "45.00"), ("Champagne", "60.00"))
UNMAPPED_NAME = "Temp Staff"
WINDOW_SECONDS = 30 * 24 * 3600  # activity spread over the 30 days before the anchor

# Counts at scale 1.0.
BARS = 500
SALES = 1_000_000
CONSIGNMENTS = 100_000
RETURNS = 50_000
ACTIVITY_TABLES = ("sales", "consignments", "returns")


def _text_array(values: tuple[str, ...]) -> str:
    """A SQL text[] literal of plain words (none holds a quote, so none needs escaping)."""
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def _h(expr: str, salt: int) -> str:
    """SQL for a non-negative pseudo-random bigint of (expr, salt, seed).

    hashint8extended(value, seed) is a stable 64-bit hash; the salt keeps the choices of
    one row independent of each other (salt < 64), the mask keeps the result >= 0.
    """
    return f"(hashint8extended(({expr})::bigint * 64 + {salt}, %(seed)s) & 9223372036854775807)"


def _uuid(kind: str, *parts: str) -> str:
    """SQL for the deterministic uuid md5('seed:kind:parts')."""
    joined = " || ':' || ".join(f"({p})::text" for p in parts)
    return f"md5(%(seed)s::text || ':{kind}:' || {joined})::uuid"


def _typed(name: str, roll: str) -> str:
    """SQL for `name` as typed on the till: case and spacing vary, the name does not."""
    return f"""CASE
        WHEN {roll} % 100 < 40 THEN {name}
        WHEN {roll} % 100 < 60 THEN lower({name})
        WHEN {roll} % 100 < 70 THEN upper({name})
        WHEN {roll} % 100 < 85 THEN '  ' || replace({name}, ' ', '   ') || ' '
        ELSE initcap(lower({name}))
    END"""


# Per bar: its id, how many managers and servers it has, where its server names start.
CREATE_CREW = f"""
CREATE TEMP TABLE bench_bar ON COMMIT DROP AS
SELECT b AS bar_no,
       {_uuid("bar", "b")} AS bar_id,
       1 + {_h("b", 1)} % 2 AS n_managers,
       4 + {_h("b", 2)} % 5 AS n_servers,
       {_h("b", 3)} % 80 AS name_start
FROM generate_series(0, %(bars)s - 1) AS b;

-- Everybody on the staff: owner (slot 0), managers, servers. Server names are distinct
-- within a bar (steps of 13 modulo 80 never repeat under 80 steps); the first server of
-- every fourth bar has left (inactive), the second of every other bar was never mapped.
CREATE TEMP TABLE bench_staff ON COMMIT DROP AS
SELECT bar_no, bar_id, 'owner' AS role, 0 AS slot, {_uuid("owner", "bar_no")} AS user_id,
       'Owner ' || (bar_no + 1) AS display_name, true AS is_active, false AS mapped
FROM bench_bar
UNION ALL
SELECT bar_no, bar_id, 'manager', m, {_uuid("manager", "bar_no", "m")},
       'Manager ' || m, true, false
FROM bench_bar, generate_series(1, n_managers) AS m
UNION ALL
SELECT bar_no, bar_id, 'server', s, {_uuid("server", "bar_no", "s")},
       ({_text_array(FIRST)})[1 + (name_start + s * 13) % 80 % 10] || ' '
           || ({_text_array(LAST)})[1 + (name_start + s * 13) % 80 / 10],
       s <> 1 OR bar_no % 4 <> 0,
       s <> 2 OR bar_no % 2 = 1
FROM bench_bar, generate_series(1, n_servers) AS s;

-- One row per bar with its managers and server names as arrays, for the activity joins.
CREATE TEMP TABLE bench_crew ON COMMIT DROP AS
SELECT bar_no, bar_id,
       array_agg(user_id ORDER BY slot) FILTER (WHERE role = 'manager') AS managers,
       array_agg(display_name ORDER BY slot) FILTER (WHERE role = 'server') AS servers
FROM bench_staff GROUP BY bar_no, bar_id;
"""

INSERT_USERS = """
INSERT INTO auth.users (id, email, created_at)
SELECT user_id, role || slot || '.bar' || bar_no || '@bench-' || %(seed)s || '.bar',
       %(anchor)s::timestamptz - interval '365 days'
FROM bench_staff
"""

INSERT_BARS = f"""
INSERT INTO public.bars (id, name, owner_id, settings, is_active, created_at, updated_at)
SELECT bar_id, 'Bench ' || %(seed)s || ' Bar ' || (bar_no + 1),
       {_uuid("owner", "bar_no")},
       CASE bar_no % 3
           WHEN 0 THEN '{{"currency": "EUR", "operatingMode": "simplified"}}'
           WHEN 1 THEN '{{"currency": "EUR", "operatingMode": "full"}}'
           ELSE '{{"currency": "EUR"}}'
       END::jsonb,
       true, %(anchor)s::timestamptz - interval '365 days',
       %(anchor)s::timestamptz - interval '365 days'
FROM bench_bar
"""

INSERT_MEMBERS = f"""
INSERT INTO public.bar_members (id, bar_id, user_id, role, display_name, is_active, created_at)
SELECT {_uuid("member", "bar_no", "role", "slot")}, bar_id, user_id, role, display_name,
       is_active, %(anchor)s::timestamptz - interval '365 days'
FROM bench_staff
"""

INSERT_MAPPINGS = f"""
INSERT INTO public.server_name_mappings
    (id, bar_id, user_id, server_name, created_by, created_at, updated_at)
SELECT {_uuid("mapping", "s.bar_no", "s.slot")}, s.bar_id, s.user_id, s.display_name,
       c.managers[1], %(anchor)s::timestamptz - interval '300 days',
       %(anchor)s::timestamptz - interval '300 days'
FROM bench_staff AS s JOIN bench_crew AS c USING (bar_no)
WHERE s.role = 'server' AND s.mapped
"""


def _activity(kind: str, count: str) -> str:
    """SQL for the rows n = 1..count of sales or consignments, with the shared columns.

    Columns: n, id, bar_id, created_by, server_name, created_at, and r1/r2 (two more
    independent pseudo-random numbers for the table's own columns).
    """
    return f"""
SELECT g.n, {_uuid(kind, "g.n")} AS id, c.bar_id,
       CASE WHEN g.h_creator % 50 = 0 THEN NULL  -- created by a user who left since
            ELSE c.managers[1 + g.h_creator / 50 % cardinality(c.managers)] END AS created_by,
       CASE WHEN g.h_name % 100 < 3 THEN NULL
            WHEN g.h_name % 100 < 6 THEN {_typed(f"'{UNMAPPED_NAME}'", "(g.h_name / 100)")}
            ELSE {
        _typed("c.servers[1 + g.h_name / 10000 % cardinality(c.servers)]", "(g.h_name / 100)")
    }
       END AS server_name,
       %(anchor)s::timestamptz - make_interval(secs => 1 + g.h_time % {WINDOW_SECONDS})
           AS created_at,
       g.r1, g.r2
FROM (
    SELECT n, {_h("n", 10)} AS h_bar, {_h("n", 11)} AS h_creator, {_h("n", 12)} AS h_name,
           {_h("n", 13)} AS h_time, {_h("n", 14)} AS r1, {_h("n", 15)} AS r2
    FROM generate_series(1, {count}) AS n
) AS g
JOIN bench_crew AS c ON c.bar_no = g.h_bar % %(bars)s
"""


PRODUCT_NAMES = _text_array(tuple(p for p, _ in PRODUCTS))
PRODUCT_PRICES = "ARRAY[" + ", ".join(price for _, price in PRODUCTS) + "]::numeric[]"

INSERT_SALES = f"""
INSERT INTO public.sales (id, bar_id, created_by, server_name, items, total, payment_method,
                          status, created_at, updated_at)
SELECT a.id, a.bar_id, a.created_by, a.server_name,
       jsonb_build_array(jsonb_build_object(
           'product', ({PRODUCT_NAMES})[1 + a.r1 % {len(PRODUCTS)}],
           'qty', 1 + a.r1 / 16 % 4,
           'price', ({PRODUCT_PRICES})[1 + a.r1 % {len(PRODUCTS)}])),
       ({PRODUCT_PRICES})[1 + a.r1 % {len(PRODUCTS)}] * (1 + a.r1 / 16 % 4),
       CASE WHEN a.r2 % 2 = 0 THEN 'cash' ELSE 'card' END,
       CASE WHEN a.r2 / 2 % 100 < 2 THEN 'voided'
            WHEN a.r2 / 2 % 100 < 3 THEN 'refunded'
            ELSE 'completed' END,
       a.created_at, a.created_at
FROM ({_activity("sale", "%(sales)s")}) AS a
"""

BOTTLE_NAMES = _text_array(tuple(p for p, _ in BOTTLES))
BOTTLE_PRICES = "ARRAY[" + ", ".join(price for _, price in BOTTLES) + "]::numeric[]"

INSERT_CONSIGNMENTS = f"""
INSERT INTO public.consignments (id, bar_id, created_by, server_name, product_name, quantity,
                                 amount, status, expires_at, created_at)
SELECT a.id, a.bar_id, a.created_by, a.server_name,
       ({BOTTLE_NAMES})[1 + a.r1 % {len(BOTTLES)}],
       1 + a.r1 / 16 % 3,
       ({BOTTLE_PRICES})[1 + a.r1 % {len(BOTTLES)}] * (1 + a.r1 / 16 % 3),
       (ARRAY['active', 'active', 'claimed', 'expired', 'forfeited'])[1 + a.r2 % 5],
       a.created_at + interval '30 days', a.created_at
FROM ({_activity("consignment", "%(consignments)s")}) AS a
"""

# Each return refunds a distinct sale: sale number (r - 1) * step + 1 + (0..step-1), joined
# through the sale's deterministic id; same bar, creator and server name as the sale.
INSERT_RETURNS = f"""
INSERT INTO public.returns (id, bar_id, sale_id, created_by, server_name, amount, reason,
                            created_at)
SELECT {_uuid("return", "g.r")}, s.bar_id, s.id, s.created_by, s.server_name, s.total,
       (ARRAY['wrong order', 'spilled', 'customer complaint', NULL])[1 + {_h("g.r", 21)} % 4],
       s.created_at + make_interval(secs => {_h("g.r", 22)} % 3600)
FROM generate_series(1, %(returns)s) AS g(r)
JOIN public.sales AS s
  ON s.id = {_uuid("sale", f"(g.r - 1) * %(step)s + 1 + {_h('g.r', 20)} % %(step)s")}
"""

UPDATE_LAST_SALE = """
UPDATE public.bars AS b SET last_sale_at = s.last_sale_at
FROM (SELECT bar_id, max(created_at) AS last_sale_at FROM public.sales GROUP BY bar_id) AS s
WHERE b.id = s.bar_id AND b.id IN (SELECT bar_id FROM bench_bar)
"""


def counts_for(scale: float) -> dict[str, int]:
    """The number of bars, sales, consignments and returns generated at `scale`."""
    sales = max(20, round(SALES * scale))
    return {
        "bars": max(3, round(BARS * scale)),
        "sales": sales,
        "consignments": max(1, round(CONSIGNMENTS * scale)),
        "returns": max(1, min(sales, round(RETURNS * scale))),
    }


def anchor_time(anchor: dt.date | None) -> dt.datetime:
    """Midnight UTC of `anchor` (default: today's date in UTC): "now" for the generated rows."""
    day = anchor or dt.datetime.now(dt.UTC).date()
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def has_table(conn: psycopg.Connection, name: str) -> bool:
    """Whether public.<name> exists (server_name_mappings appears with mode-switching)."""
    return bool(scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)))


def load(
    conn: psycopg.Connection,
    *,
    scale: float = 1.0,
    seed: int = 1,
    anchor: dt.date | None = None,
) -> dict[str, int]:
    """Generate the bar data into the connection's database; return row counts per table.

    `conn` must be in autocommit mode; the load runs in one transaction of its own (so a
    failure leaves nothing behind), then ANALYZEs the tables it filled.
    """
    if not conn.autocommit:
        raise ValueError("bench.data.bar.load needs an autocommit connection")
    sizes = counts_for(scale)
    params: dict[str, int | dt.datetime] = {
        "seed": seed,
        "anchor": anchor_time(anchor),
        **sizes,
        "step": sizes["sales"] // sizes["returns"],
    }
    counts: dict[str, int] = {}
    mappings = has_table(conn, "server_name_mappings")
    with conn.transaction():
        _skip_triggers(conn)
        # Temp tables live until the transaction ends (ON COMMIT DROP).
        conn.execute(_render(CREATE_CREW, params))
        steps = [
            ("users", INSERT_USERS),
            ("bars", INSERT_BARS),
            ("bar_members", INSERT_MEMBERS),
            ("server_name_mappings", INSERT_MAPPINGS if mappings else None),
            ("sales", INSERT_SALES),
            ("consignments", INSERT_CONSIGNMENTS),
            ("returns", INSERT_RETURNS),
        ]
        for table, sql in steps:
            counts[table] = conn.execute(_render(sql, params)).rowcount if sql else 0
        conn.execute(_render(UPDATE_LAST_SALE, params))
    tables = ["auth.users", "public.bars", "public.bar_members"]
    tables += [f"public.{t}" for t in ACTIVITY_TABLES]
    tables += ["public.server_name_mappings"] if mappings else []
    conn.execute(f"ANALYZE {', '.join(tables)}")
    return counts


def _render(sql: str, params: dict[str, int | dt.datetime]) -> str:
    """`sql` with its %(name)s parameters inlined as SQL literals.

    Inlined rather than bound: the statements use `%` as the modulo operator throughout,
    which psycopg would otherwise read as placeholders; the values are ints and one
    timestamp that we produce ourselves.
    """
    for name, value in params.items():
        literal = (
            f"'{value.isoformat()}'::timestamptz"
            if isinstance(value, dt.datetime)
            else str(int(value))
        )
        sql = sql.replace(f"%({name})s", f"({literal})")
    return sql


def _skip_triggers(conn: psycopg.Connection) -> None:
    """Skip the foreign key and other row triggers for the bulk load, when allowed.

    Every row is built to satisfy them (ids of rows inserted just before, the checks'
    ranges), and skipping them makes the load several times faster. Needs superuser;
    without it the load runs with the triggers, only slower.
    """
    try:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return


def _signature(scale: float, seed: int, anchor: dt.date) -> str:
    """What a database loaded by prepare() records about its data (COMMENT ON DATABASE)."""
    return f"venuedb bench bar data: scale={scale:g} seed={seed} anchor={anchor.isoformat()}"


def prepare(name: str, *, scale: float, seed: int, reuse: bool) -> tuple[str, dt.date]:
    """A database `name` on the benchmark server, migrated to all heads and loaded.

    With `reuse`, a database that prepare() already loaded with the same scale and seed is
    kept as it is (its anchor is returned, so callers can tell generated rows, all before
    it, from their own); otherwise it is dropped and built again. Returns (url, anchor).
    """
    from bench.common import database_url, scratch_database
    from toolkit.engine.migrate import RunOptions, run
    from toolkit.server.connection import Target

    if reuse:
        found = _loaded(database_url(name))
        if found is not None and found[0] == _signature(scale, seed, found[1]):
            print(f"reusing {name}: {found[0]}")
            # Revisions added since it was built are applied (a no-op when none are).
            run(Target(database_url(name), "bench"), "upgrade", None, RunOptions(actor="bench"))
            return database_url(name), found[1]
    url = scratch_database(name)
    run(Target(url, "bench"), "upgrade", None, RunOptions(actor="bench"))
    anchor = anchor_time(None).date()
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        counts = load(conn, scale=scale, seed=seed, anchor=anchor)
        conn.execute("VACUUM (ANALYZE)")
        print(f"generated {counts} in {time.monotonic() - started:.0f} s")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{_signature(scale, seed, anchor)}'")
    return url, anchor


def _loaded(url: str) -> tuple[str, dt.date] | None:
    """(signature, anchor) of a database prepare() loaded; None if it is not one."""
    from bench.common import database_comment

    comment = database_comment(url) or ""
    if "anchor=" not in comment:
        return None
    try:
        return comment, dt.date.fromisoformat(comment.rsplit("anchor=", 1)[1])
    except ValueError:
        return None
