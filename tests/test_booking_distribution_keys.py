"""Release booking-distribution-keys (issue 22, part 5): restaurant_id in every booking
table and in every key, so the tables can be distributed by it.

booking_018 adds restaurant_id to the three tables that had none, with a trigger that
fills it from the parent and refuses another restaurant's; the backfills fill the rows
written before; booking_019 makes it NOT NULL; booking_020 puts it into every primary
key, unique constraint and foreign key between booking tables. Each rule is broken here
from SQL, and the release goes down and up on a database holding rows."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.clihelpers import as_json, invoke
from tests.conftest import DATA, load_sql, row_counts
from tests.queries import scalar
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import find_release
from toolkit.server.connection import Target

# tests/data/rows/booking_001.sql: restaurants 1 and 2, tables T1..T6 of each, bookings.
R1, R2 = "10000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000002"
TABLE_R1 = "30000000-0000-4000-8000-000000000011"
TABLE_R2 = "30000000-0000-4000-8000-000000000021"
TABLE2_R1 = "30000000-0000-4000-8000-000000000012"  # one of PENDING_R1's two tables
HOLD_R2 = "50000000-0000-4000-8000-000000000002"  # open, table T1 of restaurant 2 held
TABLE2_R2 = "30000000-0000-4000-8000-000000000022"
PENDING_R1 = "40000000-0000-4000-8000-000000000099"  # confirmed through the hold
# Booking n = 2 of the rows: restaurant 1 + 2 % 2 = restaurant 1.
BOOKING_R1 = "40000000-0000-4000-8000-000000000002"

BOOKING_TABLES = (
    "zones",
    "table_inventory",
    "table_adjacencies",
    "bookings",
    "booking_table_assignments",
    "table_holds",
    "table_hold_members",
    "allocations",
    "booking_confirmation_results",
)
CHILDREN = ("booking_table_assignments", "booking_confirmation_results", "table_hold_members")
BACKFILLS = tuple(f"{t}_restaurant_id" for t in CHILDREN)

# Every PRIMARY KEY, UNIQUE, EXCLUDE and FOREIGN KEY constraint and unique index of the
# booking tables that does not include restaurant_id (a foreign key: on both sides;
# restaurants, the tenant root, is distributed by its id).
WITHOUT_TENANT_KEY = """
WITH tenant AS (
    SELECT c.oid AS rel, a.attnum FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid
     AND a.attname = CASE c.relname WHEN 'restaurants' THEN 'id' ELSE 'restaurant_id' END
    WHERE c.relnamespace = 'public'::regnamespace
)
SELECT con.conrelid::regclass::text || '.' || con.conname
FROM pg_constraint con
WHERE con.conrelid::regclass::text = ANY(%(tables)s) AND con.contype IN ('p', 'u', 'x', 'f')
  AND (NOT con.conkey @> ARRAY[(SELECT attnum FROM tenant WHERE rel = con.conrelid)]
       OR (con.contype = 'f' AND NOT coalesce(
               con.confkey @> ARRAY[(SELECT attnum FROM tenant WHERE rel = con.confrelid)],
               false)))
UNION ALL
SELECT i.indexrelid::regclass::text
FROM pg_index i
WHERE i.indisunique AND i.indrelid::regclass::text = ANY(%(tables)s)
  AND NOT i.indkey::int2[] @> ARRAY[(SELECT attnum FROM tenant WHERE rel = i.indrelid)]
ORDER BY 1
"""


def _heads(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return {r[0].split("_")[0]: r[0] for r in rows}


def _without_tenant_key(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(WITHOUT_TENANT_KEY, {"tables": list(BOOKING_TABLES)}).fetchall()
    return [r[0] for r in rows]


def _tenant_keys(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Per child table, every row's key columns and restaurant_id, in order."""
    keys = {
        "booking_table_assignments": "id::text, booking_id::text",
        "booking_confirmation_results": "id::text, booking_id::text",
        "table_hold_members": "hold_id::text, table_id::text",
    }
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"SELECT {k}, restaurant_id::text FROM {t} ORDER BY {k}").fetchall()
            for t, k in keys.items()
        }


