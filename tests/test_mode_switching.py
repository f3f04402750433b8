"""Release mode-switching (seed 002): server_id, server_name_mappings, RLS, the backfill.

The seed's own verification queries run verbatim (those that are not valid PostgreSQL
are asserted to fail), then the row-level security matrix, the backfill rules, a killed
and resumed backfill, ON DELETE SET NULL, create_sale_by_server_name and the rollback.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests import actors
from tests.bars import Bar, Member, add_bars, map_servers
from tests.clihelpers import (
    as_json,
    invoke,
    rollback_with_data_loss,
    spawn,
    until_no_venuedb_session,
)
from tests.conftest import catalog_diff
from tests.queries import dict_of, one, scalar
from toolkit.integrity import catalog as snapshot
from toolkit.venue.bar_sample import load_bar_sample

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py

BAR_A = "10000000-0000-4000-8000-00000000000a"
BAR_B = "10000000-0000-4000-8000-00000000000b"
# Each bar's staff: a key of U (post + bar) per post, and the role the post has in the bar.
POSTS = {"owner": "owner", "manager": "manager", "server1": "server", "server2": "server"}
U = {
    f"{post}{bar}": f"00000000-0000-4000-8000-00000000{bar.lower()}{n:03d}"
    for bar in ("A", "B")
    for n, post in enumerate(POSTS, start=1)
}
BARS = {"A": BAR_A, "B": BAR_B}


def _staffed(bar: str, name: str, mode: str, *display_names: str) -> Bar:
    """Bar `bar` (A or B) whose posts (POSTS, in order) hold people named `display_names`."""
    return Bar(
        BARS[bar],
        name,
        mode,
        [
            Member(U[f"{post}{bar}"], role, display_name)
            for (post, role), display_name in zip(POSTS.items(), display_names, strict=True)
        ],
    )


STAFFED_BARS = (
    _staffed(
        "A", "Test Bar 1", "simplified", "Olga Owner", "Max Manager", "Marie Claire", "Sofia Mensah"
    ),
    _staffed("B", "Test Bar 2", "full", "Bob Owner", "Mia Manager", "Marie Claire", "Kofi Okafor"),
)
# A row of each table a server is credited in, written by the bar's manager; in this order,
# for the return is of the sale just written (%(sales)s).
ACTIVITY_INSERTS = {
    "sales": "INSERT INTO sales (bar_id, created_by, server_id, server_name, total) "
    "VALUES (%(bar)s, %(manager)s, %(server)s, 'x', 5) RETURNING id::text",
    "consignments": "INSERT INTO consignments (bar_id, created_by, server_id, product_name, "
    "quantity) VALUES (%(bar)s, %(manager)s, %(server)s, 'Wine', 1) RETURNING id::text",
    "returns": "INSERT INTO returns (bar_id, sale_id, created_by, server_id, amount) "
    "VALUES (%(bar)s, %(sales)s, %(manager)s, %(server)s, 5) RETURNING id::text",
}
ACTIVITY = tuple(ACTIVITY_INSERTS)


def _fixture(url: str) -> dict[str, list[tuple[str, str, str | None]]]:
    """Bars A (simplified) and B (full), their staff, and per table rows (id, bar, server_id)."""
    rows: dict[str, list[tuple[str, str, str | None]]] = {t: [] for t in ACTIVITY}
    with psycopg.connect(url, autocommit=True) as conn:
        add_bars(conn, STAFFED_BARS)
        for bar, bar_id in BARS.items():
            map_servers(conn, bar_id, [U[f"server1{bar}"], U[f"server2{bar}"]])
        for bar, bar_id in BARS.items():
            servers = [U[f"server1{bar}"], U[f"server1{bar}"], U[f"server2{bar}"], None]
            for server in servers:
                written = {"bar": bar_id, "manager": U[f"manager{bar}"], "server": server}
                for table, insert in ACTIVITY_INSERTS.items():
                    row_id: str = scalar(conn, insert, written)
                    written[table] = row_id
                    rows[table].append((row_id, bar_id, server))
    return rows


def acting(url: str, actor: str) -> AbstractContextManager[psycopg.Connection]:
    """A transaction as `actor` (anon, service_role, or a key of U as authenticated); rolled back."""
    return actors.acting(url, actor, U)


@pytest.fixture
def fixture_db(db_url: str) -> tuple[str, dict[str, list[tuple[str, str, str | None]]]]:
    return db_url, _fixture(db_url)


# ---------------------------------------------------------------------------------------
# The seed's queries, verbatim.

STEP_CHECKS = [
    """SELECT column_name FROM information_schema.columns
WHERE table_name='sales' AND column_name='server_id';""",
    """SELECT COUNT(*) FROM server_name_mappings;""",
    """SELECT COUNT(*) FROM pg_policies
WHERE tablename='sales' AND policyname LIKE '%simplified%';""",
    """SELECT indexname FROM pg_indexes
