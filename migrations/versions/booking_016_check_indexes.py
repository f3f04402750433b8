"""booking-observability: the indexes that find what is still in use, for two checks.

Revision ID: booking_016
Revises: booking_015
Release: booking-observability

Issue 19: at 1,000,000 bookings confirmed_bookings_out_of_step and
cross_restaurant_tables hit their 5 s statement_timeout. Both look at the bookings,
allocations, assignments and holds still in use (ending within the window or later),
and no index found those: every run read every booking and allocation ever written, and
the planner, with no statistics on upper("window"), took a third of them to be in use.
The checks' SQL is rewritten too (sql/checks/*.sql say how); these two indexes let a run
read only what is still to come, and give the planner its real share:

    idx_bookings_end_at            bookings (end_at)
    idx_allocations_upper_window   allocations (upper("window"))

The allocations index is copied by capacity-overlap's shadow-table swap like the others
(LIKE ... INCLUDING INDEXES).

Lock budget: built CONCURRENTLY (writers keep going); idempotent, so a rerun resumes.
"""

from toolkit.online import create_index_concurrently, drop_index_concurrently

revision = "booking_016"
down_revision = "booking_015"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY); idempotent, so a rerun resumes.
RESUMABLE = True

INDEXES = (
    ("idx_bookings_end_at", "ON public.bookings USING btree (end_at)"),
    ("idx_allocations_upper_window", 'ON public.allocations USING btree (upper("window"))'),
)


def upgrade() -> None:
    for name, definition in INDEXES:
        create_index_concurrently(name, definition)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        drop_index_concurrently(name)