def _mismatches(url: str) -> int:
    """Child rows whose restaurant_id is not their parent's (NULL counts)."""
    with psycopg.connect(url) as conn:
        return int(
            scalar(
                conn,
                "SELECT (SELECT count(*) FROM booking_table_assignments a JOIN bookings b "
                "ON b.id = a.booking_id WHERE a.restaurant_id IS DISTINCT FROM b.restaurant_id) "
                "+ (SELECT count(*) FROM booking_confirmation_results r JOIN bookings b "
                "ON b.id = r.booking_id WHERE r.restaurant_id IS DISTINCT FROM b.restaurant_id) "
                "+ (SELECT count(*) FROM table_hold_members m JOIN table_holds h "
                "ON h.id = m.hold_id WHERE m.restaurant_id IS DISTINCT FROM h.restaurant_id)",
            )
        )


def _load_rows(url: str) -> None:
    """booking_017 (and core) holding tests/data/rows' booking rows: written before the
    release."""
    run(Target(url, "tests"), "upgrade", "booking_017", RunOptions(actor="tests"))
    for rows in ("core_001", "booking_001"):
        load_sql(url, DATA / "rows" / f"{rows}.sql")


@pytest.fixture
def rows_url(empty_db_url: str) -> str:
    _load_rows(empty_db_url)
    return empty_db_url


@pytest.fixture
def heads_url(rows_url: str) -> str:
    """The heads, the release applied over those rows."""
    run(Target(rows_url, "tests"), "upgrade", "heads", RunOptions(actor="tests"))
    return rows_url


def test_the_release_is_booking_018_to_020_at_the_booking_head() -> None:
    release = find_release("booking-distribution-keys")
    assert release is not None
    assert (release.branch, release.revisions) == (
        "booking",
        ("booking_018", "booking_019", "booking_020"),
    )


def test_every_key_of_the_booking_tables_includes_restaurant_id(db_url: str) -> None:
    assert _heads(db_url)["booking"] == "booking_020"
    assert _without_tenant_key(db_url) == []
    with psycopg.connect(db_url) as conn:
        defs: dict[str, str] = dict(
            conn.execute(
                "SELECT conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)",
                (list(BOOKING_TABLES),),
            ).fetchall()
        )
        nullable = conn.execute(
            "SELECT attrelid::regclass::text FROM pg_attribute WHERE attname = 'restaurant_id' "
            "AND attrelid::regclass::text = ANY(%s) AND NOT attnotnull",
            (list(BOOKING_TABLES),),
        ).fetchall()
    assert nullable == []
    assert defs["bookings.bookings_pkey"] == "PRIMARY KEY (id, restaurant_id)"
    assert defs["table_hold_members.table_hold_members_pkey"] == (
        "PRIMARY KEY (hold_id, table_id, restaurant_id)"
    )
    assert defs["booking_table_assignments.booking_table_assignments_table_id_booking_id_key"] == (
        "UNIQUE (table_id, booking_id, restaurant_id)"
    )
    assert defs["booking_table_assignments.booking_table_assignments_booking_id_fkey"] == (
        "FOREIGN KEY (restaurant_id, booking_id) REFERENCES bookings(restaurant_id, id) "
        "ON DELETE CASCADE"
    )
    assert "allocations.allocations_booking_id_fkey" not in defs
    assert "bookings.bookings_restaurant_id_id_key" not in defs
    # The check itself finds a key without the tenant key.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX zones_name_only ON zones (name)")
    assert _without_tenant_key(db_url) == ["zones_name_only"]


def test_a_child_row_written_without_restaurant_id_gets_its_parents(heads_url: str) -> None:
    url = heads_url
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO table_holds (id, restaurant_id, start_at, end_at, expires_at) VALUES "
            "('50000000-0000-4000-8000-000000000009', %s, '2030-05-01 19:00+00', "
            "'2030-05-01 21:00+00', now() + interval '10 minutes')",
            (R2,),
        )
        conn.execute(
            "INSERT INTO table_hold_members (hold_id, table_id) "
            "VALUES ('50000000-0000-4000-8000-000000000009', %s)",
            (TABLE_R2,),
        )
        conn.execute(
            "INSERT INTO booking_confirmation_results (booking_id, confirmed) VALUES (%s, false)",
            (BOOKING_R1,),
        )
        # Explicit NULL, and an update back to NULL, are filled too.
        conn.execute(
            "UPDATE table_hold_members SET restaurant_id = NULL WHERE hold_id = %s", (HOLD_R2,)
        )
        conn.commit()
    assert _mismatches(url) == 0


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        (
            "INSERT INTO table_hold_members (hold_id, table_id, restaurant_id) VALUES (%s, %s, %s)",
            (HOLD_R2, TABLE2_R2, R1),
        ),
        (
            "INSERT INTO booking_confirmation_results (booking_id, confirmed, restaurant_id) "
            "VALUES (%s, false, %s)",
            (BOOKING_R1, R2),
        ),
        (
            "UPDATE booking_table_assignments SET restaurant_id = %s WHERE booking_id = %s",
            (R2, PENDING_R1),
        ),
    ],
)
def test_a_child_row_naming_another_restaurant_is_refused(
    heads_url: str, statement: str, parameters: tuple[str, ...]
) -> None:
    with psycopg.connect(heads_url) as conn:
        with pytest.raises(errors.ForeignKeyViolation) as refused:
            conn.execute(statement, parameters)
        assert str(refused.value.diag.constraint_name).endswith("_restaurant_id_fill")