WHERE tablename='bars' AND indexname LIKE '%operating_mode%';""",
    """SELECT fallback_used, COUNT(*) as count FROM migration_server_id_log
GROUP BY fallback_used;""",
    """SELECT * FROM migration_server_id_log
WHERE fallback_used = true
ORDER BY created_at DESC
LIMIT 10;""",
]
# Invalid: information_schema.referential_constraints has no table_name and no
# delete_option column (it has delete_rule).
STEP4_FK_CHECK = """SELECT constraint_name, delete_option
FROM information_schema.referential_constraints
WHERE table_name='sales' AND constraint_name LIKE '%server_id%';"""

POST_MIGRATION = [
    """SELECT
  COUNT(*) as total_sales,
  COUNT(server_id) as with_server_id,
  COUNT(*) - COUNT(server_id) as without_server_id
FROM sales;""",
    """SELECT COUNT(*) FROM sales
WHERE server_id IS NOT NULL AND server_id NOT IN (SELECT id FROM auth.users);""",
    """EXPLAIN ANALYZE
SELECT COUNT(*) FROM bars
WHERE settings->>'operatingMode' = 'simplified';""",
    """SELECT COUNT(*) FROM migration_server_id_log
WHERE fallback_reason LIKE '%failed%';""",
]

ROLLOUT_4A = """UPDATE bars SET settings = jsonb_set(
  settings,
  '{operatingMode}',
  '"simplified"'::jsonb
)
WHERE id IN (SELECT id FROM bars WHERE name IN ('Test Bar 1', 'Test Bar 2'))
  AND settings->>'operatingMode' IS NULL;"""
# Invalid: UPDATE has no LIMIT (syntax error); max(uuid) / 2 has no meaning either.
ROLLOUT_4B = """UPDATE bars
SET settings = jsonb_set(settings, '{operatingMode}', '"simplified"'::jsonb)
WHERE id IN (
  SELECT id FROM bars
  WHERE id < (SELECT max(id) FROM bars) / 2  -- First 50% by ID
    AND settings->>'operatingMode' IS NULL
)
LIMIT 10;  -- Still gradual"""
ROLLOUT_4C = """UPDATE bars
SET settings = jsonb_set(settings, '{operatingMode}', '"simplified"'::jsonb)
WHERE settings->>'operatingMode' IS NULL;"""

MONITORING = [
    """SELECT
  DATE_TRUNC('minute', created_at) as minute,
  COUNT(*) as error_count,
  COUNT(DISTINCT bar_id) as affected_bars
FROM audit_logs
WHERE error_message LIKE '%server_id%'
GROUP BY minute
ORDER BY minute DESC
LIMIT 60;""",
    """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  COUNT(CASE WHEN server_id IS NOT NULL THEN 1 END) * 100.0 / COUNT(*) as success_rate
FROM sales
WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY hour
ORDER BY hour DESC;""",
]
# Invalid: pg_stat_statements is an extension not installed here, and it has no
# `duration` column anyway (mean_exec_time / total_exec_time).
MONITORING_PG_STAT = """SELECT
  query,
  COUNT(*) as executions,
  AVG(duration) as avg_duration_ms
FROM pg_stat_statements
WHERE query LIKE '%settings%operatingMode%'
GROUP BY query
ORDER BY avg_duration_ms DESC;"""
# Invalid: ENABLE_SWITCHING_MODE is an application flag, not a column of bars.
MONITORING_ADOPTION = """SELECT
  CASE WHEN ENABLE_SWITCHING_MODE THEN 'Enabled' ELSE 'Disabled' END as feature_status,
  COUNT(*) as bar_count,
  SUM(CASE WHEN EXTRACT(EPOCH FROM (NOW() - last_sale_at)) < 86400 THEN 1 ELSE 0 END) as active_bars
FROM bars
GROUP BY feature_status;"""

# The last root-cause query: the last hour's sales of simplified bars without a server
# (test_bar_observability runs it beside the orphaned_sales_created alert).
ROOT_CAUSE_ORPHANED_SALES = """SELECT COUNT(*) as orphaned_sales
FROM sales
WHERE created_at > (NOW() - INTERVAL '1 hour')
  AND server_id IS NULL
  AND bar_id IN (
    SELECT id FROM bars
    WHERE settings->>'operatingMode' = 'simplified'
  );"""
ROOT_CAUSE = [
    """SELECT
  error_type,
  COUNT(*) as count,
  MAX(created_at) as last_occurrence
FROM audit_logs
WHERE created_at > NOW() - INTERVAL '1 hour'
  AND error_message LIKE '%server_id%'
GROUP BY error_type
ORDER BY count DESC;""",
    """SELECT
  fallback_reason,
  COUNT(*) as count,
  ARRAY_AGG(DISTINCT bar_id) as affected_bars
