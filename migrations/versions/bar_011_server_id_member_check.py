"""bar-integrity: a new or changed server_id must belong to the row's bar.

Revision ID: bar_011
Revises: bar_010
Release: bar-integrity

The insert policies refuse a server_id outside the bar, but sales_update_by_manager (and
those of consignments and returns) let a manager UPDATE server_id to anyone, another bar's
server included. The triggers {table}_server_id_member_check (BEFORE INSERT OR UPDATE OF
server_id, bar_id, on sales, consignments and returns) run enforce_server_id_membership():
for a caller that is not privileged, a new server_id, or one whose value or bar changes,
must be an active member or the owner of the row's bar (is_active_bar_member()), else
SQLSTATE 42501 (insufficient_privilege), the code the policies raise for the same value on
INSERT. An unchanged server_id is not checked again (a server who left the bar does not
block voiding their old sale); NULL is allowed; privileged roles (superuser, BYPASSRLS:
service_role, the server_id backfill run by the owner) are exempt.

Lock budget: CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock per table, no scan;
existing rows are not checked (they were written under the insert policies or by the
backfill).
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_011"
down_revision = "bar_010"
branch_labels = None
depends_on = None

TABLES = ("sales", "consignments", "returns")
API_ROLES = "anon, authenticated, service_role"


def upgrade() -> None:
    install_sql_file("functions/enforce_server_id_membership/v1.sql")
    execute_sql(
        f"REVOKE ALL ON FUNCTION public.enforce_server_id_membership() FROM PUBLIC, {API_ROLES};\n"
        + "".join(
            f"""
CREATE TRIGGER {t}_server_id_member_check
    BEFORE INSERT OR UPDATE OF server_id, bar_id ON public.{t}
    FOR EACH ROW
    EXECUTE FUNCTION public.enforce_server_id_membership();
"""
            for t in TABLES
        )
    )


def downgrade() -> None:
    execute_sql(
        "".join(
            f"DROP TRIGGER IF EXISTS {t}_server_id_member_check ON public.{t};\n" for t in TABLES
        )
        + "DROP FUNCTION IF EXISTS public.enforce_server_id_membership();\n"
    )
