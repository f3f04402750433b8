"""bar-integrity: the bar functions lose EXECUTE for PUBLIC; is_active_bar_member v2.

Revision ID: bar_009
Revises: bar_008
Release: bar-integrity

Every function is executable by PUBLIC when created, so anon could ask the SECURITY
DEFINER is_active_bar_member(bar, user) who belongs to any bar, and call the backfill
batch functions. Now EXECUTE goes to exactly the roles that need it:

* bar_role, bar_ids_with_role, is_active_bar_member: authenticated (the row-level
  security policies evaluate their calls with the privileges of the querying role;
  the bar triggers call them as the caller too);
* backfill_server_id_batch and its three per-table wrappers: nobody (the owner runs the
  backfill engine).

is_active_bar_member v2 is no membership oracle: it answers true only when the user is an
active member or the owner of the bar and the caller (auth.uid()) manages or owns that bar
or is that user, never more than bar_members_select_by_role already shows the caller.

Lock budget: REVOKE / GRANT and CREATE OR REPLACE FUNCTION are catalog changes. The
downgrade reinstalls v1 and gives EXECUTE back to PUBLIC (the grants of this revision are
revoked), which is what PostgreSQL's default privileges gave before.
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_009"
down_revision = "bar_008"
branch_labels = None
depends_on = None

# (function signature, roles granted EXECUTE); no role: only the owner runs it.
FUNCTIONS = (
    ("public.bar_role(uuid)", "authenticated"),
    ("public.bar_ids_with_role(text[])", "authenticated"),
    ("public.is_active_bar_member(uuid, uuid)", "authenticated"),
    ("public.backfill_server_id_batch(text, uuid, uuid)", ""),
    ("public.backfill_sales_server_id(uuid, uuid)", ""),
    ("public.backfill_consignments_server_id(uuid, uuid)", ""),
    ("public.backfill_returns_server_id(uuid, uuid)", ""),
)
# Explicit grants a Supabase database gives new functions (its default privileges);
# revoked too, so that only the grants below remain.
API_ROLES = "anon, authenticated, service_role"


def upgrade() -> None:
    install_sql_file("functions/is_active_bar_member/v2.sql")
    statements = []
    for signature, roles in FUNCTIONS:
        statements.append(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC, {API_ROLES};")
        if roles:
            statements.append(f"GRANT EXECUTE ON FUNCTION {signature} TO {roles};")
    execute_sql("\n".join(statements) + "\n")


def downgrade() -> None:
    statements = []
    for signature, _roles in FUNCTIONS:
        statements.append(f"REVOKE ALL ON FUNCTION {signature} FROM {API_ROLES};")
        statements.append(f"GRANT EXECUTE ON FUNCTION {signature} TO PUBLIC;")
    execute_sql("\n".join(statements) + "\n")
    install_sql_file("functions/is_active_bar_member/v1.sql")
