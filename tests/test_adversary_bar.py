"""The bar's attacker matrix, as data: who tries what on which rows, and what must happen.

Each cell is one actor (anon, service_role, or a user acting as `authenticated`: the
owner, manager and servers of bar A, the staff of bar B, a server who left bar A), one
operation in SQL and its expected outcome: allowed (with the rows it returns or touches,
or the value it returns) or refused with a SQLSTATE. Every cell runs in a transaction of
its own, always rolled back, on one world per module (a clone of the migrated schema with
the bars, their staff and their rows), through the same path a client takes (role and
request.jwt.claim.sub, as PostgREST sets them). A new rule is a new row.

Outcomes:
  ALLOWED  the statement succeeds; `result` is the rowcount of a write, or the first
           column of the last row a query returns (None: SQL NULL);
  "42501" etc. the statement fails with that SQLSTATE.
A cell's SQL may be several statements separated by ";\n": the outcome is the last one's.

The holes closed by the bar-integrity release are tagged 5..10 (see
runbooks/bar-integrity.md); "rls" cells pin the rules that held before.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.actors import become
from tests.conftest import Server
from tests.test_mode_switching import BAR_A, BAR_B, U, _fixture

pytestmark = pytest.mark.compat  # run on PostgreSQL 15 too: tests/compat.py

ALLOWED = "allowed"
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_FUNCTION = "42883"
FOREIGN_KEY_VIOLATION = "23503"

LEFT_A = "00000000-0000-4000-8000-00000000a099"  # a server who left bar A
SALE_B = "20000000-0000-4000-8000-0000000000b1"  # a sale of bar B with a known id
NAMES = {"bar_a": BAR_A, "bar_b": BAR_B, "leftA": LEFT_A, "sale_b": SALE_B, **U}

# Rows beside tests.test_mode_switching's fixture (bars A simplified and B full, their
# staff, sales / consignments / returns per server): a server who left bar A with one old
# sale of theirs, and a sale server1A created while switching mode was off (no server_id).
EXTRA_SQL = """
INSERT INTO auth.users (id, email) VALUES ('{leftA}', 'left@test');
INSERT INTO bar_members (bar_id, user_id, role, display_name, is_active)
VALUES ('{bar_a}', '{leftA}', 'server', 'Lena Left', false);
INSERT INTO sales (bar_id, created_by, server_id, server_name, total)
VALUES ('{bar_a}', '{leftA}', '{leftA}', 'Lena Left', 7),
       ('{bar_a}', '{leftA}', NULL, 'Lena Left', 8),
       ('{bar_a}', '{server1A}', NULL, 'Marie Claire', 9);