def test_the_composite_keys_refuse_another_restaurants_parent_without_the_trigger(
    heads_url: str,
) -> None:
    """The trigger off (as a restore with --disable-triggers would leave it): the foreign
    keys alone still refuse a child in another restaurant than its parent."""
    cases = [
        (
            "booking_table_assignments",
            "UPDATE booking_table_assignments SET restaurant_id = %s, table_id = %s "
            "WHERE booking_id = %s AND table_id = %s",
            (R2, TABLE_R2, PENDING_R1, TABLE2_R1),
            "booking_table_assignments_booking_id_fkey",
        ),
        (
            "booking_table_assignments",
            "UPDATE booking_table_assignments SET table_id = %s "
            "WHERE booking_id = %s AND table_id = %s",
            (TABLE_R2, PENDING_R1, TABLE2_R1),
            "booking_table_assignments_table_id_fkey",
        ),
        (
            "table_hold_members",
            "UPDATE table_hold_members SET restaurant_id = %s, table_id = %s WHERE hold_id = %s",
            (R1, TABLE_R1, HOLD_R2),
            "table_hold_members_hold_id_fkey",
        ),
        (
            "table_hold_members",
            "UPDATE table_hold_members SET table_id = %s WHERE hold_id = %s",
            (TABLE_R1, HOLD_R2),
            "table_hold_members_table_id_fkey",
        ),
        (
            "booking_confirmation_results",
            "INSERT INTO booking_confirmation_results (booking_id, confirmed, restaurant_id) "
            "VALUES (%s, false, %s)",
            (BOOKING_R1, R2),
            "booking_confirmation_results_booking_id_fkey",
        ),
        (
            "table_holds",
            # Zone 1 is a zone of restaurant 1, the hold restaurant 2's.
            "UPDATE table_holds SET zone_id = '20000000-0000-4000-8000-000000000001' WHERE id = %s",
            (HOLD_R2,),
            "table_holds_zone_id_fkey",
        ),
        (
            "table_holds",
            "UPDATE table_holds SET booking_id = %s WHERE id = %s",
            (BOOKING_R1, HOLD_R2),
            "table_holds_booking_id_fkey",
        ),
        (
            "table_inventory",
            "UPDATE table_inventory SET zone_id = '20000000-0000-4000-8000-000000000001' "
            "WHERE id = %s",
            (TABLE_R2,),
            "table_inventory_zone_id_fkey",
        ),
    ]
    for table, statement, parameters, key in cases:
        with psycopg.connect(heads_url) as conn:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            with pytest.raises(errors.ForeignKeyViolation) as refused:
                conn.execute(statement, parameters)
            assert refused.value.diag.constraint_name == key, statement
            conn.rollback()


def test_restaurant_id_cannot_be_null(heads_url: str) -> None:
    url = heads_url
    for table in CHILDREN:
        with psycopg.connect(url) as conn:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            with pytest.raises(errors.NotNullViolation):
                conn.execute(f"UPDATE {table} SET restaurant_id = NULL")
            conn.rollback()


