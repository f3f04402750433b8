"""allocation-lookups: idx_allocations_resource_id, so a confirmation reads only its tables.

Revision ID: booking_009
Revises: booking_008
Release: allocation-lookups

confirm_hold_assignment_tx (v12, seed 003) snapshots the allocations of the hold's tables
that overlap the booking's window, shadow rows included: that is the evidence the seed
asks booking_confirmation_results to keep. No index served that read (the one behind
allocations_no_overlap is partial, WHERE NOT shadow), so every confirmation scanned the
whole table: 95 ms per call and 29 confirmations/s at 1,000,000 allocations, 1 ms and
1,115/s with this index (bench/confirm.py). The index, not a v13 that drops shadow rows
from the evidence, because it changes no result.

Lock budget: built CONCURRENTLY (writers keep going); idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "booking_009"
down_revision = "booking_008"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True


def upgrade() -> None:
    create_index_concurrently(
        "idx_allocations_resource_id", "ON public.allocations USING btree (resource_id)"
    )


def downgrade() -> None:
    drop_index_concurrently("idx_allocations_resource_id")
