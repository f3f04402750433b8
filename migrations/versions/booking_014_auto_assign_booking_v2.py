"""booking-observability: auto_assign_booking v2 reports itself, whoever calls it.

Revision ID: booking_014
Revises: booking_013
Release: booking-observability

Issue 19, seed 000: the success rate, latency and zone-lock checks read
observability_events that only `venuedb assign` wrote around its call of v1, so an
application calling auto_assign_booking() directly was invisible to them. v2 writes its
own auto_assign.summary (status, attempts, latency_ms) in the caller's transaction, and
never lets a zone-lock wait abort that transaction (a bounded wait in a subtransaction
that catches the timeout and a deadlock): the zone_lock_conflict event it writes commits
with the outcome. Same arguments and result keys (plus latency_ms, zone_lock_conflicts,
event_id), so CREATE OR REPLACE, and the grants of booking_013 stay.

Lock budget: a catalog change. The downgrade reinstalls v1 from its own file.
"""

from toolkit.sqlfiles import install_sql_file

revision = "booking_014"
down_revision = "booking_013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install_sql_file("functions/auto_assign_booking/v2.sql")


def downgrade() -> None:
    install_sql_file("functions/auto_assign_booking/v1.sql")
