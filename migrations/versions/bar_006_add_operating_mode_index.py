"""mode-switching: idx_bars_operating_mode on settings->>'operatingMode'.

Revision ID: bar_006
Revises: bar_005
Release: mode-switching

Seed 002's migration 20251224130500_add_operating_mode_index: the row-level security
policies and the rollout queries filter bars by settings->>'operatingMode'. Built
CONCURRENTLY (no lock on bars' writers); idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "bar_006"
down_revision = "bar_005"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True


def upgrade() -> None:
    create_index_concurrently(
        "idx_bars_operating_mode",
        "ON public.bars USING btree ((settings ->> 'operatingMode'))",
    )


def downgrade() -> None:
    drop_index_concurrently("idx_bars_operating_mode")
