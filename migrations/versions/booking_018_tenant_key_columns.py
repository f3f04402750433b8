"""booking-distribution-keys: restaurant_id on the three booking tables that had none.

Revision ID: booking_018
Revises: booking_017
Release: booking-distribution-keys

Issue 22 (part 5): to be distributed by restaurant_id (Citus), every booking table must
hold the tenant key in every row, and every key must include it. booking_table_assignments
and booking_confirmation_results (children of bookings) and table_hold_members (child of
table_holds) had no restaurant_id. This revision is the expand step:

* restaurant_id uuid, nullable and without a default (a catalog change, no rewrite), on
  the three tables;
* the trigger <table>_restaurant_id_fill (fill_restaurant_id_from_parent v1) BEFORE
  INSERT OR UPDATE OF restaurant_id and the parent column: a row written without
  restaurant_id gets its parent's, a row naming another restaurant than its parent's is
  refused (23503). Existing functions and the application keep inserting without naming
  the column;
* the batch functions of the backfills *_restaurant_id (migrations/backfills.toml), which
  fill the rows written before this revision.

booking_019 adds NOT NULL, booking_020 puts restaurant_id into every key.

Lock budget: ADD COLUMN and CREATE TRIGGER take a brief ACCESS EXCLUSIVE / SHARE ROW
EXCLUSIVE lock per table (catalog only, no scan); everything in the revision's transaction.
"""

from toolkit.ops import execute_sql, install_sql_file

revision = "booking_018"
down_revision = "booking_017"
branch_labels = None
depends_on = None

# table, parent column: the trigger fires when either changes.
CHILDREN = (
    ("booking_table_assignments", "booking_id"),
    ("booking_confirmation_results", "booking_id"),
    ("table_hold_members", "hold_id"),
)
TRIGGER_FUNCTION = "FUNCTION public.fill_restaurant_id_from_parent()"
BATCH_FUNCTION = "FUNCTION public.backfill_restaurant_id_batch(text, uuid, uuid)"


def _wrapper(table: str) -> str:
    return f"FUNCTION public.backfill_{table}_restaurant_id(uuid, uuid)"


def upgrade() -> None:
    execute_sql(
        "".join(
            f"ALTER TABLE public.{table} ADD COLUMN IF NOT EXISTS restaurant_id uuid;\n"
            for table, _ in CHILDREN
        )
    )
    install_sql_file("functions/fill_restaurant_id_from_parent/v1.sql")
    install_sql_file("functions/backfill_restaurant_id_batch/v1.sql")
    for table, _ in CHILDREN:
        install_sql_file(f"functions/backfill_{table}_restaurant_id/v1.sql")
    # Triggers are executed by their triggers and the backfills by the deployer: nobody
    # gets EXECUTE (booking_013's rule for booking functions).
    functions = [TRIGGER_FUNCTION, BATCH_FUNCTION] + [_wrapper(t) for t, _ in CHILDREN]
    execute_sql("".join(f"REVOKE ALL ON {f} FROM PUBLIC;\n" for f in functions))
    execute_sql(
        "".join(
            f"CREATE OR REPLACE TRIGGER {table}_restaurant_id_fill\n"
            f"    BEFORE INSERT OR UPDATE OF restaurant_id, {parent} ON public.{table}\n"
            "    FOR EACH ROW EXECUTE FUNCTION public.fill_restaurant_id_from_parent();\n"
            for table, parent in CHILDREN
        )
    )


def downgrade() -> None:
    execute_sql(
        "".join(
            f"DROP TRIGGER IF EXISTS {table}_restaurant_id_fill ON public.{table};\n"
            for table, _ in CHILDREN
        )
        + "".join(f"DROP {_wrapper(t)};\n" for t, _ in reversed(CHILDREN))
        + f"DROP {BATCH_FUNCTION};\nDROP {TRIGGER_FUNCTION};\n"
        + "".join(
            f"ALTER TABLE public.{table} DROP COLUMN IF EXISTS restaurant_id;\n"
            for table, _ in reversed(CHILDREN)
        )
    )
