"""capacity-overlap: allocations_no_overlap, the overlap rule scoped to a restaurant.

Revision ID: booking_005
Revises: booking_004
Release: capacity-overlap

Seed 003's migration 20251113203000_capacity_overlap_and_confirm_cache: replace
allocations_resource_window_excl (resource_type, resource_id, window; INITIALLY
DEFERRED) with allocations_no_overlap (restaurant_id, resource_type, resource_id,
window; INITIALLY IMMEDIATE, still DEFERRABLE for batch operations).

An exclusion constraint has no online form, so on a big table this runs as a
shadow-table swap (toolkit/shadow_swap.py): the old guarantee holds until the swap,
writes are blocked only for the swap's brief lock. A pre-flight refuses to start when
rows would violate the new constraint. The downgrade is the same swap in reverse,
restoring the seed's rollback definition exactly.
"""

from alembic import op

from toolkit.shadow_swap import ExclusionSwap, preflight, replace_exclusion_constraint

revision = "booking_005"
down_revision = "booking_004"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY / batches); idempotent, so a rerun resumes.
RESUMABLE = True

OLD = (
    'EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&) '
    "WHERE (NOT shadow) DEFERRABLE INITIALLY DEFERRED"
)
NEW = (
    "EXCLUDE USING gist (restaurant_id WITH =, resource_type WITH =, resource_id WITH =, "
    '"window" WITH &&) WHERE (NOT shadow) DEFERRABLE INITIALLY IMMEDIATE'
)

UPGRADE = ExclusionSwap(
    table="allocations",
    drop_constraint="allocations_resource_window_excl",
    add_constraint="allocations_no_overlap",
    add_definition=NEW,
    equal_columns=("restaurant_id", "resource_type", "resource_id"),
    overlap_column="window",
    predicate="NOT {a}.shadow",
)
DOWNGRADE = ExclusionSwap(
    table="allocations",
    drop_constraint="allocations_no_overlap",
    add_constraint="allocations_resource_window_excl",
    add_definition=OLD,
    equal_columns=("resource_type", "resource_id"),
    overlap_column="window",
    predicate="NOT {a}.shadow",
)

__all__ = ["DOWNGRADE", "UPGRADE", "preflight"]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    replace_exclusion_constraint(UPGRADE)


def downgrade() -> None:
    replace_exclusion_constraint(DOWNGRADE)
