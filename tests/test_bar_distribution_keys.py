"""Release bar-distribution-keys (issue 22): every key between the bar tables includes
bar_id, so the tables can be distributed by it (Citus).

The rule is read from the catalog, for the bar tables as the release classifies them
(distributed by bar_id, reference, local): it holds at the heads and is broken, exactly
where the release says, at bar_017. Each guarantee a dropped or moved key gave is broken
on purpose from SQL and still refused; the backfills that walk the tables by id still run;
bar_018 and bar_019 go down and up with rows in every table, and bar_019 resumes after a
swap a dead run left half done.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.clihelpers import as_json, invoke, verify
from tests.conftest import DATA, load_sql, row_counts
from tests.queries import scalar
from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import find_release
from toolkit.server.connection import Target

# The bar tables as migrations/distribution.toml classifies them: distributed tables and
# the column they are distributed by, reference tables (bars, the tenants themselves),
# local ones.
DISTRIBUTED = {
    "bar_members": "bar_id",
    "sales": "bar_id",
    "consignments": "bar_id",
    "returns": "bar_id",
    "server_name_mappings": "bar_id",
    "server_id_resolution_log": "bar_id",
    "orphaned_sales": "bar_id",
}
REFERENCE = {"auth.users", "feature_flags", "bars"}
LOCAL = {"audit_logs", "migration_server_id_log"}
BAR_TABLES = sorted([*DISTRIBUTED, *LOCAL, "feature_flags"])

# What the rule finds at bar_017, before the release.
BEFORE = {
    "bar_members: bar_members_pkey without bar_id",
    "sales: sales_pkey without bar_id",
    "consignments: consignments_pkey without bar_id",
    "returns: returns_pkey without bar_id",
    "server_name_mappings: server_name_mappings_pkey without bar_id",
    "server_id_resolution_log: server_id_resolution_log_pkey without bar_id",
    "orphaned_sales: orphaned_sales_pkey without bar_id",
    "returns: returns_sale_id_fkey -> sales without bar_id on both sides",
}

BAR_A = "60000000-0000-4000-8000-00000000000a"
BAR_B = "60000000-0000-4000-8000-00000000000b"
OWNER = "00000000-0000-4000-8000-0000000000a1"
OPTIONS = RunOptions(actor="tests")


def _table(name: str) -> str:
    return name if "." in name else f"public.{name}"


# Each unique index of a table with its columns (expressions have none).
UNIQUE_INDEXES = """
SELECT c.relname, array_agg(a.attname::text)
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisunique
GROUP BY c.relname
"""
# Each foreign key from or to the tables: its name, both tables, both column lists in order.
FOREIGN_KEYS = """
SELECT k.conname, k.conrelid::regclass::text, k.confrelid::regclass::text,
       array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS c (n, o)
             JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = c.n ORDER BY c.o),
       array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS c (n, o)
             JOIN pg_attribute AS a ON a.attrelid = k.confrelid AND a.attnum = c.n ORDER BY c.o)
