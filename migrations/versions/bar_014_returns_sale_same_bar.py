"""bar-integrity: a return references a sale of its own bar.

Revision ID: bar_014
Revises: bar_013
Release: bar-integrity

returns.sale_id referenced any sale (returns_sale_id_fkey -> sales.id): a return of bar A
could point at a sale of bar B, a cross-tenant reference. The composite foreign key
returns_bar_id_sale_id_fkey, (bar_id, sale_id) -> sales (bar_id, id) ON DELETE SET NULL
(sale_id), makes the sale's bar the return's bar (SQLSTATE 23503, foreign_key_violation);
deleting the sale still only clears sale_id (the column list needs PostgreSQL 15).

Lock budget: the unique index idx_sales_bar_id_id that the key references is built
CONCURRENTLY (writers keep going); the foreign key is added NOT VALID (catalog only, a
brief SHARE ROW EXCLUSIVE lock on both tables) and validated outside the revision's
transaction (SHARE UPDATE EXCLUSIVE on returns: writers keep going during the scan).
Each step checks the catalog first, so a rerun resumes. A return that already points at
another bar's sale makes VALIDATE fail, naming the key: correct that row (runbook
bar-integrity.md) and run the revision again; the NOT VALID key already guards new rows.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently, outside_transaction
from toolkit.sqlfiles import execute_sql

revision = "bar_014"
down_revision = "bar_013"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / VALIDATE); idempotent, so a rerun resumes.
RESUMABLE = True

INDEX = "idx_sales_bar_id_id"
FK = "returns_bar_id_sale_id_fkey"


def upgrade() -> None:
    create_index_concurrently(INDEX, "ON public.sales USING btree (bar_id, id)", unique=True)
    execute_sql(f"""
DO $fk$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = '{FK}' AND conrelid = 'public.returns'::regclass) THEN
        ALTER TABLE public.returns
            ADD CONSTRAINT {FK}
            FOREIGN KEY (bar_id, sale_id) REFERENCES public.sales (bar_id, id)
            ON DELETE SET NULL (sale_id) NOT VALID;
    END IF;
END
$fk$;
""")
    with outside_transaction():
        execute_sql(f"""
-- lint: allow prefer-robust-stmts: VALIDATE is idempotent, a rerun validates again
ALTER TABLE public.returns VALIDATE CONSTRAINT {FK};
""")


def downgrade() -> None:
    execute_sql(f"ALTER TABLE public.returns DROP CONSTRAINT IF EXISTS {FK};\n")
    drop_index_concurrently(INDEX)
