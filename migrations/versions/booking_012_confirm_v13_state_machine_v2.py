"""booking-integrity: confirm_hold_assignment_tx v13 and the state machine v2.

Revision ID: booking_012
Revises: booking_011
Release: booking-integrity

Issue 15, hole 3: v12 confirmed a cancelled booking, and confirmed an already confirmed
booking again onto more tables through a second hold; v13 confirms only a pending
booking (SQLSTATE 55000) and only tables of the booking's restaurant (22023). Same
signature and result, so CREATE OR REPLACE: callers (auto_assign_booking, the
coordinator) never see it missing.

Hole 4: the assignment state machine (v1) checked UPDATE only, and NULL could enter any
state. v2 treats NULL as 'created', checks INSERT too (a booking enters at 'created'),
and ties the pipeline to status (only a pending booking moves through it; 'confirmed'
needs a confirmed booking). NULL stays allowed, so no table rewrite and no backfill of
bookings that existed before assignment-pipeline-v3: they are at 'created', by rule.
The trigger booking_assignment_state_machine gains INSERT: CREATE OR REPLACE TRIGGER
(PostgreSQL 14+) swaps it in one catalog change under a brief lock.

The downgrade reinstalls v12, v1 and the UPDATE-only trigger from their own files.
"""

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "booking_012"
down_revision = "booking_011"
branch_labels = None
depends_on = None


def _trigger(events: str) -> str:
    return f"""
CREATE OR REPLACE TRIGGER booking_assignment_state_machine
    {events} ON public.bookings
    FOR EACH ROW EXECUTE FUNCTION public.enforce_assignment_state_transition();
"""


def upgrade() -> None:
    install_sql_file("functions/confirm_hold_assignment_tx/v13.sql")
    install_sql_file("functions/enforce_assignment_state_transition/v2.sql")
    execute_sql(_trigger("BEFORE INSERT OR UPDATE OF assignment_state"))


def downgrade() -> None:
    execute_sql(_trigger("BEFORE UPDATE OF assignment_state"))
    install_sql_file("functions/enforce_assignment_state_transition/v1.sql")
    install_sql_file("functions/confirm_hold_assignment_tx/v12.sql")
