"""bar-observability: sales created without a server when they should have one, recorded.

Revision ID: bar_016
Revises: bar_015
Release: bar-observability

Seed 002's critical alert "Orphaned sales created > 0 (server_id = NULL when should not
be)". Which rows count, exactly: a sale inserted (by any path: create_sale_by_server_name,
the app's direct INSERT under the simplified-mode policy, psql) with server_id NULL while
its bar was in simplified mode (bars.settings->>'operatingMode' = 'simplified') and
ENABLE_SWITCHING_MODE was on for that bar, after this release. Whether the bar was in
that state can only be known when the row is inserted (the mode and the flag change
later: seed 002's Option A turns the flag off, and sales created then rightly have no
server), so the trigger sales_orphaned_sale_record (AFTER INSERT, only for rows with
server_id NULL: a sale with a server costs nothing) runs record_orphaned_sale() v1, which
writes one row of orphaned_sales. The check orphaned_sales_created counts those created
in its window whose sale still exists and still has no server_id (a manager who sets the
server clears the alert); a sale whose server_id became NULL later (the server's user
deleted: ON DELETE SET NULL) was not created orphaned and is not counted.

orphaned_sales has row-level security and no policy; service_role reads it. Lock budget:
a new, empty table; CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock on sales, no scan.
"""

from alembic import op

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_016"
down_revision = "bar_015"
branch_labels = None
depends_on = None

API_ROLES = "anon, authenticated, service_role"


def upgrade() -> None:
    op.execute(f"""
CREATE TABLE public.orphaned_sales (
    sale_id uuid PRIMARY KEY,
    bar_id uuid NOT NULL,
    created_by uuid,
    server_name text,
    created_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orphaned_sales_created_at_idx ON public.orphaned_sales (created_at);
COMMENT ON TABLE public.orphaned_sales IS
    'Sales inserted with server_id NULL while their bar was in simplified mode with '
    'ENABLE_SWITCHING_MODE on (trigger sales_orphaned_sale_record). No foreign key: the '
    'record outlives a deleted sale, and the check reads only sales that still exist.';
ALTER TABLE public.orphaned_sales ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.orphaned_sales FROM PUBLIC, {API_ROLES};
GRANT SELECT ON public.orphaned_sales TO service_role;
""")
    install_sql_file("functions/record_orphaned_sale/v1.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION public.record_orphaned_sale() FROM PUBLIC, {API_ROLES};
CREATE TRIGGER sales_orphaned_sale_record
    AFTER INSERT ON public.sales
    FOR EACH ROW
    WHEN (NEW.server_id IS NULL)
    EXECUTE FUNCTION public.record_orphaned_sale();
""")


def downgrade() -> None:
    op.execute("""
DROP TRIGGER IF EXISTS sales_orphaned_sale_record ON public.sales;
DROP FUNCTION IF EXISTS public.record_orphaned_sale();
DROP TABLE public.orphaned_sales;
""")
