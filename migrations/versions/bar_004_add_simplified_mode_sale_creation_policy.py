"""mode-switching: row-level security, and sale creation on behalf of a server in simplified mode.

Revision ID: bar_004
Revises: bar_003
Release: mode-switching

Seed 002's migration 20251224130300_add_simplified_mode_sale_creation_policy, with the
row-level security it relies on, on sales, consignments, returns, server_name_mappings,
bars and bar_members, for the role `authenticated` (auth.uid() is the user):

* a server sees only the rows whose server_id is theirs (their own mapping, their own
  membership), in the bars where they are an active member;
* managers and owners see, change and delete all rows of their bars;
* nobody sees another bar's rows; `anon` has no privilege at all; `service_role`
  bypasses RLS (BYPASSRLS) and gets the table privileges.

Inserts: any active member records their own sale / consignment / return (server_id =
their id; NULL while the ENABLE_SWITCHING_MODE flag is off); in simplified mode the
`*_insert_simplified_mode_by_manager` policies let a manager or owner record one on
behalf of any active member of the bar. create_sale_by_server_name() resolves the server
from the name typed on the till and refuses an unknown or ambiguous name.

The helpers bar_role(), bar_ids_with_role() and is_active_bar_member() are SECURITY
DEFINER STABLE functions (no recursion into bar_members' own policies); policies call
bar_ids_with_role() as an init plan, once per statement. Lock budget: enabling RLS and
creating policies are catalog changes (brief ACCESS EXCLUSIVE locks, no scan).
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_004"
down_revision = "bar_003"
branch_labels = None
depends_on = None

FUNCTIONS = (
    "bar_role",
    "bar_ids_with_role",
    "is_active_bar_member",
    "create_sale_by_server_name",
)
RLS_TABLES = ("sales", "consignments", "returns", "server_name_mappings", "bars", "bar_members")
ACTIVITY_TABLES = ("sales", "consignments", "returns")

MANAGED = "(SELECT public.bar_ids_with_role('{owner,manager}'))::uuid[]"
MEMBER = "(SELECT public.bar_ids_with_role('{owner,manager,server}'))::uuid[]"
OWNED = "(SELECT public.bar_ids_with_role('{owner}'))::uuid[]"
UID = "(SELECT auth.uid())"


def _activity_policies(t: str) -> str:
    return f"""
CREATE POLICY {t}_select_by_role ON public.{t} FOR SELECT TO authenticated
    USING (bar_id = ANY ({MANAGED})
           OR (server_id = {UID} AND bar_id = ANY ({MEMBER})));
CREATE POLICY {t}_insert_own ON public.{t} FOR INSERT TO authenticated
    WITH CHECK (bar_id = ANY ({MEMBER})
                AND created_by = {UID}
                AND (server_id IS NULL OR server_id = {UID}));
CREATE POLICY {t}_insert_simplified_mode_by_manager ON public.{t} FOR INSERT TO authenticated
    WITH CHECK (bar_id = ANY ({MANAGED})
                AND created_by = {UID}
                AND EXISTS (SELECT 1 FROM public.bars AS b
                            WHERE b.id = {t}.bar_id
                              AND b.settings ->> 'operatingMode' = 'simplified')
                AND (server_id IS NULL OR public.is_active_bar_member(bar_id, server_id)));
CREATE POLICY {t}_update_by_manager ON public.{t} FOR UPDATE TO authenticated
    USING (bar_id = ANY ({MANAGED}))
    WITH CHECK (bar_id = ANY ({MANAGED}));
CREATE POLICY {t}_delete_by_manager ON public.{t} FOR DELETE TO authenticated
    USING (bar_id = ANY ({MANAGED}));
"""


OTHER_POLICIES = f"""
CREATE POLICY server_name_mappings_select_by_role ON public.server_name_mappings
    FOR SELECT TO authenticated
    USING (bar_id = ANY ({MANAGED}) OR (user_id = {UID} AND bar_id = ANY ({MEMBER})));
