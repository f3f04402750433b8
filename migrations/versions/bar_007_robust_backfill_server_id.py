"""mode-switching: migration_server_id_log and the batch functions of the server_id backfill.

Revision ID: bar_007
Revises: bar_006
Release: mode-switching

Seed 002's migration 20251224130600_robust_backfill_server_id. The seed ran the backfill
as one UPDATE inside the migration; here the revision only creates the audit table and
the batch functions, and the backfill engine runs them, batched, throttled and
resumable (declared in migrations/backfills.toml):

    venuedb backfill run sales_server_id
    venuedb backfill run consignments_server_id
    venuedb backfill run returns_server_id

Rules (backfill_server_id_batch): the name typed on the till, compared case- and
space-insensitively, through server_name_mappings of the row's bar; else the creating
user when that user still exists; else NULL. Every row examined gets exactly one
migration_server_id_log row (UNIQUE (table_name, row_id)), so a rerun never logs twice.
A new table and new functions: no lock on existing rows.
"""

from alembic import op

from toolkit.sqlfiles import install_sql_file

revision = "bar_007"
down_revision = "bar_006"
branch_labels = None
depends_on = None

TABLES = ("sales", "consignments", "returns")


def upgrade() -> None:
    op.execute("""
CREATE TABLE public.migration_server_id_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL
        CONSTRAINT migration_server_id_log_table_name_check
        CHECK (table_name IN ('sales', 'consignments', 'returns')),
    row_id uuid NOT NULL,
    bar_id uuid,
    server_name text,
    resolved_server_id uuid,
    fallback_used boolean NOT NULL,
    fallback_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT migration_server_id_log_table_name_row_id_key UNIQUE (table_name, row_id)
);
CREATE INDEX migration_server_id_log_created_at_idx
    ON public.migration_server_id_log (created_at);
ALTER TABLE public.migration_server_id_log ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.migration_server_id_log TO service_role;
COMMENT ON TABLE public.migration_server_id_log IS
    'One row per sale / consignment / return examined by the server_id backfill.';
""")
    install_sql_file("functions/backfill_server_id_batch/v1.sql")
    for table in TABLES:
        install_sql_file(f"functions/backfill_{table}_server_id/v1.sql")


def downgrade() -> None:
    op.execute("""
DROP FUNCTION IF EXISTS public.backfill_returns_server_id(uuid, uuid);
DROP FUNCTION IF EXISTS public.backfill_consignments_server_id(uuid, uuid);
DROP FUNCTION IF EXISTS public.backfill_sales_server_id(uuid, uuid);
DROP FUNCTION IF EXISTS public.backfill_server_id_batch(text, uuid, uuid);
DROP TABLE public.migration_server_id_log;
""")