FROM migration_server_id_log
WHERE fallback_used = true
GROUP BY fallback_reason
ORDER BY count DESC;""",
    ROOT_CAUSE_ORPHANED_SALES,
]

RLS_VERIFICATION = [
    """SELECT tablename, rowsecurity
FROM pg_tables
WHERE tablename IN ('sales', 'consignments', 'returns')
  AND schemaname = 'public';""",
    """SELECT tablename, policyname
FROM pg_policies
WHERE tablename IN ('sales', 'consignments', 'returns');""",
]

HEALTH = [
    """SELECT
  COUNT(CASE WHEN settings->>'operatingMode' = 'simplified' THEN 1 END) * 100.0 / COUNT(*) as adoption_rate
FROM bars;""",
    """SELECT
  COUNT(CASE WHEN server_id IS NOT NULL THEN 1 END) * 100.0 / COUNT(*) as coverage
FROM sales
WHERE created_at > NOW() - INTERVAL '24 hours';""",
    """EXPLAIN ANALYZE
SELECT COUNT(*) FROM sales
WHERE server_id = '<test-server-uuid>'
LIMIT 100;""",
    """SELECT COUNT(*) as error_count
FROM audit_logs
WHERE created_at > NOW() - INTERVAL '5 minutes'
  AND level = 'error';""",
]

DAY1 = [
    """SELECT COUNT(CASE WHEN server_id IS NOT NULL THEN 1 END) * 100.0 / COUNT(*) as coverage
FROM sales WHERE created_at > NOW() - INTERVAL '24 hours';""",
    """SELECT COUNT(*) FROM sales
WHERE server_id IS NOT NULL
  AND server_id NOT IN (SELECT id FROM auth.users);""",
    """SELECT COUNT(*) FROM sales
WHERE server_id != '<current_user_id>'
  AND '<current_user_id>' IN (
    SELECT user_id FROM bar_members
    WHERE bar_id = sales.bar_id
  );""",
]
# Invalid: the correlated subquery uses sales.created_at, which is not grouped (GROUP BY
# hour groups date_trunc('hour', created_at) of the outer query only).
DAY1_TREND = """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  COUNT(*) as sales_with_server_id,
  (SELECT COUNT(*) FROM sales s2
   WHERE DATE_TRUNC('hour', s2.created_at) = DATE_TRUNC('hour', sales.created_at)) as total_sales
