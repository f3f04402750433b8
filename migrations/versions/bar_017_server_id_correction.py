"""bar-observability: the server_id backfill resolves names as the live path does, and corrects.

Revision ID: bar_017
Revises: bar_016
Release: bar-observability

The server_id backfill of mode-switching (backfill_server_id_batch v1) credited a row
whose typed name had no mapping to the user who created it, usually the manager at the
shared till, while create_sale_by_server_name also resolves the name through the bar's
members' display names; the rollout ran it right after creating an empty
server_name_mappings table, so the per-server sales of most servers went to their
manager, for good (reruns only touch NULL rows). This revision:

* adds to migration_server_id_log the audit of a correction: corrected_server_id (the
  new server_id; resolved_server_id keeps the old one), corrected_at and
  correction_reason (corrected_by_mapping, corrected_by_display_name, or
  ambiguous_name_not_corrected for a row left alone because several members share the
  name);
* installs backfill_server_id_batch v2: the mapping, else the one member with that
  display name, else the creator; the rows it cannot resolve get reasons ending in
  _resolution_failed (seed 002's `fallback_reason LIKE '%failed%'` finds them);
* installs correct_server_id_batch v1 and its per-table wrappers, the batch functions of
  the backfills {sales,consignments,returns}_server_id_correction (migrations/
  backfills.toml; `venuedb rollout bar-observability` runs them): each row the backfill
  credited by fallback, still holding what the backfill wrote, whose name now resolves,
  gets that server, logged;
* builds the partial index migration_server_id_log_unresolved_idx (the rows the backfill
  could not resolve, read by the check migration_server_id_failures) CONCURRENTLY.

Lock budget: ADD COLUMN without default is a catalog change (a brief ACCESS EXCLUSIVE
lock on migration_server_id_log, written only by backfills); the index is built
CONCURRENTLY outside the transaction; functions are CREATE OR REPLACE. Every step is
idempotent, so a rerun resumes. The downgrade reinstalls v1 and drops the columns with
the correction audit (the corrected server_ids stay in the tables: undo them first with
the runbook's query if they must go).
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently
from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_017"
down_revision = "bar_016"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True

TABLES = ("sales", "consignments", "returns")
API_ROLES = "anon, authenticated, service_role"
INDEX = "migration_server_id_log_unresolved_idx"


def upgrade() -> None:
    execute_sql("""
ALTER TABLE public.migration_server_id_log
    ADD COLUMN IF NOT EXISTS corrected_server_id uuid,
    ADD COLUMN IF NOT EXISTS corrected_at timestamptz,
    ADD COLUMN IF NOT EXISTS correction_reason text;
COMMENT ON COLUMN public.migration_server_id_log.fallback_reason IS
    'Why the backfill fell back (NULL: a mapping or a display name resolved the name). '
    'Used the creator: no_server_name_used_creator, no_mapping_used_creator, '
    'ambiguous_name_used_creator. Left NULL: no_server_name_resolution_failed, '
    'no_mapping_resolution_failed, ambiguous_name_resolution_failed (backfill v2), '
    'no_server_name_creator_missing, no_mapping_creator_missing (v1, mode-switching).';
COMMENT ON COLUMN public.migration_server_id_log.corrected_server_id IS
    'The server_id a correction set (resolved_server_id keeps what the backfill had set).';
COMMENT ON COLUMN public.migration_server_id_log.correction_reason IS
    'corrected_by_mapping, corrected_by_display_name, or ambiguous_name_not_corrected.';
""")
    install_sql_file("functions/backfill_server_id_batch/v2.sql")
    install_sql_file("functions/correct_server_id_batch/v1.sql")
    functions = ["public.correct_server_id_batch(text, uuid, uuid)"]
    for table in TABLES:
        install_sql_file(f"functions/correct_{table}_server_id/v1.sql")
        functions.append(f"public.correct_{table}_server_id(uuid, uuid)")
    execute_sql(
        "".join(f"REVOKE ALL ON FUNCTION {f} FROM PUBLIC, {API_ROLES};\n" for f in functions)
    )
    create_index_concurrently(
        INDEX,
        "ON public.migration_server_id_log USING btree (table_name, row_id) "
        "WHERE resolved_server_id IS NULL",
    )


def downgrade() -> None:
    drop_index_concurrently(INDEX)
    execute_sql(
        "".join(
            f"DROP FUNCTION IF EXISTS public.correct_{table}_server_id(uuid, uuid);\n"
            for table in TABLES
        )
        + "DROP FUNCTION IF EXISTS public.correct_server_id_batch(text, uuid, uuid);\n"
    )
    install_sql_file("functions/backfill_server_id_batch/v1.sql")
    execute_sql("""
COMMENT ON COLUMN public.migration_server_id_log.fallback_reason IS NULL;
ALTER TABLE public.migration_server_id_log
    DROP COLUMN IF EXISTS correction_reason,
    DROP COLUMN IF EXISTS corrected_at,
    DROP COLUMN IF EXISTS corrected_server_id;
""")
