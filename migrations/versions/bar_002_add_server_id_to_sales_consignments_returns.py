"""mode-switching: server_id on sales, consignments and returns, referencing auth.users.

Revision ID: bar_002
Revises: bar_001
Release: mode-switching

Seed 002's migration 20251224130000_add_server_id_to_sales_consignments_returns: the
server who made a sale / consignment / return, as a user id (until now only the name
typed on the till, server_name, recorded it).

Lock budget: `ADD COLUMN server_id uuid` (nullable, no default) is a catalog change; the
foreign keys to auth.users are added NOT VALID (catalog only) and validated outside the
revision's transaction (VALIDATE holds SHARE UPDATE EXCLUSIVE, writers keep going); the
indexes on server_id (used by the row-level security of bar_004 and by the seed's
health check) are built CONCURRENTLY. Every step is idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently, outside_transaction
from toolkit.sqlfiles import execute_sql

revision = "bar_002"
down_revision = "bar_001"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / VALIDATE); idempotent, so a rerun resumes.
RESUMABLE = True

TABLES = ("sales", "consignments", "returns")


def upgrade() -> None:
    for table in TABLES:
        execute_sql(f"""
ALTER TABLE public.{table} ADD COLUMN IF NOT EXISTS server_id uuid;
DO $fk$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = '{table}_server_id_fkey'
                     AND conrelid = 'public.{table}'::regclass) THEN
        ALTER TABLE public.{table}
            ADD CONSTRAINT {table}_server_id_fkey
            FOREIGN KEY (server_id) REFERENCES auth.users (id) NOT VALID;
    END IF;
END
$fk$;
""")
    with outside_transaction():
        for table in TABLES:
            execute_sql(f"""
-- lint: allow prefer-robust-stmts: VALIDATE is idempotent, a rerun validates again
ALTER TABLE public.{table} VALIDATE CONSTRAINT {table}_server_id_fkey;
""")
    for table in TABLES:
        create_index_concurrently(
            f"idx_{table}_server_id", f"ON public.{table} USING btree (server_id)"
        )


def downgrade() -> None:
    for table in TABLES:
        drop_index_concurrently(f"idx_{table}_server_id")
    for table in TABLES:
        execute_sql(f"""
ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {table}_server_id_fkey;
ALTER TABLE public.{table} DROP COLUMN IF EXISTS server_id;
""")