FROM sales
WHERE server_id IS NOT NULL
  AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY hour;"""


def _run_backfills(url: str, batch_size: int = 1000) -> None:
    for name in ("sales_server_id", "consignments_server_id", "returns_server_id"):
        result = invoke(
            "backfill", "run", name, "--batch-size", str(batch_size), "--database-url", url
        )
        assert result.exit_code == 0, result.output


@pytest.fixture
def sample_db(db_url: str) -> tuple[str, dict[str, int]]:
    with psycopg.connect(db_url) as conn:
        counts = load_bar_sample(conn, bars=12, sales=6000, seed=7)
        conn.commit()
    return db_url, counts


def test_seed_step_checks_before_and_after_the_backfill(sample_db: tuple[str, dict]) -> None:
    url, counts = sample_db
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(STEP_CHECKS[0]).fetchall() == [("server_id",)]
        assert scalar(conn, STEP_CHECKS[1]) == counts["server_name_mappings"]
        assert scalar(conn, STEP_CHECKS[2]) >= 1
        assert conn.execute(STEP_CHECKS[3]).fetchall() == [("idx_bars_operating_mode",)]
        assert conn.execute(STEP_CHECKS[4]).fetchall() == []
        with pytest.raises(errors.UndefinedColumn):
            conn.execute(STEP4_FK_CHECK)
        # What the step meant: every server_id foreign key is ON DELETE SET NULL.
        rules = conn.execute(
            "SELECT rc.constraint_name, rc.delete_rule "
            "FROM information_schema.referential_constraints rc "
            "JOIN information_schema.table_constraints tc USING (constraint_schema, constraint_name) "
            "WHERE tc.table_name = 'sales' AND rc.constraint_name LIKE '%server_id%'"
        ).fetchall()
        assert rules == [("sales_server_id_fkey", "SET NULL")]
    _run_backfills(url)
    with psycopg.connect(url, autocommit=True) as conn:
        by_fallback: dict[bool, int] = dict_of(conn, STEP_CHECKS[4])
        examined = counts["sales"] + counts["consignments"] + counts["returns"]
        assert sum(by_fallback.values()) == examined
        assert by_fallback[False] > 0.8 * examined and by_fallback[True] > 0
        warnings = conn.execute(STEP_CHECKS[5]).fetchall()
        assert len(warnings) == 10 and all(w[6] is True for w in warnings)


def test_seed_post_migration_health_and_day1_queries(sample_db: tuple[str, dict]) -> None:
    url, counts = sample_db
    _run_backfills(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        total, with_id, without = one(conn, POST_MIGRATION[0])
        assert total == counts["sales"] and with_id + without == total
        assert with_id > 0.95 * total  # the seed's bar
        assert scalar(conn, POST_MIGRATION[1]) == 0
        # Twelve bars fit in one page: a sequential scan is the right plan there. With a
        # realistic number of bars the planner takes idx_bars_operating_mode.
        conn.execute(
            "INSERT INTO bars (name, settings) SELECT 'Filler ' || g, '{\"operatingMode\": \"full\"}' "
            "FROM generate_series(1, 5000) g"
        )
        conn.execute("ANALYZE bars")
        plan = "\n".join(r[0] for r in conn.execute(POST_MIGRATION[2]).fetchall())
        assert "idx_bars_operating_mode" in plan, plan
        # Backfill v2 (bar-observability, issue 19): the seed's `LIKE '%failed%'` finds
        # exactly the rows the backfill left unresolved (v1's codes read 0 here).
        unresolved = "SELECT count(*) FROM migration_server_id_log WHERE resolved_server_id IS NULL"
        failed = scalar(conn, POST_MIGRATION[3])
        assert failed == scalar(conn, unresolved) > 0

        for query in MONITORING + ROOT_CAUSE:
            conn.execute(query).fetchall()
        rates = conn.execute(MONITORING[1]).fetchall()
        assert rates and all(0 <= r[1] <= 100 for r in rates)
        with pytest.raises(errors.UndefinedTable):
            conn.execute(MONITORING_PG_STAT)
        with pytest.raises(errors.UndefinedColumn):
            conn.execute(MONITORING_ADOPTION)

        assert conn.execute(RLS_VERIFICATION[0]).fetchall() and all(
            r[1] for r in conn.execute(RLS_VERIFICATION[0]).fetchall()
        )
        policies = conn.execute(RLS_VERIFICATION[1]).fetchall()
        for table in ACTIVITY:
            names = [p for t, p in policies if t == table]
            assert {"select", "insert", "update", "delete"} <= {
                kind
                for kind in ("select", "insert", "update", "delete")
                if any(kind in n for n in names)
            }

        assert 0 < scalar(conn, HEALTH[0]) < 100
        assert scalar(conn, HEALTH[1]) > 95
        server = scalar(
            conn, "SELECT server_id::text FROM sales WHERE server_id IS NOT NULL LIMIT 1"
        )
        plan = "\n".join(
            r[0] for r in conn.execute(HEALTH[2].replace("<test-server-uuid>", server)).fetchall()
        )
        assert "idx_sales_server_id" in plan and "Seq Scan" not in plan, plan
        assert scalar(conn, HEALTH[3]) >= 0

        assert scalar(conn, DAY1[0]) >= 95
        assert scalar(conn, DAY1[1]) == 0
        with pytest.raises(errors.GroupingError):
            conn.execute(DAY1_TREND)
        # As the owner of the tables (no RLS) the RLS query sees other servers' sales...
        assert scalar(conn, DAY1[2].replace("<current_user_id>", server)) > 0
    # ... as that server through RLS it sees none: the seed's expected 0.
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL ROLE authenticated")
        conn.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", (server,))
        assert scalar(conn, DAY1[2].replace("<current_user_id>", server)) == 0
        assert scalar(conn, "SELECT count(*) FROM sales") > 0
        assert (
            scalar(
                conn, "SELECT count(*) FROM sales WHERE server_id IS DISTINCT FROM %s", (server,)
            )
            == 0
        )


def test_seed_rollout_updates(fixture_db: tuple[str, Any]) -> None:
    url, _ = fixture_db
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE bars SET settings = settings - 'operatingMode' WHERE id = %s", (BAR_A,)
        )
        conn.execute("INSERT INTO bars (name) VALUES ('Unset 1'), ('Unset 2')")
        assert conn.execute(ROLLOUT_4A).rowcount == 1  # Test Bar 1 only: Test Bar 2 is 'full'
        with pytest.raises(errors.SyntaxError):
            conn.execute(ROLLOUT_4B)
        with pytest.raises(errors.UndefinedFunction):  # even without the LIMIT: max(uuid) / 2
            conn.execute("SELECT id FROM bars WHERE id < (SELECT max(id) FROM bars) / 2")
        assert conn.execute(ROLLOUT_4C).rowcount == 2
        modes: dict[str, str] = dict_of(conn, "SELECT name, settings->>'operatingMode' FROM bars")
        assert modes == {
            "Test Bar 1": "simplified",
            "Test Bar 2": "full",
            "Unset 1": "simplified",
            "Unset 2": "simplified",
        }


# ---------------------------------------------------------------------------------------
# Row-level security: every (role, table, operation) cell.

ACTORS = (
    "anon",
    "server1A",
    "managerA",
    "ownerA",
    "server1B",
    "managerB",
    "ownerB",
    "service_role",
)
DENIED = "denied"


def _bar_of(actor: str) -> str | None:
    return BARS[actor[-1]] if actor[-1] in BARS and actor != "anon" else None


def _role_of(actor: str) -> str:
    return actor.rstrip("AB").rstrip("12")


def _all_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(url) as conn:
        out = {}
        for table in ACTIVITY:
            out[table] = [
                {"id": r[0], "bar": r[1], "user": r[2]}
                for r in conn.execute(
                    f"SELECT id::text, bar_id::text, server_id::text FROM {table}"
                )
            ]
        out["server_name_mappings"] = [
            {"id": r[0], "bar": r[1], "user": r[2]}
            for r in conn.execute(
                "SELECT id::text, bar_id::text, user_id::text FROM server_name_mappings"
            )
        ]
        out["bars"] = [
            {"id": r[0], "bar": r[0], "user": None}
            for r in conn.execute("SELECT id::text FROM bars")
        ]
        out["bar_members"] = [
            {"id": r[0], "bar": r[1], "user": r[2], "role": r[3]}
            for r in conn.execute(
                "SELECT id::text, bar_id::text, user_id::text, role FROM bar_members"
            )
        ]
    return out


def _expected_select(table: str, actor: str, rows: list[dict[str, Any]]) -> set[str] | str:
    if actor == "anon":
        return DENIED
    if actor == "service_role":
        return {r["id"] for r in rows}
    bar, role, uid = _bar_of(actor), _role_of(actor), U[actor]
    mine = [r for r in rows if r["bar"] == bar]
    if role in ("owner", "manager"):
        return {r["id"] for r in mine}
    if table == "bars":
        return {r["id"] for r in mine}
    return {r["id"] for r in mine if r["user"] == uid}


def _expected_write(table: str, actor: str, op: str, rows: list[dict[str, Any]]) -> int | str:
    """Rows an UPDATE / DELETE of every row changes, as actor."""
    if actor == "anon":
        return DENIED
    if actor == "service_role":
        return len(rows)
    bar, role = _bar_of(actor), _role_of(actor)
    mine = [r for r in rows if r["bar"] == bar]
    if table == "bars":
        if op == "delete":
            return len(mine) if role == "owner" else 0
        return len(mine) if role in ("owner", "manager") else 0
    if table == "bar_members":
        if role == "owner":
            return len(mine)
        return len([r for r in mine if r["role"] == "server"]) if role == "manager" else 0
    return len(mine) if role in ("owner", "manager") else 0


def _expected_insert(table: str, actor: str) -> bool | str:
    """An insert into bar A (bars: a new bar owned by the actor)."""
    if actor == "anon":
        return DENIED
    if actor == "service_role" or table == "bars":
        return True
    if _bar_of(actor) != BAR_A:
        return False
    if table in ACTIVITY:
        return True  # servers their own row; managers/owners too (and on behalf: simplified)
    return _role_of(actor) in ("owner", "manager")


# An insert into bar A per table (bars: a new bar the actor owns). Rows of the ACTIVITY
# tables are by and for the actor, or by managerA for server1A when anon or service_role.
INSERTS = {
    "sales": "INSERT INTO sales (bar_id, created_by, server_id, total) "
    "VALUES (%(bar)s, %(creator)s, %(server)s, 1)",
    "consignments": "INSERT INTO consignments (bar_id, created_by, server_id, product_name, "
    "quantity) VALUES (%(bar)s, %(creator)s, %(server)s, 'Gin', 1)",
    "returns": "INSERT INTO returns (bar_id, created_by, server_id, amount) "
    "VALUES (%(bar)s, %(creator)s, %(server)s, 1)",
    "server_name_mappings": "INSERT INTO server_name_mappings (bar_id, user_id, server_name) "
    "VALUES (%(bar)s, %(server2A)s, 'Second Name')",
    "bars": "INSERT INTO bars (name, owner_id) VALUES ('New bar', %(uid)s)",
    "bar_members": "INSERT INTO bar_members (bar_id, user_id, role) "
    "VALUES (%(bar)s, %(server1B)s, 'server')",
}


def _insert(conn: psycopg.Connection, table: str, actor: str) -> None:
    uid = None if actor in ("anon", "service_role") else U[actor]
    creator, server = uid or U["managerA"], uid or U["server1A"]
    conn.execute(
        INSERTS[table], {"bar": BAR_A, "uid": uid, "creator": creator, "server": server, **U}
    )


TABLES = tuple(INSERTS)
UPDATES = {
    "sales": "UPDATE sales SET total = total",
    "consignments": "UPDATE consignments SET quantity = quantity",
    "returns": "UPDATE returns SET amount = amount",
    "server_name_mappings": "UPDATE server_name_mappings SET server_name = server_name",
    "bars": "UPDATE bars SET name = name",
    "bar_members": "UPDATE bar_members SET display_name = display_name",
}


@pytest.mark.parametrize("table", TABLES)
def test_rls_matrix(fixture_db: tuple[str, Any], table: str) -> None:
    url, _ = fixture_db
    rows = _all_rows(url)[table]
    checked = 0
    for actor in ACTORS:
        # select
        expected: Any = _expected_select(table, actor, rows)
        with acting(url, actor) as conn:
            if expected == DENIED:
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(f"SELECT id FROM {table}")
            else:
                got = {str(r[0]) for r in conn.execute(f"SELECT id FROM {table}")}
                assert got == expected, (table, actor, "select")
        # insert
        expected = _expected_insert(table, actor)
        with acting(url, actor) as conn:
            if expected is True:
                _insert(conn, table, actor)
            else:
                with pytest.raises(errors.InsufficientPrivilege):
                    _insert(conn, table, actor)
        # update, delete
        for op, sql in (("update", UPDATES[table]), ("delete", f"DELETE FROM {table}")):
            expected = _expected_write(table, actor, op, rows)
            with acting(url, actor) as conn:
                if expected == DENIED:
                    with pytest.raises(errors.InsufficientPrivilege):
                        conn.execute(sql)
                else:
                    assert conn.execute(sql).rowcount == expected, (table, actor, op)
        checked += 4
    assert checked == 4 * len(ACTORS)


def test_rls_simplified_insert_on_behalf_only_in_simplified_mode(
    fixture_db: tuple[str, Any],
) -> None:
    url, _ = fixture_db
    sql = "INSERT INTO sales (bar_id, created_by, server_id, total) VALUES (%s, %s, %s, 3)"
    with acting(url, "managerA") as conn:  # bar A is simplified: on behalf of a server
        conn.execute(sql, (BAR_A, U["managerA"], U["server1A"]))
    with (
        acting(url, "managerA") as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):  # not for someone outside the bar
        conn.execute(sql, (BAR_A, U["managerA"], U["server1B"]))
    with (
        acting(url, "managerB") as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):  # bar B is in full mode: only their own
        conn.execute(sql, (BAR_B, U["managerB"], U["server1B"]))
    with (
        acting(url, "server1A") as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):  # a server never records for a colleague
        conn.execute(sql, (BAR_A, U["server1A"], U["server2A"]))
    with (
        acting(url, "server1A") as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):  # ... nor as someone else
        conn.execute(sql, (BAR_A, U["managerA"], U["server1A"]))


# ---------------------------------------------------------------------------------------
# create_sale_by_server_name


def _call(conn: psycopg.Connection, bar: str, name: str | None) -> str:
    return str(
        scalar(
            conn,
            'SELECT public.create_sale_by_server_name(%s, %s, \'[{"product": "Beer"}]\', 4.5)',
            (bar, name),
        )
    )


def _switching(url: str, enabled: bool) -> None:
    """ENABLE_SWITCHING_MODE for every bar: the database's own flag (bar-integrity)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE feature_flags SET enabled = %s WHERE name = 'ENABLE_SWITCHING_MODE'",
            (enabled,),
        )


