"""booking-observability: the state machine's events say reason only for a failure.

Revision ID: booking_015
Revises: booking_014
Release: booking-observability

Issue 19, seed 004: the graduation metric (success/error ratio > 97 % before raising
MAX_PARALLEL) counts an event with context.reason as a failure, and
enforce_assignment_state_transition v2 wrote the caller's reason on every transition, so
every state-machine event read as a failure. v3 writes {from, to, step} on every
transition and adds reason only to a failure (into manual_review or failed, or back to
capacity_verified after a lost plan or hold); the rules themselves are v2's. The trigger
booking_assignment_state_machine calls the function by name, so it is untouched.

Lock budget: a catalog change. The downgrade reinstalls v2 from its own file.
"""

from toolkit.sqlfiles import install_sql_file

revision = "booking_015"
down_revision = "booking_014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_sql_file("functions/enforce_assignment_state_transition/v3.sql")


def downgrade() -> None:
    install_sql_file("functions/enforce_assignment_state_transition/v2.sql")