def test_the_backfills_fill_the_rows_written_before_the_release(rows_url: str) -> None:
    target, options = Target(rows_url, "tests"), RunOptions(actor="tests")
    with psycopg.connect(rows_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO booking_confirmation_results (booking_id, confirmed) VALUES (%s, true)",
            (PENDING_R1,),
        )
    run(target, "upgrade", "booking_018", options)
    before = _tenant_keys(rows_url)
    assert all(row[-1] is None for rows in before.values() for row in rows)
    assert all(before.values())
    for name in BACKFILLS:
        dry = as_json(
            invoke("backfill", "run", name, "--dry-run", "--json", "--database-url", rows_url)
        )
        assert dry["total"] == len(before[name.removesuffix("_restaurant_id")]), dry
        result = invoke("backfill", "run", name, "--batch-size", "2", "--database-url", rows_url)
        assert result.exit_code == 0, result.output
    assert _mismatches(rows_url) == 0
    after = _tenant_keys(rows_url)
    assert {t: [r[:-1] for r in rows] for t, rows in after.items()} == {
        t: [r[:-1] for r in rows] for t, rows in before.items()
    }
    run(target, "upgrade", "heads", options)
    assert _tenant_keys(rows_url) == after and _without_tenant_key(rows_url) == []


def test_booking_019_fills_what_no_backfill_did(rows_url: str) -> None:
    """Straight to the heads without the backfills: booking_019 fills the rows itself,
    in batches, before it adds NOT NULL."""
    run(Target(rows_url, "tests"), "upgrade", "heads", RunOptions(actor="tests"))
    assert _mismatches(rows_url) == 0
    assert _without_tenant_key(rows_url) == []


def test_the_release_goes_down_and_up_with_the_rows_kept(rows_url: str) -> None:
    target, options = Target(rows_url, "tests"), RunOptions(actor="tests")
    run(target, "upgrade", "heads", options)
    counts, keys = row_counts(rows_url), _tenant_keys(rows_url)
    run(target, "downgrade", "booking_017", options)
    assert _heads(rows_url)["booking"] == "booking_017"
    assert row_counts(rows_url) == counts
    with psycopg.connect(rows_url) as conn:
        assert conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bookings_pkey'"
        ).fetchone() == ("PRIMARY KEY (id)",)
    run(target, "upgrade", "heads", options)
    assert row_counts(rows_url) == counts and _tenant_keys(rows_url) == keys
    assert _without_tenant_key(rows_url) == []
    code = invoke("verify", "--database-url", rows_url).exit_code
    assert code == 0


def test_an_apply_killed_midway_through_the_key_swap_is_finished_by_the_next(
    rows_url: str,
) -> None:
    """kill -9 of `venuedb apply` while booking_020 waits for a lock on allocations (the swap
    of bookings drops allocations' keys to it), zones already swapped in its own committed
    transaction: the database stays at booking_019, half swapped, and the next apply
    finishes the swap with every key right and every row kept."""
    import signal
    import time

    from tests.clihelpers import spawn

    target, options = Target(rows_url, "tests"), RunOptions(actor="tests")
    run(target, "upgrade", "booking_019", options)
    counts = row_counts(rows_url)
    reader = psycopg.connect(rows_url)
    reader.execute("SELECT 1 FROM allocations LIMIT 1")  # holds ACCESS SHARE until rollback
    try:
        apply = spawn(
            "apply", "booking_020", "--database-url", rows_url,
            "--lock-timeout", "200ms", "--retries", "20",
        )  # fmt: skip
        with psycopg.connect(rows_url, autocommit=True) as admin:
            deadline = time.monotonic() + 60
            while not scalar(
                admin,
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'allocations'::regclass "
                "AND mode = 'AccessExclusiveLock' AND NOT granted)",
            ):
                assert time.monotonic() < deadline and apply.poll() is None, "no swap waiting"
                time.sleep(0.02)
            apply.send_signal(signal.SIGKILL)
            apply.wait(30)
            half: dict[str, str] = dict(
                admin.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname IN ('zones_pkey', 'bookings_pkey')"
                ).fetchall()
            )
    finally:
        reader.rollback()
        reader.close()
    assert half == {
        "zones_pkey": "PRIMARY KEY (id, restaurant_id)",
        "bookings_pkey": "PRIMARY KEY (id)",
    }, "killed after zones' swap, before bookings'"
    assert _heads(rows_url)["booking"] == "booking_019"
    assert row_counts(rows_url) == counts
    again = invoke("apply", "booking_020", "--database-url", rows_url, "--json")
    assert again.exit_code == 0, again.output
    assert _heads(rows_url)["booking"] == "booking_020"
    assert _without_tenant_key(rows_url) == []
    assert row_counts(rows_url) == counts and _mismatches(rows_url) == 0
    assert invoke("verify", "--database-url", rows_url).exit_code == 0