def _server_of(conn: psycopg.Connection, sale: str) -> str | None:
    server: str | None = scalar(conn, "SELECT server_id::text FROM sales WHERE id = %s", (sale,))
    return server


def test_create_sale_by_server_name(fixture_db: tuple[str, Any]) -> None:
    url, _ = fixture_db
    _switching(url, True)
    with acting(url, "managerA") as conn:
        sale = _call(conn, BAR_A, "  sofia   MENSAH ")
        assert _server_of(conn, sale) == U["server2A"]
    with acting(url, "ownerA") as conn:
        assert _server_of(conn, _call(conn, BAR_A, "marie claire")) == U["server1A"]
    with acting(url, "managerA") as conn:
        with pytest.raises(errors.NoDataFound) as unknown:
            _call(conn, BAR_A, "Ghost Writer")
        assert "Ghost Writer" in str(unknown.value) and BAR_A in str(unknown.value)
    with acting(url, "managerA") as conn, pytest.raises(errors.InvalidParameterValue):
        _call(conn, BAR_A, "   ")
    # Ambiguous: no mapping, two active members with the same display name.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM server_name_mappings WHERE bar_id = %s AND user_id = %s",
            (BAR_A, U["server2A"]),
        )
        conn.execute(
            "UPDATE bar_members SET display_name = 'Sam Twin' WHERE user_id IN (%s, %s)",
            (U["server1A"], U["server2A"]),
        )
    with acting(url, "managerA") as conn:
        with pytest.raises(errors.TooManyRows) as ambiguous:
            _call(conn, BAR_A, "sam  twin")
        assert "sam  twin" in str(ambiguous.value) and BAR_A in str(ambiguous.value)
    with acting(url, "managerA") as conn:  # the mapping still wins over display names
        assert _server_of(conn, _call(conn, BAR_A, "Marie Claire")) == U["server1A"]
    # A server cannot create sales for others in simplified mode.
    with acting(url, "server1A") as conn, pytest.raises(errors.InsufficientPrivilege):
        _call(conn, BAR_A, "Marie Claire")
    # Another bar's manager cannot use bar A.
    with acting(url, "managerB") as conn, pytest.raises(errors.InsufficientPrivilege):
        _call(conn, BAR_A, "Marie Claire")
    # Full mode: the server's own sale carries their id, whatever name is typed.
    with acting(url, "server1B") as conn:
        sale = _call(conn, BAR_B, "someone else")
        assert _server_of(conn, sale) == U["server1B"]
    # ENABLE_SWITCHING_MODE off (the database's flag): as before, no server_id.
    _switching(url, False)
    with acting(url, "managerA") as conn:
        sale = _call(conn, BAR_A, "Ghost Writer")
        assert _server_of(conn, sale) is None
    with acting(url, "server1B") as conn:
        assert _server_of(conn, _call(conn, BAR_B, None)) is None  # their own: visible
    # The caller no longer chooses: v1's fifth argument is gone.
    with acting(url, "managerA") as conn, pytest.raises(errors.UndefinedFunction):
        conn.execute(
            "SELECT public.create_sale_by_server_name(%s, 'Marie Claire', '[]', 1, true)",
            (BAR_A,),
        )
    with acting(url, "anon") as conn, pytest.raises(errors.InsufficientPrivilege):
        _call(conn, BAR_A, "Marie Claire")