CREATE POLICY server_name_mappings_write_by_manager ON public.server_name_mappings
    FOR ALL TO authenticated
    USING (bar_id = ANY ({MANAGED}))
    WITH CHECK (bar_id = ANY ({MANAGED}) AND public.is_active_bar_member(bar_id, user_id));

CREATE POLICY bars_select_by_member ON public.bars FOR SELECT TO authenticated
    USING (id = ANY ({MEMBER}));
CREATE POLICY bars_insert_by_owner ON public.bars FOR INSERT TO authenticated
    WITH CHECK (owner_id = {UID});
CREATE POLICY bars_update_by_manager ON public.bars FOR UPDATE TO authenticated
    USING (id = ANY ({MANAGED})) WITH CHECK (id = ANY ({MANAGED}));
CREATE POLICY bars_delete_by_owner ON public.bars FOR DELETE TO authenticated
    USING (id = ANY ({OWNED}));

CREATE POLICY bar_members_select_by_role ON public.bar_members FOR SELECT TO authenticated
    USING (bar_id = ANY ({MANAGED}) OR user_id = {UID});
CREATE POLICY bar_members_write_by_manager ON public.bar_members FOR ALL TO authenticated
    USING (bar_id = ANY ({OWNED}) OR (bar_id = ANY ({MANAGED}) AND role = 'server'))
    WITH CHECK (bar_id = ANY ({OWNED}) OR (bar_id = ANY ({MANAGED}) AND role = 'server'));
"""


def _policy_names() -> list[tuple[str, str]]:
    names = []
    for t in ACTIVITY_TABLES:
        for suffix in (
            "select_by_role",
            "insert_own",
            "insert_simplified_mode_by_manager",
            "update_by_manager",
            "delete_by_manager",
        ):
            names.append((t, f"{t}_{suffix}"))
    names += [
        ("server_name_mappings", "server_name_mappings_select_by_role"),
        ("server_name_mappings", "server_name_mappings_write_by_manager"),
        ("bars", "bars_select_by_member"),
        ("bars", "bars_insert_by_owner"),
        ("bars", "bars_update_by_manager"),
        ("bars", "bars_delete_by_owner"),
        ("bar_members", "bar_members_select_by_role"),
        ("bar_members", "bar_members_write_by_manager"),
    ]
    return names


def upgrade() -> None:
    for name in FUNCTIONS:
        install_sql_file(f"functions/{name}/v1.sql")
    tables = ", ".join(f"public.{t}" for t in RLS_TABLES)
    execute_sql(f"""
REVOKE ALL ON FUNCTION public.create_sale_by_server_name(uuid, text, jsonb, numeric, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.create_sale_by_server_name(uuid, text, jsonb, numeric, boolean)
    TO authenticated, service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO authenticated, service_role;
""")
    for t in RLS_TABLES:
        execute_sql(f"ALTER TABLE public.{t} ENABLE ROW LEVEL SECURITY;")
    execute_sql("".join(_activity_policies(t) for t in ACTIVITY_TABLES) + OTHER_POLICIES)


def downgrade() -> None:
    tables = ", ".join(f"public.{t}" for t in RLS_TABLES)
    execute_sql("".join(f"DROP POLICY IF EXISTS {p} ON public.{t};\n" for t, p in _policy_names()))
    for t in RLS_TABLES:
        execute_sql(f"ALTER TABLE public.{t} DISABLE ROW LEVEL SECURITY;")
    execute_sql(f"""
REVOKE ALL ON {tables} FROM authenticated, service_role;
DROP FUNCTION IF EXISTS public.create_sale_by_server_name(uuid, text, jsonb, numeric, boolean);
DROP FUNCTION IF EXISTS public.is_active_bar_member(uuid, uuid);
DROP FUNCTION IF EXISTS public.bar_ids_with_role(text[]);
DROP FUNCTION IF EXISTS public.bar_role(uuid);
""")
