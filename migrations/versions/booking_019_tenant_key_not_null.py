"""booking-distribution-keys: restaurant_id NOT NULL on the three tables booking_018 gave it.

Revision ID: booking_019
Revises: booking_018
Release: booking-distribution-keys

Issue 22 (part 5): a distributed table's rows all carry the distribution column. The
contract step after booking_018 and its backfills (booking_table_assignments_restaurant_id,
booking_confirmation_results_restaurant_id, table_hold_members_restaurant_id):

1. the rows still without restaurant_id (the backfills were not run, or rows written
   before booking_018 committed) get their parent's, in keyset batches of 1,000 through
   backfill_restaurant_id_batch(), one short transaction each; after `venuedb backfill
   run` this finds nothing;
2. CHECK (restaurant_id IS NOT NULL) NOT VALID (catalog only), then VALIDATE outside the
   revision's transaction (SHARE UPDATE EXCLUSIVE: writers keep going during the scan);
3. SET NOT NULL, which the validated CHECK lets PostgreSQL do without a scan, and the
   CHECK is dropped (a brief ACCESS EXCLUSIVE lock per table).

Every step checks the catalog first, so a rerun after a crash or a lock timeout resumes.
"""

from alembic import context, op

from toolkit.ops import execute_sql, notice, outside_transaction

revision = "booking_019"
down_revision = "booking_018"
branch_labels = None
depends_on = None
# Fills and validates outside its transaction; idempotent, so a rerun resumes.
RESUMABLE = True

# table, the key its backfill walks
CHILDREN = (
    ("booking_table_assignments", "id"),
    ("booking_confirmation_results", "id"),
    ("table_hold_members", "hold_id"),
)
BATCH = 1000


def _check(table: str) -> str:
    return f"{table}_restaurant_id_not_null"


def _fill_leftovers(table: str, key: str) -> None:
    """The rows without restaurant_id, batch by batch in key order, each batch its own
    transaction (the backfill engine's walk, for what the backfills left)."""
    if context.is_offline_mode():
        op.execute(
            f"-- {table}: rows without restaurant_id are filled here, in batches of "
            f"{BATCH}, by backfill_restaurant_id_batch('{table}', from, to) (online only; "
            f"offline, run `venuedb backfill run {table}_restaurant_id` first)"
        )
        return
    bind, last, filled = op.get_bind(), None, 0
    while True:
        found = bind.exec_driver_sql(
            f"SELECT k FROM (SELECT {key} AS k FROM public.{table} "
            f"WHERE restaurant_id IS NULL AND (%(last)s::uuid IS NULL OR {key} > %(last)s::uuid) "
            f"ORDER BY {key} LIMIT {BATCH}) AS batch ORDER BY k DESC LIMIT 1",
            {"last": last},
        ).fetchone()
        if found is None:
            break
        upper = found[0]
        (changed,) = bind.exec_driver_sql(
            "SELECT public.backfill_restaurant_id_batch(%(t)s, %(lo)s::uuid, %(hi)s::uuid)",
            {"t": table, "lo": last, "hi": upper},
        ).fetchone()
        filled, last = filled + (changed or 0), upper
    if filled:
        notice(f"{table}: {filled} rows without restaurant_id filled from their parent")


def upgrade() -> None:
    with outside_transaction():
        for table, key in CHILDREN:
            _fill_leftovers(table, key)
    execute_sql(
        "DO $not_null$\nBEGIN"
        + "".join(
            f"""
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'public.{table}'::regclass
                   AND attname = 'restaurant_id' AND attnotnull)
       AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{_check(table)}'
                       AND conrelid = 'public.{table}'::regclass) THEN
        ALTER TABLE public.{table} ADD CONSTRAINT {_check(table)}
            CHECK (restaurant_id IS NOT NULL) NOT VALID;
    END IF;"""
            for table, _ in CHILDREN
        )
        + "\nEND\n$not_null$;\n"
    )
    with outside_transaction():
        for table, _ in CHILDREN:
            execute_sql(f"""
DO $validate$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{_check(table)}'
               AND conrelid = 'public.{table}'::regclass AND NOT convalidated) THEN
        ALTER TABLE public.{table} VALIDATE CONSTRAINT {_check(table)};
    END IF;
END
$validate$;
""")
    execute_sql(
        "".join(
            f"-- squawk-ignore adding-not-nullable-field -- the validated CHECK "
            f"{_check(table)} proves it: no scan\n"
            f"ALTER TABLE public.{table} ALTER COLUMN restaurant_id SET NOT NULL;\n"
            f"-- squawk-ignore ban-drop-constraint -- the NOT NULL just set says the same\n"
            f"ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {_check(table)};\n"
            for table, _ in CHILDREN
        )
    )


def downgrade() -> None:
    execute_sql(
        "".join(
            f"ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {_check(table)};\n"
            f"ALTER TABLE public.{table} ALTER COLUMN restaurant_id DROP NOT NULL;\n"
            for table, _ in reversed(CHILDREN)
        )
    )
