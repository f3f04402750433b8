"""capacity-overlap: confirm_hold_assignment_tx v12, conflicts returned, evidence persisted.

Revision ID: booking_007
Revises: booking_006
Release: capacity-overlap

v12 confirms a hold atomically or confirms nothing and returns the conflicting
allocations; every call writes its evidence to booking_confirmation_results. Its
result has two more columns than v11, so the function is dropped and created (both in
this revision's transaction: callers never see it missing). The downgrade reinstalls
v11 from its own file.
"""

from alembic import op

from toolkit.sqlfiles import install_sql_file

revision = "booking_007"
down_revision = "booking_006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "-- lint: allow ban-drop-function: v12 returns two more columns, so it is dropped and "
        "created in this one transaction; callers never see it missing\n"
        "DROP FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid)"
    )
    install_sql_file("functions/confirm_hold_conflicts/v1.sql")
    install_sql_file("functions/confirm_hold_assignment_tx/v12.sql")


def downgrade() -> None:
    op.execute("""
DROP FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid);
DROP FUNCTION public.confirm_hold_conflicts(uuid, uuid[], tstzrange);
""")
    install_sql_file("functions/confirm_hold_assignment_tx/v11.sql")