FROM pg_constraint AS k
WHERE k.contype = 'f' AND (k.conrelid = ANY (%(t)s::regclass[]) OR k.confrelid = ANY (%(t)s::regclass[]))
"""


def _key_violations(conn: psycopg.Connection[Any]) -> set[str]:
    """A distributed table's distribution column is NOT NULL and in every unique index
    (a primary, unique or exclusion key has one)."""
    found = set()
    for table, key in DISTRIBUTED.items():
        if scalar(
            conn,
            "SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
            (_table(table), key),
        ):
            found.add(f"{table}: {key} nullable")
        for name, columns in conn.execute(UNIQUE_INDEXES, (_table(table),)).fetchall():
            if key not in columns:
                found.add(f"{table}: {name} without {key}")
    return found


def _fk_violation(name: str, source: str, target: str, cols: list[str], refs: list[str]) -> str:
    """Why this foreign key breaks the rule, or "" when it does not."""
    if target in LOCAL:
        return f"{source}: {name} references local {target}"
    if source in LOCAL and target in DISTRIBUTED:
        return f"{source}: {name}, a local table, references distributed {target}"
    if source in DISTRIBUTED and target in DISTRIBUTED:
        paired = (DISTRIBUTED[source], DISTRIBUTED[target]) in zip(cols, refs, strict=True)
        return "" if paired else f"{source}: {name} -> {target} without bar_id on both sides"
    if source in DISTRIBUTED and target not in REFERENCE:
        return f"{source}: {name} -> unclassified {target}"
    return ""


def violations(url: str) -> set[str]:
    """Where the bar tables break the distribution rule (Citus's): a distributed table's
    primary, unique and exclusion keys include its distribution column, which is NOT NULL;
    a foreign key between distributed tables pairs their distribution columns; a
    distributed table references only distributed or reference tables; a local table
    references only reference tables; nothing references a local table."""
    tables = [_table(t) for t in [*DISTRIBUTED, *LOCAL]]
    with psycopg.connect(url) as conn:
        keys = conn.execute(FOREIGN_KEYS, {"t": tables}).fetchall()
        found = _key_violations(conn)
    for name, source, target, cols, refs in keys:
        found.add(_fk_violation(name, source, target, cols, refs))
    return found - {""}


def _heads(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {
            r[0].split("_")[0]: r[0]
            for r in conn.execute("SELECT version_num FROM alembic_version")
        }


def _primary_keys(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'p' AND conrelid = ANY(%s::regclass[])",
                ([_table(t) for t in BAR_TABLES],),
            ).fetchall()
        )


def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the bar tables, in a stable order."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM public.{table} ORDER BY 1, 2").fetchall()
            for table in BAR_TABLES
        }


@pytest.fixture
def data_url(db_url: str) -> str:
    """The heads, holding the baseline's bar rows and what bar_017's tables hold by then."""
    for rows in ("core_001", "bar_001", "bar_017"):
        load_sql(db_url, DATA / "rows" / f"{rows}.sql")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO auth.users (id, email) VALUES (%s, 'a1@test')", (OWNER,))
        conn.execute(
            "INSERT INTO bars (id, name, owner_id) VALUES (%s, 'Bar A', %s), (%s, 'Bar B', %s)",
            (BAR_A, OWNER, BAR_B, OWNER),
        )
    return db_url


def _sale(conn: psycopg.Connection[Any], bar: str) -> str:
    return str(
        scalar(conn, "INSERT INTO sales (bar_id, total) VALUES (%s, 1) RETURNING id", (bar,))
    )


def test_the_release_is_bar_018_and_bar_019() -> None:
    release = find_release("bar-distribution-keys")
    assert release is not None
    assert (release.branch, release.revisions) == ("bar", ("bar_018", "bar_019"))


def test_the_rule_holds_at_the_heads_and_was_broken_before(data_url: str) -> None:
    assert violations(data_url) == set()
    assert _primary_keys(data_url) == {
        "bar_members": "PRIMARY KEY (bar_id, id)",
        "sales": "PRIMARY KEY (bar_id, id)",
        "consignments": "PRIMARY KEY (bar_id, id)",
        "returns": "PRIMARY KEY (bar_id, id)",
        "server_name_mappings": "PRIMARY KEY (bar_id, id)",
        "server_id_resolution_log": "PRIMARY KEY (bar_id, id)",
        "orphaned_sales": "PRIMARY KEY (bar_id, sale_id)",
        "audit_logs": "PRIMARY KEY (id)",
        "migration_server_id_log": "PRIMARY KEY (id)",
        "feature_flags": "PRIMARY KEY (name)",
    }
    run(Target(data_url, "tests"), "downgrade", "bar_017", OPTIONS)
    assert violations(data_url) == BEFORE


def test_a_return_still_names_an_existing_sale_of_its_own_bar(data_url: str) -> None:
    """returns_sale_id_fkey is gone: returns_bar_id_sale_id_fkey alone refuses what it did."""
    with psycopg.connect(data_url, autocommit=True) as conn:
        sale_a, sale_b = _sale(conn, BAR_A), _sale(conn, BAR_B)
        insert = "INSERT INTO returns (bar_id, sale_id, amount) VALUES (%s, %s, 1) RETURNING id"
        with pytest.raises(errors.ForeignKeyViolation, match="returns_bar_id_sale_id_fkey"):
            conn.execute(insert, (BAR_A, str(uuid.uuid4())))  # no such sale
        with pytest.raises(errors.ForeignKeyViolation, match="returns_bar_id_sale_id_fkey"):
            conn.execute(insert, (BAR_A, sale_b))  # another bar's sale
        returned = scalar(conn, insert, (BAR_A, sale_a))
        with pytest.raises(errors.ForeignKeyViolation, match="returns_bar_id_sale_id_fkey"):
            conn.execute("UPDATE returns SET bar_id = %s WHERE id = %s", (BAR_B, returned))
        with pytest.raises(errors.ForeignKeyViolation, match="returns_bar_id_sale_id_fkey"):
            conn.execute("UPDATE sales SET bar_id = %s WHERE id = %s", (BAR_B, sale_a))
        # Deleting the sale still only clears the return's sale_id.
        conn.execute("DELETE FROM sales WHERE id = %s", (sale_a,))
        assert conn.execute(
            "SELECT bar_id::text, sale_id FROM returns WHERE id = %s", (returned,)
        ).fetchone() == (BAR_A, None)


def test_the_primary_keys_refuse_a_second_row_of_a_bar(data_url: str) -> None:
    with psycopg.connect(data_url, autocommit=True) as conn:
        sale = _sale(conn, BAR_A)
        for table, columns, values in (
            ("sales", "id, bar_id, total", (sale, BAR_A, 1)),
            ("orphaned_sales", "sale_id, bar_id, created_at", (sale, BAR_A, "2030-01-01")),
        ):
            if table == "orphaned_sales":
                conn.execute(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s)", values)
            with pytest.raises(errors.UniqueViolation, match=f"{table}_pkey"):
                conn.execute(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s)", values)
        with pytest.raises(errors.NotNullViolation):
            conn.execute(
                "INSERT INTO server_id_resolution_log (bar_id, outcome) VALUES (NULL, 'no_name')"
            )
        # The identity still numbers the log, under the new key.
        first = scalar(
            conn,
            "INSERT INTO server_id_resolution_log (bar_id, outcome) "
            "VALUES (%s, 'no_name') RETURNING id",
            (BAR_A,),
        )
        second = scalar(
            conn,
            "INSERT INTO server_id_resolution_log (bar_id, outcome) "
            "VALUES (%s, 'no_name') RETURNING id",
            (BAR_B,),
        )
        assert second > first


def test_audit_logs_keep_their_key_to_bars(data_url: str) -> None:
    """audit_logs is local and bars a reference table, which a local table may reference:
    the key stays, an audit row of a deleted bar loses its bar_id, an unknown bar is refused."""
    with psycopg.connect(data_url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_logs (event, level) VALUES ('auth.login', 'error')")
        conn.execute("INSERT INTO audit_logs (bar_id, event) VALUES (%s, 'bar.closed')", (BAR_B,))
        conn.execute("DELETE FROM bars WHERE id = %s", (BAR_B,))
        assert conn.execute(
            "SELECT bar_id FROM audit_logs WHERE event = 'bar.closed'"
        ).fetchall() == [(None,)]
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO audit_logs (bar_id, event) VALUES (%s, 'x')", (str(uuid.uuid4()),)
            )


def test_reads_by_id_alone_keep_an_index(data_url: str) -> None:
    """The backfills' keyset walk and the checks' lookups by id name no bar."""
    with psycopg.connect(data_url) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        for table in ("sales", "consignments", "returns"):
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    f"EXPLAIN SELECT t.id FROM public.{table} AS t WHERE t.id > %s "
                    "ORDER BY t.id LIMIT 100",
                    (str(uuid.UUID(int=0)),),
                ).fetchall()
            )
            assert f"{table}_id_idx" in plan, plan


def test_the_server_id_backfills_walk_the_tables_after_the_release(data_url: str) -> None:
    with psycopg.connect(data_url, autocommit=True) as conn:
        conn.execute("UPDATE sales SET server_id = NULL")
        conn.execute("DELETE FROM migration_server_id_log")
        todo = scalar(conn, "SELECT count(*) FROM sales")
    for name in ("sales_server_id", "consignments_server_id", "returns_server_id"):
        result = invoke("backfill", "run", name, "--database-url", data_url, "--json")
        assert result.exit_code == 0, result.output
        assert as_json(result)["state"] == "finished"
    with psycopg.connect(data_url) as conn:
        assert (
            scalar(conn, "SELECT count(*) FROM migration_server_id_log WHERE table_name = 'sales'")
            == todo
        )
    assert violations(data_url) == set()


def test_down_and_up_with_the_rows_kept(data_url: str) -> None:
    target = Target(data_url, "tests")
    counts, contents, keys = row_counts(data_url), _contents(data_url), _primary_keys(data_url)
    assert all(counts[f"public.{t}"] > 0 for t in BAR_TABLES), counts
    run(target, "downgrade", "bar_017", OPTIONS)
    assert _heads(data_url)["bar"] == "bar_017"
    assert row_counts(data_url) == counts and _contents(data_url) == contents
    with psycopg.connect(data_url) as conn:
        assert dict(
            conn.execute(
                "SELECT conname, convalidated FROM pg_constraint WHERE conname IN "
                "('returns_sale_id_fkey', 'audit_logs_bar_id_fkey', 'returns_bar_id_sale_id_fkey')"
            ).fetchall()
        ) == {
            "returns_sale_id_fkey": True,
            "audit_logs_bar_id_fkey": True,
            "returns_bar_id_sale_id_fkey": True,
        }
    assert _primary_keys(data_url)["sales"] == "PRIMARY KEY (id)"
    code, report = verify(data_url)
    assert code == 0, report
    run(target, "upgrade", "heads", OPTIONS)
    assert _heads(data_url)["bar"] == "bar_019"
    assert row_counts(data_url) == counts and _contents(data_url) == contents
    assert _primary_keys(data_url) == keys
    code, report = verify(data_url)
    assert code == 0, report


def test_a_swap_left_half_done_is_finished_by_the_next_run(data_url: str) -> None:
    """A dead run of bar_019 that swapped sales and built consignments' index only."""
    target = Target(data_url, "tests")
    run(target, "downgrade", "bar_018", OPTIONS)
    with psycopg.connect(data_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX sales_id_idx ON sales (id)")
        conn.execute("ALTER TABLE sales DROP CONSTRAINT sales_pkey")
        conn.execute(
            "ALTER TABLE sales ADD CONSTRAINT sales_pkey PRIMARY KEY USING INDEX idx_sales_bar_id_id"
        )
        conn.execute("CREATE UNIQUE INDEX consignments_bar_id_id_key ON consignments (bar_id, id)")
    run(target, "upgrade", "heads", OPTIONS)
    assert violations(data_url) == set()
    code, report = verify(data_url)
    assert code == 0, report
    with psycopg.connect(data_url) as conn:  # nothing built twice
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'sales' "
                "AND indexdef LIKE '%%(bar_id, id)'",
            )
            == 1
        )
