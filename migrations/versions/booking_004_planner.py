"""table-combinations: the combination planner and auto-assignment, in the database.

Revision ID: booking_004
Revises: booking_003
Release: table-combinations

plan_booking_tables() ranks the tables a booking could sit at (a single table that
fits first, then combinations of up to k_max movable tables of one zone, adjacency
optional, never more than max_combination_evaluations sets examined);
auto_assign_booking() turns the best candidate into a hold and confirms it through
confirm_hold_assignment_tx, serialised per zone by an advisory lock. Both take the
seed 000 flags as a JSON options object (`venuedb flags`). Functions only: no lock
on any table.
"""

from alembic import op

from toolkit.sqlfiles import install_sql_file

revision = "booking_004"
down_revision = "booking_003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_sql_file("functions/plan_booking_tables/v1.sql")
    install_sql_file("functions/auto_assign_booking/v1.sql")


def downgrade() -> None:
    op.execute("""
DROP FUNCTION public.auto_assign_booking(uuid, jsonb);
DROP FUNCTION public.plan_booking_tables(uuid, jsonb);
""")
