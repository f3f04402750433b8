"""booking-integrity: a confirmed booking's assignments and allocations stay in step.

Revision ID: booking_011
Revises: booking_010
Release: booking-integrity

Issue 15, hole 2: a confirmed booking's allocations could be deleted, set shadow, or
have their window shrunk while the booking stayed confirmed with its
booking_table_assignments, and the next confirmation of that table succeeded. Three
deferred constraint triggers run validate_booking_allocations() v1 at commit for every
booking they touch: a confirmed or checked-in booking's assigned tables are exactly its
live (not shadow) table allocations, each covering the booking's time.

Existing rows are not rewritten or checked here (constraint triggers fire on change);
the health check confirmed_bookings_out_of_step lists bookings that already disagree.
Lock budget: CREATE CONSTRAINT TRIGGER takes a brief SHARE ROW EXCLUSIVE lock per
table, no scan. Idempotent.
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "booking_011"
down_revision = "booking_010"
branch_labels = None
depends_on = None

# trigger name, table, events, WHEN condition
TRIGGERS = (
    (
        "booking_allocations_validation",
        "bookings",
        "AFTER INSERT OR UPDATE OF status, start_at, end_at",
        "NEW.status IN ('confirmed', 'checked_in')",
    ),
    (
        "allocations_booking_validation",
        "allocations",
        'AFTER INSERT OR DELETE OR UPDATE OF booking_id, resource_type, resource_id, "window", '
        "shadow",
        "",
    ),
    (
        "booking_table_assignments_allocation_validation",
        "booking_table_assignments",
        "AFTER INSERT OR DELETE OR UPDATE OF booking_id, table_id",
        "",
    ),
)


def upgrade() -> None:
    install_sql_file("functions/validate_booking_allocations/v1.sql")
    body = ""
    for name, table, events, when in TRIGGERS:
        condition = f"\n            WHEN ({when})" if when else ""
        body += f"""
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{name}'
                   AND tgrelid = 'public.{table}'::regclass) THEN
        CREATE CONSTRAINT TRIGGER {name}
            {events} ON public.{table}
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW{condition}
            EXECUTE FUNCTION public.validate_booking_allocations();
    END IF;"""
    execute_sql(f"""
DO $in_step$
BEGIN{body}
END
$in_step$;
""")


def downgrade() -> None:
    drops = "".join(f"DROP TRIGGER IF EXISTS {n} ON public.{t};\n" for n, t, *_ in TRIGGERS)
    execute_sql(f"{drops}DROP FUNCTION IF EXISTS public.validate_booking_allocations();\n")