INSERT INTO sales (id, bar_id, created_by, server_id, server_name, total)
VALUES ('{sale_b}', '{bar_b}', '{managerB}', NULL, 'Kofi', 3);
"""
FLAG_ON = "UPDATE feature_flags SET enabled = true WHERE name = 'ENABLE_SWITCHING_MODE'"
FLAG_ON_FOR_B = (
    "UPDATE feature_flags SET bar_ids = ARRAY['{bar_b}'::uuid] WHERE name = 'ENABLE_SWITCHING_MODE'"
)


@dataclass(frozen=True)
class Cell:
    hole: str  # 5..10: the bar-integrity holes; rls: rules that held before
    actor: str
    operation: str
    sql: str  # placeholders: {bar_a} {bar_b} {leftA} and the users of U ({managerA}, ...)
    expect: str  # ALLOWED or a SQLSTATE
    result: Any = None  # ALLOWED: rowcount of a write, or first column of a query's last row
    setup: str = ""  # run as the tables' owner first, in the cell's transaction

    @property
    def id(self) -> str:
        return f"{self.hole}-{self.actor}-{self.operation}"


def _sale_server(create: str) -> str:
    """The server_id of the sale create_sale_by_server_name(...) returns, read back as the
    caller (a later statement: the sale is not in the snapshot of the one creating it)."""
    return (
        f"SELECT set_config('test.sale', ({create})::text, true);\n"
        "SELECT server_id::text FROM sales WHERE id = current_setting('test.sale')::uuid"
    )


CREATE_4 = "SELECT create_sale_by_server_name('{bar_a}', 'marie claire', '[]', 4.5)"
CELLS = [
    # -- 5: bars.owner_id changes only by the owner or a privileged role ----------------
    Cell("5", "managerA", "make self owner", "UPDATE bars SET owner_id = '{managerA}' WHERE id = '{bar_a}'", INSUFFICIENT_PRIVILEGE),
    Cell("5", "managerA", "clear owner", "UPDATE bars SET owner_id = NULL WHERE id = '{bar_a}'", INSUFFICIENT_PRIVILEGE),
    Cell("5", "managerA", "rename bar", "UPDATE bars SET name = 'Renamed' WHERE id = '{bar_a}'", ALLOWED, 1),
    Cell("5", "managerA", "owner_id unchanged in SET", "UPDATE bars SET owner_id = owner_id, name = 'Renamed' WHERE id = '{bar_a}'", ALLOWED, 1),
    Cell("5", "managerA", "delete bar", "DELETE FROM bars WHERE id = '{bar_a}'", ALLOWED, 0),
    Cell("5", "managerA", "demote owner membership", "UPDATE bar_members SET role = 'server' WHERE user_id = '{ownerA}'", ALLOWED, 0),
    Cell("5", "server1A", "make self owner", "UPDATE bars SET owner_id = '{server1A}' WHERE id = '{bar_a}'", ALLOWED, 0),
    Cell("5", "managerB", "take bar A", "UPDATE bars SET owner_id = '{managerB}' WHERE id = '{bar_a}'", ALLOWED, 0),
    Cell("5", "ownerB", "take bar A", "UPDATE bars SET owner_id = '{ownerB}' WHERE id = '{bar_a}'", ALLOWED, 0),
    Cell("5", "ownerA", "transfer to manager", "UPDATE bars SET owner_id = '{managerA}' WHERE id = '{bar_a}'", ALLOWED, 1),
    Cell("5", "service_role", "transfer", "UPDATE bars SET owner_id = '{managerA}' WHERE id = '{bar_a}'", ALLOWED, 1),
    Cell("5", "ownerA", "delete own bar", "DELETE FROM bars WHERE id = '{bar_a}'", ALLOWED, 1),
    Cell("5", "managerA", "create a bar owned by another", "INSERT INTO bars (name, owner_id) VALUES ('Planted', '{ownerA}')", INSUFFICIENT_PRIVILEGE),
    Cell("5", "managerA", "create a bar of one's own", "INSERT INTO bars (name, owner_id) VALUES ('Mine', '{managerA}')", ALLOWED, 1),
    Cell("5", "managerA", "give the bar a new id", "UPDATE bars SET id = gen_random_uuid() WHERE id = '{bar_a}'", INSUFFICIENT_PRIVILEGE),
    # No WHERE: the new row meets bars_update_by_manager's WITH CHECK alone (see cells 6).
    Cell("5", "managerA", "give every bar one runs a new id", "UPDATE bars SET id = gen_random_uuid()", INSUFFICIENT_PRIVILEGE),
    # -- 6: a new or changed server_id belongs to the row's bar -------------------------
    *[
        Cell("6", "managerA", f"{t}: server_id to bar B's server", f"UPDATE {t} SET server_id = '{{server1B}}' WHERE bar_id = '{{bar_a}}'", INSUFFICIENT_PRIVILEGE)
        for t in ("sales", "consignments", "returns")
    ],
    *[
        Cell("6", "managerA", f"{t}: server_id to a colleague", f"UPDATE {t} SET server_id = '{{server2A}}' WHERE server_id = '{{server1A}}'", ALLOWED, 2)
        for t in ("sales", "consignments", "returns")
    ],
    Cell("6", "managerA", "server_id to one who left", "UPDATE sales SET server_id = '{leftA}' WHERE server_id = '{server1A}'", INSUFFICIENT_PRIVILEGE),
    Cell("6", "managerA", "server_id to NULL", "UPDATE sales SET server_id = NULL WHERE server_id = '{server1A}'", ALLOWED, 2),
    Cell("6", "managerA", "void the sale of one who left", "UPDATE sales SET status = 'voided' WHERE server_id = '{leftA}'", ALLOWED, 1),
    Cell("6", "managerA", "void, server_id unchanged in SET", "UPDATE sales SET status = 'voided', server_id = server_id, bar_id = bar_id WHERE server_id = '{leftA}'", ALLOWED, 1),
    Cell("6", "managerA", "move sales to bar B", "UPDATE sales SET bar_id = '{bar_b}' WHERE server_id = '{server1A}'", INSUFFICIENT_PRIVILEGE),
    # An UPDATE with no WHERE and no RETURNING reads nothing, so PostgreSQL holds the new
    # rows to the UPDATE policies' WITH CHECK alone (not to the SELECT policies), and
    # without a server_id no trigger looks at them: WITH CHECK alone keeps the rows in a bar
    # the manager runs. (The setup clears every server_id, as the tables' owner.)
    *[
        Cell("6", "managerA", f"{t}: move every row to bar B", f"UPDATE {t} SET bar_id = '{{bar_b}}'", INSUFFICIENT_PRIVILEGE, setup=f"UPDATE {t} SET server_id = NULL")
        for t in ("sales", "consignments", "returns")
    ],
    Cell("6", "managerA", "insert for bar B's server", "INSERT INTO sales (bar_id, created_by, server_id, total) VALUES ('{bar_a}', '{managerA}', '{server1B}', 1)", INSUFFICIENT_PRIVILEGE),
    Cell("6", "managerA", "insert for one who left", "INSERT INTO sales (bar_id, created_by, server_id, total) VALUES ('{bar_a}', '{managerA}', '{leftA}', 1)", INSUFFICIENT_PRIVILEGE),
    Cell("6", "server1A", "insert for a colleague", "INSERT INTO sales (bar_id, created_by, server_id, total) VALUES ('{bar_a}', '{server1A}', '{server2A}', 1)", INSUFFICIENT_PRIVILEGE),
    Cell("6", "server1A", "insert own", "INSERT INTO sales (bar_id, created_by, server_id, total) VALUES ('{bar_a}', '{server1A}', '{server1A}', 1)", ALLOWED, 1),
    Cell("6", "server1A", "reassign own sales", "UPDATE sales SET server_id = '{server2A}' WHERE server_id = '{server1A}'", ALLOWED, 0),
    Cell("6", "managerB", "reassign bar A's sales", "UPDATE sales SET server_id = '{server1B}' WHERE bar_id = '{bar_a}'", ALLOWED, 0),
    Cell("6", "service_role", "server_id to bar B's server", "UPDATE sales SET server_id = '{server1B}' WHERE server_id = '{server1A}'", ALLOWED, 2),
    Cell("6", "service_role", "server_id to one who left", "UPDATE sales SET server_id = '{leftA}' WHERE server_id = '{server1A}'", ALLOWED, 2),
    # -- 7: the database decides whether switching mode is on ---------------------------
    Cell("7", "managerA", "create_sale with p_switching_enabled", "SELECT create_sale_by_server_name('{bar_a}', 'marie claire', '[]', 4.5, true)", UNDEFINED_FUNCTION),
    Cell("7", "managerA", "create_sale, flag off", _sale_server(CREATE_4), ALLOWED, None),
    Cell("7", "managerA", "create_sale, flag on", _sale_server(CREATE_4), ALLOWED, U["server1A"], FLAG_ON),
    Cell("7", "managerA", "create_sale, flag on for bar B only", _sale_server(CREATE_4), ALLOWED, None, FLAG_ON_FOR_B),
    Cell("7", "server1B", "create_sale, flag on for bar B", _sale_server("SELECT create_sale_by_server_name('{bar_b}', 'anyone', '[]', 1)"), ALLOWED, U["server1B"], FLAG_ON_FOR_B),
    Cell("7", "managerA", "read feature_flags", "SELECT enabled FROM feature_flags", INSUFFICIENT_PRIVILEGE),
    Cell("7", "managerA", "switch the flag on", "UPDATE feature_flags SET enabled = true", INSUFFICIENT_PRIVILEGE),
    Cell("7", "ownerA", "switch the flag on", "INSERT INTO feature_flags (name, enabled) VALUES ('X', true)", INSUFFICIENT_PRIVILEGE),
    Cell("7", "anon", "read feature_flags", "SELECT enabled FROM feature_flags", INSUFFICIENT_PRIVILEGE),
    Cell("7", "managerA", "ask switching_mode_enabled", "SELECT switching_mode_enabled('{bar_a}')", INSUFFICIENT_PRIVILEGE),
    Cell("7", "service_role", "read feature_flags", "SELECT enabled FROM feature_flags WHERE name = 'ENABLE_SWITCHING_MODE'", ALLOWED, False),
    Cell("7", "service_role", "switch the flag on", FLAG_ON, ALLOWED, 1),
    Cell("7", "service_role", "ask switching_mode_enabled", "SELECT switching_mode_enabled('{bar_b}')", ALLOWED, True, FLAG_ON_FOR_B),
    # -- 8: bar functions: no PUBLIC / anon; is_active_bar_member is no oracle -----------
    *[
        Cell("8", "anon", f"call {call.split('(')[0]}", f"SELECT {call}", INSUFFICIENT_PRIVILEGE)
        for call in (
            "is_active_bar_member('{bar_a}', '{server1A}')",
            "bar_role('{bar_a}')",
            "bar_ids_with_role('{{owner}}')",
            "create_sale_by_server_name('{bar_a}', 'x', '[]', 1)",
            "switching_mode_enabled('{bar_a}')",
            "is_privileged_caller()",
        )
    ],
    *[
        Cell("8", actor, f"call {call.split('(')[0]}", f"SELECT {call}", INSUFFICIENT_PRIVILEGE)
        for actor in ("managerA", "service_role")
        for call in (
            "backfill_sales_server_id(NULL, 'ffffffff-ffff-4fff-bfff-ffffffffffff')",
            "backfill_consignments_server_id(NULL, 'ffffffff-ffff-4fff-bfff-ffffffffffff')",
            "backfill_returns_server_id(NULL, 'ffffffff-ffff-4fff-bfff-ffffffffffff')",
            "backfill_server_id_batch('sales', NULL, 'ffffffff-ffff-4fff-bfff-ffffffffffff')",
            "enforce_bar_owner_change()",
            "enforce_server_id_membership()",
        )
    ],
    Cell("8", "managerB", "is_active_bar_member about bar A", "SELECT is_active_bar_member('{bar_a}', '{server1A}')", ALLOWED, False),
    Cell("8", "server1B", "is_active_bar_member about bar A", "SELECT is_active_bar_member('{bar_a}', '{server1A}')", ALLOWED, False),
    Cell("8", "server2A", "is_active_bar_member about a colleague", "SELECT is_active_bar_member('{bar_a}', '{server1A}')", ALLOWED, False),
    Cell("8", "server1B", "is_active_bar_member about self in bar A", "SELECT is_active_bar_member('{bar_a}', '{server1B}')", ALLOWED, False),
    Cell("8", "server1A", "is_active_bar_member about self", "SELECT is_active_bar_member('{bar_a}', '{server1A}')", ALLOWED, True),
    Cell("8", "managerA", "is_active_bar_member about a server", "SELECT is_active_bar_member('{bar_a}', '{server1A}')", ALLOWED, True),
    Cell("8", "ownerA", "is_active_bar_member about the owner", "SELECT is_active_bar_member('{bar_a}', '{ownerA}')", ALLOWED, True),
    Cell("8", "managerA", "is_active_bar_member about one who left", "SELECT is_active_bar_member('{bar_a}', '{leftA}')", ALLOWED, False),
    Cell("8", "managerA", "is_active_bar_member about bar B's server", "SELECT is_active_bar_member('{bar_a}', '{server1B}')", ALLOWED, False),
    Cell("8", "managerA", "bar_role of own bar", "SELECT bar_role('{bar_a}')", ALLOWED, "manager"),
    Cell("8", "managerA", "bar_role of bar B", "SELECT bar_role('{bar_b}')", ALLOWED, None),
    Cell("8", "server1A", "bar_ids_with_role", "SELECT bar_ids_with_role('{{owner,manager,server}}')::text", ALLOWED, "{" + BAR_A + "}"),
    Cell("8", "managerA", "map a name to bar B's server", "INSERT INTO server_name_mappings (bar_id, user_id, server_name) VALUES ('{bar_a}', '{server1B}', 'Intruder')", INSUFFICIENT_PRIVILEGE),
    Cell("8", "managerA", "map a name to a server", "INSERT INTO server_name_mappings (bar_id, user_id, server_name) VALUES ('{bar_a}', '{server2A}', 'Sof')", ALLOWED, 1),
    Cell("8", "managerA", "insert on behalf of a server", "INSERT INTO consignments (bar_id, created_by, server_id, product_name, quantity) VALUES ('{bar_a}', '{managerA}', '{server2A}', 'Gin', 1)", ALLOWED, 1),
    # -- 9: a member sees the rows they created without server_id ------------------------
    *[
        Cell("9", "server1A", f"{t}: insert own, switching off, RETURNING", sql, ALLOWED, 1)
        for t, sql in (
            ("sales", "INSERT INTO sales (bar_id, created_by, total) VALUES ('{bar_a}', '{server1A}', 2) RETURNING id"),
            ("consignments", "INSERT INTO consignments (bar_id, created_by, product_name, quantity) VALUES ('{bar_a}', '{server1A}', 'Rum', 1) RETURNING id"),
            ("returns", "INSERT INTO returns (bar_id, created_by, amount) VALUES ('{bar_a}', '{server1A}', 2) RETURNING id"),
        )
    ],
    # Without a server_id no trigger looks at the row: the insert policies alone keep an
    # outsider out (each of them, since permissive policies are OR-ed).
    *[
        Cell("9", "server1B", f"{t}: insert into bar A", sql, INSUFFICIENT_PRIVILEGE)
        for t, sql in (
            ("sales", "INSERT INTO sales (bar_id, created_by, total) VALUES ('{bar_a}', '{server1B}', 1)"),
            ("consignments", "INSERT INTO consignments (bar_id, created_by, product_name, quantity) VALUES ('{bar_a}', '{server1B}', 'Rum', 1)"),
            ("returns", "INSERT INTO returns (bar_id, created_by, amount) VALUES ('{bar_a}', '{server1B}', 1)"),
        )
    ],
    Cell("9", "server1A", "consignments: insert in a colleague's name", "INSERT INTO consignments (bar_id, created_by, product_name, quantity) VALUES ('{bar_a}', '{server2A}', 'Rum', 1)", INSUFFICIENT_PRIVILEGE),
    Cell("9", "managerA", "returns: insert on behalf of a server, simplified mode", "INSERT INTO returns (bar_id, created_by, server_id, amount) VALUES ('{bar_a}', '{managerA}', '{server2A}', 2)", ALLOWED, 1),
    Cell("9", "server1A", "sees own NULL-server sale", "SELECT count(*) FROM sales WHERE server_id IS NULL", ALLOWED, 1),
    Cell("9", "server2A", "sees no colleague's NULL-server sale", "SELECT count(*) FROM sales WHERE server_id IS NULL", ALLOWED, 0),
    Cell("9", "server1B", "sees no bar A NULL-server sale", "SELECT count(*) FROM sales WHERE server_id IS NULL", ALLOWED, 0),
    Cell("9", "leftA", "one who left sees nothing", "SELECT count(*) FROM sales", ALLOWED, 0),
    Cell("9", "managerA", "sees every NULL-server sale of the bar", "SELECT count(*) FROM sales WHERE server_id IS NULL", ALLOWED, 3),
    Cell("9", "server1B", "create_sale, flag off, reads it back", _sale_server("SELECT create_sale_by_server_name('{bar_b}', 'x', '[]', 1)"), ALLOWED, None),
    # -- 10: a return references a sale of its own bar (returns_bar_id_sale_id_fkey) -----
    Cell("10", "managerA", "return of bar B's sale", "INSERT INTO returns (bar_id, sale_id, created_by, amount) VALUES ('{bar_a}', '{sale_b}', '{managerA}', 1)", FOREIGN_KEY_VIOLATION),
    Cell("10", "service_role", "return of bar B's sale", "INSERT INTO returns (bar_id, sale_id, amount) VALUES ('{bar_a}', '{sale_b}', 1)", FOREIGN_KEY_VIOLATION),
    Cell("10", "managerA", "point a return at bar B's sale", "UPDATE returns SET sale_id = '{sale_b}' WHERE bar_id = '{bar_a}'", FOREIGN_KEY_VIOLATION),
    Cell("10", "managerA", "return of own bar's sale", "INSERT INTO returns (bar_id, sale_id, created_by, amount) SELECT '{bar_a}', id, '{managerA}', 1 FROM sales WHERE server_id = '{server2A}'", ALLOWED, 1),
    Cell("10", "ownerA", "delete a returned sale", "DELETE FROM sales WHERE server_id = '{server2A}'", ALLOWED, 1),
    # -- rls: rules that held before ---------------------------------------------------
    Cell("rls", "server1A", "see other servers' sales", "SELECT count(*) FROM sales WHERE server_id IS DISTINCT FROM '{server1A}' AND server_id IS NOT NULL", ALLOWED, 0),
    Cell("rls", "server1A", "see own sales", "SELECT count(*) FROM sales WHERE server_id = '{server1A}'", ALLOWED, 2),
    Cell("rls", "server1A", "delete own sales", "DELETE FROM sales", ALLOWED, 0),
    *[
        Cell("rls", "managerB", f"{t}: {op}", sql.format(t=t), ALLOWED, 0)
        for t in ("sales", "consignments", "returns", "server_name_mappings", "bar_members")
        for op, sql in (
            ("read bar A", "SELECT count(*) FROM {t} WHERE bar_id = '{{bar_a}}'"),
            ("update bar A", "UPDATE {t} SET bar_id = bar_id WHERE bar_id = '{{bar_a}}'"),
            ("delete bar A", "DELETE FROM {t} WHERE bar_id = '{{bar_a}}'"),
        )
    ],
    Cell("rls", "managerB", "bars: read bar A", "SELECT count(*) FROM bars WHERE id = '{bar_a}'", ALLOWED, 0),
    Cell("rls", "managerB", "insert into bar A", "INSERT INTO sales (bar_id, created_by, total) VALUES ('{bar_a}', '{managerB}', 1)", INSUFFICIENT_PRIVILEGE),
    *[
        Cell("rls", "anon", f"{t}: {op}", sql.format(t=t), INSUFFICIENT_PRIVILEGE)
        for t in ("sales", "consignments", "returns", "server_name_mappings", "bars", "bar_members", "migration_server_id_log")
        for op, sql in (("read", "SELECT count(*) FROM {t}"), ("delete", "DELETE FROM {t}"))
    ],
    Cell("rls", "anon", "insert a sale", "INSERT INTO sales (bar_id, total) VALUES ('{bar_a}', 1)", INSUFFICIENT_PRIVILEGE),
    Cell("rls", "managerA", "read the backfill log", "SELECT count(*) FROM migration_server_id_log", INSUFFICIENT_PRIVILEGE),
    Cell("rls", "service_role", "read every sale", "SELECT count(*) FROM sales", ALLOWED, 12),
]  # fmt: skip


@pytest.fixture(scope="module")
def attack_world(pg_server: Server, template_db: str) -> Iterator[str]:
    """The world every cell attacks; no cell changes it (each one's transaction is rolled
    back), so the module builds it once."""
    name = f"adv_bar_{uuid.uuid4().hex[:8]}"
    janitor = pg_server.janitor(name, template=template_db)
    janitor.init()
    url = pg_server.url(name)
    _fixture(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(EXTRA_SQL.format(**NAMES))
    yield url
    janitor.drop()


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_attacker_matrix(attack_world: str, cell: Cell) -> None:
    *before, sql = cell.sql.format(**NAMES).split(";\n")
    with psycopg.connect(attack_world) as conn:
        try:
            if cell.setup:
                conn.execute(cell.setup.format(**NAMES))
            become(conn, cell.actor, NAMES)
            for statement in before:
                conn.execute(statement)
            if cell.expect != ALLOWED:
                with pytest.raises(psycopg.Error) as refused:
                    conn.execute(sql)
                assert refused.value.sqlstate == cell.expect, (cell.id, str(refused.value))
                return
            cursor = conn.execute(sql)
            if cursor.description is None or re.match(r"\s*(INSERT|UPDATE|DELETE)", sql, re.I):
                assert cursor.rowcount == cell.result, cell.id
            else:
                rows = cursor.fetchall()
                assert rows and rows[-1][0] == cell.result, (cell.id, rows)
        finally:
            conn.rollback()


def test_every_hole_has_cells_both_ways() -> None:
    """Each hole has a refused (or no-effect) cell and an allowed cell with an effect."""
    for hole in ("5", "6", "7", "8", "9", "10"):
        cells = [c for c in CELLS if c.hole == hole]
        assert any(c.expect != ALLOWED or c.result in (0, False) for c in cells), hole
        assert any(c.expect == ALLOWED and c.result not in (0, False, None) for c in cells), hole
    assert len({c.id for c in CELLS}) == len(CELLS), "cell ids must be unique"


# ---------------------------------------------------------------------------------------
# EXECUTE privileges of the bar functions, from pg_proc.

# Every bar function and the roles (besides its owner) that may execute it: the policy
# helpers for authenticated (policies run their calls as the querying role; the bar
# triggers call them as the caller), is_privileged_caller for whoever writes the bar
# tables, nothing for trigger functions (triggers are not checked) and the backfill (run
# by the owner).
BAR_FUNCTIONS = {
    "bar_role": {"authenticated"},
    "bar_ids_with_role": {"authenticated"},
    "is_active_bar_member": {"authenticated"},
    "backfill_server_id_batch": set(),
    "backfill_sales_server_id": set(),
    "backfill_consignments_server_id": set(),
    "backfill_returns_server_id": set(),
    "is_privileged_caller": {"authenticated", "service_role"},
    "enforce_bar_owner_change": set(),
    "enforce_server_id_membership": set(),
    "switching_mode_enabled": {"service_role"},
    "create_sale_by_server_name": {"authenticated", "service_role"},
    # bar-observability (issue 19)
    "try_create_sale_by_server_name": {"authenticated", "service_role"},
    "resolve_server_name": set(),
    "record_orphaned_sale": set(),
    "correct_server_id_batch": set(),
    "correct_sales_server_id": set(),
    "correct_consignments_server_id": set(),
    "correct_returns_server_id": set(),
}
# A function whose body names a bar table is a bar function, listed or not.
BAR_TABLES = re.compile(
    r"public\.(bars|bar_members|sales|consignments|returns|server_name_mappings|feature_flags|"
    r"migration_server_id_log|orphaned_sales|server_id_resolution_log)\b"
)

FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text, p.proname, p.prosrc,
       has_function_privilege('anon', p.oid, 'EXECUTE'),
       has_function_privilege('authenticated', p.oid, 'EXECUTE'),
       has_function_privilege('service_role', p.oid, 'EXECUTE'),
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
FROM pg_proc AS p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""


def test_no_bar_function_is_executable_by_public_or_anon(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(FUNCTIONS_SQL).fetchall()
    seen = set()
    for signature, name, source, anon, authenticated, service_role, public in rows:
        if name not in BAR_FUNCTIONS:
            assert not BAR_TABLES.search(source), (
                f"{signature} reads a bar table: list it in BAR_FUNCTIONS with its grants"
            )
            continue
        seen.add(name)
        assert not public, f"{signature} is executable by PUBLIC"
        assert not anon, f"{signature} is executable by anon"
        granted = {
            role
            for role, has in (("authenticated", authenticated), ("service_role", service_role))
            if has
        }
        assert granted == BAR_FUNCTIONS[name], signature
    assert seen == set(BAR_FUNCTIONS)
