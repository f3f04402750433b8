"""booking-integrity: a table, and everything that names it, belongs to one restaurant.

Revision ID: booking_010
Revises: booking_009
Release: booking-integrity

Issue 15, hole 1: allocations_no_overlap compares allocations within one restaurant, and
nothing tied an allocation's resource_id (or an assignment's or a hold's table) to the
restaurant that owns the table, so confirm_hold_assignment_tx v12 seated two
restaurants' bookings on one physical table at overlapping times. Now:

* allocations_booking_restaurant_fkey: (restaurant_id, booking_id) REFERENCES
  bookings (restaurant_id, id): an allocation belongs to its booking's restaurant;
* trigger function enforce_same_restaurant() v1 on allocations, booking_table_assignments
  and table_hold_members (the table must be a table of that restaurant), and on
  bookings, table_holds and table_inventory (restaurant_id never changes, so a
  reference checked once stays true).

Lock budget: the unique key the foreign key references is built CONCURRENTLY and
attached (a brief lock on bookings); the foreign key is added NOT VALID (catalog only)
and validated outside the revision's transaction (SHARE UPDATE EXCLUSIVE: writers keep
going during the scan); CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock per
table. Existing rows that break the trigger rule are reported by the health check
cross_restaurant_tables. Every step checks the catalog first, so a rerun resumes.
"""

from alembic import op

from toolkit.online import create_index_concurrently, drop_index_concurrently, outside_transaction
from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "booking_010"
down_revision = "booking_009"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / VALIDATE); idempotent, so a rerun resumes.
RESUMABLE = True

# trigger name, table, timing and events, WHEN condition
TRIGGERS = (
    (
        "allocations_table_restaurant_check",
        "allocations",
        "BEFORE INSERT OR UPDATE OF restaurant_id, resource_type, resource_id",
        "NEW.resource_type = 'table'",
    ),
    (
        "booking_table_assignments_table_restaurant_check",
        "booking_table_assignments",
        "BEFORE INSERT OR UPDATE OF booking_id, table_id",
        "",
    ),
    (
        "table_hold_members_table_restaurant_check",
        "table_hold_members",
        "BEFORE INSERT OR UPDATE OF hold_id, table_id",
        "",
    ),
    (
        "bookings_restaurant_id_immutable",
        "bookings",
        "BEFORE UPDATE OF restaurant_id, id",
        "OLD.restaurant_id IS DISTINCT FROM NEW.restaurant_id OR OLD.id <> NEW.id",
    ),
    (
        "table_holds_restaurant_id_immutable",
        "table_holds",
        "BEFORE UPDATE OF restaurant_id, id",
        "OLD.restaurant_id IS DISTINCT FROM NEW.restaurant_id OR OLD.id <> NEW.id",
    ),
    (
        "table_inventory_restaurant_id_immutable",
        "table_inventory",
        "BEFORE UPDATE OF restaurant_id, id",
        "OLD.restaurant_id IS DISTINCT FROM NEW.restaurant_id OR OLD.id <> NEW.id",
    ),
)


def _create_trigger(name: str, table: str, events: str, when: str) -> str:
    condition = f"\n            WHEN ({when})" if when else ""
    return f"""
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{name}'
                   AND tgrelid = 'public.{table}'::regclass) THEN
        CREATE TRIGGER {name}
            {events} ON public.{table}
            FOR EACH ROW{condition}
            EXECUTE FUNCTION public.enforce_same_restaurant();
    END IF;"""


def upgrade() -> None:
    create_index_concurrently(
        "bookings_restaurant_id_id_key",
        "ON public.bookings USING btree (restaurant_id, id)",
        unique=True,
    )
    install_sql_file("functions/enforce_same_restaurant/v1.sql")
    body = "".join(_create_trigger(*t) for t in TRIGGERS)
    execute_sql(f"""
DO $same_restaurant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'bookings_restaurant_id_id_key'
                   AND conrelid = 'public.bookings'::regclass) THEN
        ALTER TABLE public.bookings
            ADD CONSTRAINT bookings_restaurant_id_id_key
            UNIQUE USING INDEX bookings_restaurant_id_id_key;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'allocations_booking_restaurant_fkey'
                     AND conrelid = 'public.allocations'::regclass) THEN
        ALTER TABLE public.allocations
            ADD CONSTRAINT allocations_booking_restaurant_fkey
            FOREIGN KEY (restaurant_id, booking_id)
            REFERENCES public.bookings (restaurant_id, id) ON DELETE CASCADE NOT VALID;
    END IF;{body}
END
$same_restaurant$;
""")
    with outside_transaction():
        op.execute(
            "-- lint: allow prefer-robust-stmts: VALIDATE is idempotent; outside the "
            "transaction on purpose (SHARE UPDATE EXCLUSIVE only, writes go on)\n"
            "ALTER TABLE public.allocations VALIDATE CONSTRAINT allocations_booking_restaurant_fkey"
        )


def downgrade() -> None:
    drops = "".join(
        f"DROP TRIGGER IF EXISTS {name} ON public.{table};\n" for name, table, *_ in TRIGGERS
    )
    execute_sql(f"""
{drops}DROP FUNCTION IF EXISTS public.enforce_same_restaurant();
ALTER TABLE public.allocations DROP CONSTRAINT IF EXISTS allocations_booking_restaurant_fkey;
ALTER TABLE public.bookings DROP CONSTRAINT IF EXISTS bookings_restaurant_id_id_key;
""")
    # Dropping the constraint dropped its index too; this only covers a half-finished upgrade.
    drop_index_concurrently("bookings_restaurant_id_id_key")
