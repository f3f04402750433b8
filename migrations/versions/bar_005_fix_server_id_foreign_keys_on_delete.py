"""mode-switching: the server_id foreign keys become ON DELETE SET NULL.

Revision ID: bar_005
Revises: bar_004
Release: mode-switching

Seed 002's migration 20251224130400_fix_server_id_foreign_keys_on_delete: deleting a user
must not be blocked by (or delete) the sales, consignments and returns they served;
server_id becomes NULL, the row stays.

Lock budget, per table: the ON DELETE SET NULL twin is added NOT VALID (catalog only)
under a temporary name, validated outside the revision's transaction (SHARE UPDATE
EXCLUSIVE: writers keep going during the scan), then in one short transaction the old
constraint is dropped and the twin takes its name ({table}_server_id_fkey, so the seed's
information_schema check finds it). Each step checks the catalog first, so a rerun after
a crash resumes. The downgrade is the same swap back to NO ACTION.
"""

from toolkit.online import outside_transaction
from toolkit.sqlfiles import execute_sql

revision = "bar_005"
down_revision = "bar_004"
branch_labels = None
depends_on = None
# Steps out of its transaction (VALIDATE); idempotent, so a rerun resumes.
RESUMABLE = True

TABLES = ("sales", "consignments", "returns")


def _swap(table: str, on_delete: str, deltype: str) -> None:
    """Make {table}_server_id_fkey reference auth.users with the given ON DELETE action.

    deltype is pg_constraint.confdeltype of that action ('n' SET NULL, 'a' NO ACTION).
    """
    final = f"{table}_server_id_fkey"
    twin = f"{table}_server_id_fkey_swap"
    execute_sql(f"""
DO $swap$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'public.{table}'::regclass
                     AND conname = '{final}' AND confdeltype = '{deltype}')
       AND NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = 'public.{table}'::regclass AND conname = '{twin}') THEN
        ALTER TABLE public.{table}
            ADD CONSTRAINT {twin} FOREIGN KEY (server_id)
            REFERENCES auth.users (id) {on_delete} NOT VALID;
    END IF;
END
$swap$;
""")
    with outside_transaction():
        execute_sql(f"""
DO $validate$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'public.{table}'::regclass AND conname = '{twin}') THEN
        ALTER TABLE public.{table} VALIDATE CONSTRAINT {twin};
    END IF;
END
$validate$;
""")
        # One statement, so one short transaction: drop the old, rename the twin.
        execute_sql(f"""
DO $rename$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'public.{table}'::regclass AND conname = '{twin}') THEN
        ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {final};
        ALTER TABLE public.{table} RENAME CONSTRAINT {twin} TO {final};
    END IF;
END
$rename$;
""")


def upgrade() -> None:
    for table in TABLES:
        _swap(table, "ON DELETE SET NULL", "n")


def downgrade() -> None:
    for table in TABLES:
        _swap(table, "", "a")
