"""bar-integrity: only the owner of a bar (or a privileged role) changes bars.owner_id.

Revision ID: bar_010
Revises: bar_009
Release: bar-integrity

bars_update_by_manager lets a manager update their bar, owner_id included: a manager
could make themselves the owner, then demote the real owner and delete the bar. The
trigger bars_owner_change_guard (BEFORE UPDATE OF owner_id ON bars, when owner_id really
changes) runs enforce_bar_owner_change(): the change is allowed to the bar's owner
(bar_role(bar) = 'owner' for auth.uid()) and to privileged roles (is_privileged_caller():
superuser or BYPASSRLS, e.g. service_role); anyone else gets SQLSTATE 42501
(insufficient_privilege) naming the bar.

is_privileged_caller() is shared with the server_id membership trigger (bar_011). Both
functions run as the caller (SECURITY INVOKER); the caller of a trigger needs EXECUTE on
what the trigger function calls, so is_privileged_caller() is granted to the roles that
write the bar tables (authenticated, service_role). A trigger function itself needs no
grant: triggers are not checked.

Lock budget: CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock on bars, no scan.
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_010"
down_revision = "bar_009"
branch_labels = None
depends_on = None

API_ROLES = "anon, authenticated, service_role"


def upgrade() -> None:
    install_sql_file("functions/is_privileged_caller/v1.sql")
    install_sql_file("functions/enforce_bar_owner_change/v1.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION public.is_privileged_caller() FROM PUBLIC, {API_ROLES};
GRANT EXECUTE ON FUNCTION public.is_privileged_caller() TO authenticated, service_role;
REVOKE ALL ON FUNCTION public.enforce_bar_owner_change() FROM PUBLIC, {API_ROLES};
CREATE TRIGGER bars_owner_change_guard
    BEFORE UPDATE OF owner_id ON public.bars
    FOR EACH ROW
    WHEN (old.owner_id IS DISTINCT FROM new.owner_id)
    EXECUTE FUNCTION public.enforce_bar_owner_change();
""")


def downgrade() -> None:
    execute_sql("""
DROP TRIGGER IF EXISTS bars_owner_change_guard ON public.bars;
DROP FUNCTION IF EXISTS public.enforce_bar_owner_change();
DROP FUNCTION IF EXISTS public.is_privileged_caller();
""")
