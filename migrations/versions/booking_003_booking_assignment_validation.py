"""table-combinations: no booking is ever committed as confirmed without tables.

Revision ID: booking_003
Revises: booking_002
Release: table-combinations

Seed 000's migration 20251105000000_add_booking_assignment_constraint: index
idx_booking_table_assignments_booking_id, trigger booking_assignment_validation with
validate_booking_has_assignments(), and the reset of orphaned confirmed bookings.

Lock budget: the index is built CONCURRENTLY; the triggers need a SHARE ROW EXCLUSIVE
lock on bookings and booking_table_assignments only for the catalog change; the cleanup
runs after the triggers are committed (so no new orphan can appear behind it) in its
own transaction, holding row locks on the orphans only. Every step is idempotent, so
running the revision again after a crash finishes it.
"""

from alembic import op

from toolkit.online import create_index_concurrently, drop_index_concurrently, outside_transaction
from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "booking_003"
down_revision = "booking_002"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / batches); idempotent, so a rerun resumes.
RESUMABLE = True


def upgrade() -> None:
    create_index_concurrently(
        "idx_booking_table_assignments_booking_id",
        "ON public.booking_table_assignments USING btree (booking_id)",
    )
    install_sql_file("functions/validate_booking_has_assignments/v1.sql")
    install_sql_file("functions/validate_booking_assignment_removal/v1.sql")
    execute_sql("""
DO $triggers$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'booking_assignment_validation'
                     AND tgrelid = 'public.bookings'::regclass) THEN
        CREATE CONSTRAINT TRIGGER booking_assignment_validation
            AFTER INSERT OR UPDATE OF status ON public.bookings
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW
            WHEN (NEW.status = 'confirmed')
            EXECUTE FUNCTION public.validate_booking_has_assignments();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'booking_assignment_removal_validation'
                     AND tgrelid = 'public.booking_table_assignments'::regclass) THEN
        CREATE CONSTRAINT TRIGGER booking_assignment_removal_validation
            AFTER DELETE OR UPDATE OF booking_id ON public.booking_table_assignments
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW
            EXECUTE FUNCTION public.validate_booking_assignment_removal();
    END IF;
END
$triggers$;
""")
    with outside_transaction():
        execute_sql("""
DO $cleanup$
DECLARE
    v_reset integer;
BEGIN
    UPDATE public.bookings b
    SET status = 'pending', updated_at = now()
    WHERE b.status = 'confirmed'
      AND NOT EXISTS (
          SELECT 1 FROM public.booking_table_assignments a WHERE a.booking_id = b.id
      );
    GET DIAGNOSTICS v_reset = ROW_COUNT;
    IF v_reset = 0 THEN
        RAISE NOTICE 'No orphaned confirmed bookings found';
    ELSE
        RAISE NOTICE 'Successfully reset % orphaned bookings to pending status', v_reset;
    END IF;
END
$cleanup$;
""")


def downgrade() -> None:
    # Seed 000 "Level 2": the triggers and their functions go; bookings reset to pending
    # by the upgrade stay pending (the data change is not reversible, and is safe).
    op.execute("""
DROP TRIGGER IF EXISTS booking_assignment_removal_validation ON public.booking_table_assignments;
DROP TRIGGER IF EXISTS booking_assignment_validation ON public.bookings;
DROP FUNCTION IF EXISTS public.validate_booking_assignment_removal();
DROP FUNCTION IF EXISTS public.validate_booking_has_assignments();
""")
    drop_index_concurrently("idx_booking_table_assignments_booking_id")
