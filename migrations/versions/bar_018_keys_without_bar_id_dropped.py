"""bar-distribution-keys: the foreign key that stands in the way of distributing by bar_id.

Revision ID: bar_018
Revises: bar_017
Release: bar-distribution-keys

Issue 22: every key between the bar tables must include bar_id, so that they can be
distributed by it (Citus: a foreign key between distributed tables includes the
distribution column on both sides; a coordinator-local table may reference reference
tables only). One foreign key breaks that rule, and goes:

* returns_sale_id_fkey, (sale_id) -> sales (id) ON DELETE SET NULL: it holds sales to a
  key without bar_id, and it is redundant since bar_014: returns_bar_id_sale_id_fkey,
  (bar_id, sale_id) -> sales (bar_id, id) ON DELETE SET NULL (sale_id), refuses every
  return the single-column key refused (and a return of another bar's sale besides) and
  clears sale_id when the sale is deleted, as this one did. The upgrade checks that the
  composite key is there and validated before dropping this one. bar_019 can then move
  sales' primary key to (bar_id, id): this key depended on sales_pkey (id).

audit_logs_bar_id_fkey stays: audit_logs is a local table (its bar_id is NULL for events
outside any bar) and bars a reference table (migrations/distribution.toml), which a
local table may reference.

Lock budget: dropping a foreign key is a catalog change, no scan: ACCESS EXCLUSIVE on the
two tables of the key (returns and sales) for milliseconds, outside the revision's
transaction. The downgrade adds the key back NOT VALID (catalog only: a brief SHARE ROW
EXCLUSIVE lock on the two tables) and validates it (SHARE UPDATE EXCLUSIVE: writers keep
going during the scan). Every step checks the catalog first, so a rerun resumes.
"""

from toolkit.ops import execute_sql, outside_transaction

revision = "bar_018"
down_revision = "bar_017"
branch_labels = None
depends_on = None
# Steps out of its transaction (a key per transaction, VALIDATE); idempotent: a rerun resumes.
RESUMABLE = True

# name, table, definition (as bar_001 created it), why dropping it is safe
KEYS = (
    (
        "returns_sale_id_fkey",
        "returns",
        "FOREIGN KEY (sale_id) REFERENCES public.sales (id) ON DELETE SET NULL",
        "returns_bar_id_sale_id_fkey (checked above) guarantees all it did",
    ),
)


def upgrade() -> None:
    execute_sql("""
DO $composite_key_first$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'returns_bar_id_sale_id_fkey'
                     AND conrelid = 'public.returns'::regclass AND convalidated) THEN
        RAISE EXCEPTION 'returns_bar_id_sale_id_fkey is missing or not validated: '
            'returns_sale_id_fkey is the only check of returns.sale_id, it stays'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Apply bar-integrity (bar_014) first.';
    END IF;
END
$composite_key_first$;
""")
    # Outside the revision's transaction (autocommit): the drop's lock is held for the
    # drop alone.
    with outside_transaction():
        for name, table, _, why in KEYS:
            execute_sql(f"""
-- squawk-ignore ban-drop-constraint -- {why}
ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {name};
""")


def downgrade() -> None:
    # Each step its own short transaction (autocommit), as the upgrade's drop.
    with outside_transaction():
        for name, table, definition, _ in KEYS:
            execute_sql(f"""
DO $add_{name}$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = '{name}' AND conrelid = 'public.{table}'::regclass) THEN
        ALTER TABLE public.{table} ADD CONSTRAINT {name} {definition} NOT VALID;
    END IF;
END
$add_{name}$;
""")
        for name, table, *_ in KEYS:
            execute_sql(f"""
-- squawk-ignore prefer-robust-stmts -- VALIDATE is idempotent, a rerun validates again
ALTER TABLE public.{table} VALIDATE CONSTRAINT {name};
""")