# ---------------------------------------------------------------------------------------
# The backfill


def test_backfill_resolution_rules(fixture_db: tuple[str, Any]) -> None:
    url, _ = fixture_db
    gone, gone_mapped = (
        "00000000-0000-4000-8000-0000000dead1",
        "00000000-0000-4000-8000-0000000dead2",
    )
    cases = {
        # server_name typed, created_by -> expected (server_id, fallback_used, reason)
        " marie   CLAIRE ": (U["managerA"], U["server1A"], False, None),
        "SOFIA MENSAH": (None, U["server2A"], False, None),
        "Nobody Known": (U["managerA"], U["managerA"], True, "no_mapping_used_creator"),
        # Backfill v2 (bar-observability): unresolved rows say *_resolution_failed.
        "Also Unknown": (gone, None, True, "no_mapping_resolution_failed"),
        "Left Bar": (U["ownerA"], U["ownerA"], True, "no_mapping_used_creator"),
        None: (U["managerA"], U["managerA"], True, "no_server_name_used_creator"),
        "  ": (gone, None, True, "no_server_name_resolution_failed"),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM migration_server_id_log")
        conn.execute("UPDATE sales SET server_id = %s", (U["managerB"],))
        conn.execute("INSERT INTO auth.users (id) VALUES (%s), (%s)", (gone, gone_mapped))
        # A server who left: their mapping goes with their user (ON DELETE CASCADE).
        conn.execute(
            "INSERT INTO server_name_mappings (bar_id, user_id, server_name) "
            "VALUES (%s, %s, 'Left Bar')",
            (BAR_A, gone_mapped),
        )
        ids = {}
        for name, (creator, *_rest) in cases.items():
            ids[name] = scalar(
                conn,
                "INSERT INTO sales (bar_id, created_by, server_name, total) "
                "VALUES (%s, %s, %s, 2) RETURNING id::text",
                (BAR_A, creator, name),
            )
        conn.execute("DELETE FROM auth.users WHERE id IN (%s, %s)", (gone, gone_mapped))
    result = invoke(
        "backfill", "run", "sales_server_id", "--batch-size", "3", "--database-url", url, "--json"
    )
    assert result.exit_code == 0, result.output
    assert as_json(result)["changed"] == 5
    with psycopg.connect(url) as conn:
        for name, (_creator, server, fallback, reason) in cases.items():
            assert _server_of(conn, ids[name]) == server, name
            log = conn.execute(
                "SELECT resolved_server_id::text, fallback_used, fallback_reason, bar_id::text "
                "FROM migration_server_id_log WHERE table_name = 'sales' AND row_id = %s",
                (ids[name],),
            ).fetchall()
            assert log == [(server, fallback, reason, BAR_A)], name
        assert scalar(conn, "SELECT count(*) FROM migration_server_id_log") == 7
    # A rerun logs nothing twice; once a mapping exists, it resolves the rows left NULL.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO server_name_mappings (bar_id, user_id, server_name) "
            "VALUES (%s, %s, 'also unknown')",
            (BAR_A, U["server2A"]),
        )
    again = invoke("backfill", "run", "sales_server_id", "--restart", "--database-url", url)
    assert again.exit_code == 0, again.output
    with psycopg.connect(url) as conn:
        assert scalar(conn, "SELECT count(*) FROM migration_server_id_log") == 7
        assert _server_of(conn, ids["Also Unknown"]) == U["server2A"]
        assert conn.execute(
            "SELECT fallback_used, fallback_reason FROM migration_server_id_log WHERE row_id = %s",
            (ids["Also Unknown"],),
        ).fetchone() == (False, None)


