"""bar-owner-lookups: idx_bars_owner_id, so the row-level security finds a user's bars.

Revision ID: bar_008
Revises: bar_007
Release: bar-owner-lookups

Every policy of mode-switching (bar_004) asks bar_ids_with_role(), which finds the bars a
user owns by bars.owner_id = auth.uid(). No index served it: each call read every bar and
evaluated auth.uid() once per bar (about 105 us at 500 bars, and an INSERT ... RETURNING
makes two or three calls), so the cost of every RLS-checked write grew with the number of
bars. With the index a call takes 8 us: sales through the simplified-mode policy went
from 2,090 to 3,887 per second with 4 clients (bench/sales_rls.py).

Lock budget: built CONCURRENTLY (writers keep going); idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "bar_008"
down_revision = "bar_007"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True


def upgrade() -> None:
    create_index_concurrently("idx_bars_owner_id", "ON public.bars USING btree (owner_id)")


def downgrade() -> None:
    drop_index_concurrently("idx_bars_owner_id")
