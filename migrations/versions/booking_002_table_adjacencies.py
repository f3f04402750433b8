"""table-combinations: table_adjacencies, which tables stand next to each other.

Revision ID: booking_002
Revises: booking_001
Release: table-combinations

Seed 000's planner may only merge tables that touch when adjacency is required. A pair
and its mirror are one fact (one row, whichever order it was written in), a table is
never its own neighbour, and both tables belong to the pair's restaurant: composite
foreign keys on (restaurant_id, table id) make a cross-restaurant pair impossible. The
unique key they reference is built CONCURRENTLY and attached, so table_inventory is
never locked for the index build.
"""

from alembic import op

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "booking_002"
down_revision = "booking_001"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / batches); idempotent, so a rerun resumes.
RESUMABLE = True


def upgrade() -> None:
    create_index_concurrently(
        "table_inventory_restaurant_id_id_key",
        "ON public.table_inventory USING btree (restaurant_id, id)",
        unique=True,
    )
    op.execute("""
ALTER TABLE public.table_inventory
    ADD CONSTRAINT table_inventory_restaurant_id_id_key
    UNIQUE USING INDEX table_inventory_restaurant_id_id_key;

CREATE TABLE public.table_adjacencies (
    restaurant_id uuid NOT NULL
        CONSTRAINT table_adjacencies_restaurant_id_fkey
        REFERENCES public.restaurants (id) ON DELETE CASCADE,
    table_a uuid NOT NULL,
    table_b uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT table_adjacencies_not_self_check CHECK (table_a <> table_b),
    CONSTRAINT table_adjacencies_table_a_fkey FOREIGN KEY (restaurant_id, table_a)
        REFERENCES public.table_inventory (restaurant_id, id) ON DELETE CASCADE,
    CONSTRAINT table_adjacencies_table_b_fkey FOREIGN KEY (restaurant_id, table_b)
        REFERENCES public.table_inventory (restaurant_id, id) ON DELETE CASCADE
);
-- One fact per unordered pair: (a, b) and (b, a) collide here.
CREATE UNIQUE INDEX table_adjacencies_pair_key
    ON public.table_adjacencies (least(table_a, table_b), greatest(table_a, table_b));
CREATE INDEX table_adjacencies_table_a_idx ON public.table_adjacencies (table_a);
CREATE INDEX table_adjacencies_table_b_idx ON public.table_adjacencies (table_b);
COMMENT ON TABLE public.table_adjacencies IS
    'Symmetric: a row (a, b) means a and b are neighbours; its mirror is the same fact.';
""")


def downgrade() -> None:
    op.execute("""
DROP TABLE public.table_adjacencies;
ALTER TABLE public.table_inventory DROP CONSTRAINT table_inventory_restaurant_id_id_key;
""")
    # Dropping the constraint dropped its index too; this only covers a half-finished upgrade.
    drop_index_concurrently("table_inventory_restaurant_id_id_key")