def test_backfill_killed_mid_run_resumes_and_logs_every_row_once(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        counts = load_bar_sample(conn, bars=6, sales=3000, seed=11)
        conn.commit()
    runner = spawn(
        "backfill", "run", "sales_server_id", "--batch-size", "50", "--sleep", "30ms",
        "--database-url", db_url,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        status = invoke("backfill", "status", "sales_server_id", "--database-url", db_url, "--json")
        progress = as_json(status)["backfills"][0]
        if (progress.get("batches") or 0) >= 5:
            break
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    with psycopg.connect(db_url) as conn:
        logged = scalar(conn, "SELECT count(*) FROM migration_server_id_log")
    assert 0 < logged < counts["sales"]
    until_no_venuedb_session(db_url)  # the dead client's session, and its lock, are gone
    result = invoke("backfill", "run", "sales_server_id", "--batch-size", "500",
                    "--database-url", db_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT row_id) FROM migration_server_id_log"
        ).fetchone() == (counts["sales"], counts["sales"])
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM sales s WHERE NOT EXISTS (SELECT 1 FROM migration_server_id_log l "
                "WHERE l.table_name = 'sales' AND l.row_id = s.id)",
            )
            == 0
        )


def test_deleting_a_user_sets_server_id_null(fixture_db: tuple[str, Any]) -> None:
    url, rows = fixture_db
    served = {t: [r[0] for r in rows[t] if r[2] == U["server1A"]] for t in ACTIVITY}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM auth.users WHERE id = %s", (U["server1A"],))
        for table, ids in served.items():
            assert ids
            got = conn.execute(
                f"SELECT count(*), count(server_id) FROM {table} WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchone()
            assert got == (len(ids), 0), table
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM server_name_mappings WHERE user_id = %s",
                (U["server1A"],),
            )
            == 0
        )


