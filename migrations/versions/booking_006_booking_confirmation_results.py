"""capacity-overlap: booking_confirmation_results, the evidence of every confirmation.

Revision ID: booking_006
Revises: booking_005
Release: capacity-overlap

Seed 003's audit table: one row per confirmation attempt, confirmed or not, with the
conflicts found and a snapshot of the allocations and capacities the check saw. RLS is
enabled and only service_role may read or write it; a retention procedure deletes rows
older than a given age (default 30 days) in batches, committing between batches.
"""

from alembic import op

from toolkit.sqlfiles import install_sql_file

revision = "booking_006"
down_revision = "booking_005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE public.booking_confirmation_results (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id uuid NOT NULL
        CONSTRAINT booking_confirmation_results_booking_id_fkey
        REFERENCES public.bookings (id) ON DELETE CASCADE,
    confirmed boolean NOT NULL,
    conflict_details jsonb,
    checked_at timestamptz NOT NULL DEFAULT now(),
    snapshot_data jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_booking_confirmation_results_booking_id
    ON public.booking_confirmation_results (booking_id);
CREATE INDEX idx_booking_confirmation_results_checked_at
    ON public.booking_confirmation_results (checked_at);

ALTER TABLE public.booking_confirmation_results ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.booking_confirmation_results FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.booking_confirmation_results TO service_role;
CREATE POLICY booking_confirmation_results_service_role_all
    ON public.booking_confirmation_results
    FOR ALL TO service_role USING (true) WITH CHECK (true);
""")
    install_sql_file("functions/prune_booking_confirmation_results/v1.sql")


def downgrade() -> None:
    op.execute("""
DROP PROCEDURE public.prune_booking_confirmation_results(interval, integer, bigint);
DROP TABLE public.booking_confirmation_results;
""")
