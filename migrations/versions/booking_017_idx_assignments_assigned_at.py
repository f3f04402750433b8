"""assignment-times: the index that finds the assignments made in a check's window.

Revision ID: booking_017
Revises: booking_016
Release: assignment-times

Issue 19: the health checks combination_usage_rate and average_tables_per_booking
(sql/checks/) count the table assignments made in their window
(assigned_at > now() - lookback, one day). No index covered assigned_at, so every run
read all the assignments ever made: at 1,000,000 about 165 ms a check on this machine.
With this index a run reads one day's assignments (about 2 ms):

    idx_booking_table_assignments_assigned_at   booking_table_assignments (assigned_at)

Lock budget: built CONCURRENTLY (writers keep going); idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "booking_017"
down_revision = "booking_016"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True

INDEXES = (
    (
        "idx_booking_table_assignments_assigned_at",
        "ON public.booking_table_assignments USING btree (assigned_at)",
    ),
)


def upgrade() -> None:
    for name, definition in INDEXES:
        create_index_concurrently(name, definition)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        drop_index_concurrently(name)