# ---------------------------------------------------------------------------------------
# Sample and rollback


def test_bar_sample_is_deterministic(db_url: str, empty_db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        counts = load_bar_sample(conn, bars=6, sales=500, seed=3)
        first = conn.execute("SELECT id::text, server_name FROM sales ORDER BY id").fetchall()
        conn.rollback()
        assert load_bar_sample(conn, bars=6, sales=500, seed=3) == counts
        assert (
            conn.execute("SELECT id::text, server_name FROM sales ORDER BY id").fetchall() == first
        )
        modes = {r[0] for r in conn.execute("SELECT settings->>'operatingMode' FROM bars")}
        assert modes == {"simplified", "full", None}
        assert scalar(conn, "SELECT count(*) FROM sales WHERE created_by IS NULL") > 0
        assert counts["sales"] == 500 and counts["returns"] == 25


def _snapshot(url: str) -> dict:
    with psycopg.connect(url) as conn:
        objects = snapshot.take(conn)
    return {kind: named for kind, named in objects.items() if kind != "extension"}


def test_rollback_mode_switching_returns_to_bar_001_exactly(
    fixture_db: tuple[str, Any], tmp_path: Path
) -> None:
    url, _ = fixture_db
    _run_backfills(url)
    applied = _snapshot(url)
    result = rollback_with_data_loss(url, "mode-switching", tmp_path)
    assert result.exit_code == 0, result.output
    with psycopg.connect(url) as conn:
        versions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
        assert "bar_001" in versions and not any(v.startswith("bar_00") and v != "bar_001"
                                                 for v in versions)  # fmt: skip
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM information_schema.columns WHERE column_name = 'server_id'",
            )
            == 0
        )
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM pg_class WHERE relname IN "
                "('server_name_mappings', 'migration_server_id_log', 'idx_bars_operating_mode')",
            )
            == 0
        )
        policies = scalar(
            conn, "SELECT count(*) FROM pg_policies WHERE tablename = ANY(%s)", (list(TABLES),)
        )
        assert policies == 0
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM pg_class WHERE relrowsecurity AND oid = ANY(%s::regclass[])",
                ([f"public.{t}" for t in TABLES if t != "server_name_mappings"],),
            )
            == 0
        )
        assert (
            scalar(
                conn,
                "SELECT count(*) FROM information_schema.role_table_grants "
                "WHERE grantee IN ('authenticated', 'service_role', 'anon') AND table_name = ANY(%s)",
                (list(TABLES),),
            )
            == 0
        )
        assert scalar(conn, "SELECT count(*) FROM sales") == 8
    # The rollback also took the later release of the branch (bar-owner-lookups) with
    # it: applying every head again must rebuild exactly what was there.
    again = invoke("apply", "--database-url", url)
    assert again.exit_code == 0, again.output
    reapplied = _snapshot(url)
    assert reapplied == applied, catalog_diff(applied, reapplied)
