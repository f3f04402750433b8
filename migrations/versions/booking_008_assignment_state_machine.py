"""assignment-pipeline-v3: bookings.assignment_state and the state machine that guards it.

Revision ID: booking_008
Revises: booking_007
Release: assignment-pipeline-v3

Seeds 001 and 004: bookings march CREATED -> CAPACITY_VERIFIED -> ... -> CONFIRMED, or
to MANUAL_REVIEW / FAILED. The allowed transitions are the rows of one table,
assignment_state_transitions, written down here; a trigger refuses any other and
logs every transition to observability_events. Existing bookings keep a NULL state
(never seen by the pipeline), so no table rewrite and no backfill: ADD COLUMN without
a default and SET DEFAULT are catalog changes, the CHECK is added NOT VALID and
validated outside the revision's transaction. Also feature_rollouts and
feature_enabled_for() for the per-restaurant rollout of the V3 flag, and a
time_bucket() compatible with TimescaleDB's where none exists (seed 001's panels).
"""

from alembic import op

from toolkit.online import outside_transaction
from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "booking_008"
down_revision = "booking_007"
branch_labels = None
depends_on = None
# Validates its CHECK outside the revision's transaction; idempotent, so a rerun resumes.
RESUMABLE = True

STATES = (
    "created",
    "capacity_verified",
    "tables_planned",
    "tables_held",
    "confirmed",
    "manual_review",
    "failed",
)

# from_state, to_state, why it is allowed
TRANSITIONS = (
    ("created", "capacity_verified", "enough capacity exists for the party"),
    ("created", "manual_review", "no table could ever seat the party"),
    ("created", "failed", "the booking cannot be processed"),
    ("capacity_verified", "tables_planned", "the planner chose tables"),
    ("capacity_verified", "manual_review", "no tables free, or retries exhausted"),
    ("capacity_verified", "failed", "unexpected error"),
    ("tables_planned", "tables_held", "a hold was placed on the chosen tables"),
    ("tables_planned", "capacity_verified", "the plan went stale; plan again"),
    ("tables_planned", "manual_review", "retries exhausted"),
    ("tables_planned", "failed", "unexpected error"),
    ("tables_held", "confirmed", "confirm_hold_assignment_tx confirmed the hold"),
    ("tables_held", "capacity_verified", "the hold lost a race; plan again"),
    ("tables_held", "manual_review", "retries exhausted"),
    ("tables_held", "failed", "unexpected error"),
    ("manual_review", "created", "an operator sent it back to the pipeline"),
    ("manual_review", "confirmed", "an operator assigned tables by hand"),
    ("manual_review", "failed", "an operator gave up on it"),
    ("failed", "created", "an operator retries it"),
)


def upgrade() -> None:
    values = ",\n    ".join(
        "('{}', '{}', '{}')".format(*(v.replace("'", "''") for v in row)) for row in TRANSITIONS
    )
    states = ", ".join(f"'{s}'" for s in STATES)
    execute_sql(f"""
CREATE TABLE IF NOT EXISTS public.assignment_state_transitions (
    from_state text NOT NULL,
    to_state text NOT NULL,
    description text NOT NULL,
    CONSTRAINT assignment_state_transitions_pkey PRIMARY KEY (from_state, to_state)
);
INSERT INTO public.assignment_state_transitions (from_state, to_state, description) VALUES
    {values}
ON CONFLICT DO NOTHING;

ALTER TABLE public.bookings ADD COLUMN IF NOT EXISTS assignment_state text;
-- lint: allow prefer-robust-stmts: SET DEFAULT is idempotent by nature
ALTER TABLE public.bookings ALTER COLUMN assignment_state SET DEFAULT 'created';
DO $check$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'bookings_assignment_state_check'
                   AND conrelid = 'public.bookings'::regclass) THEN
        ALTER TABLE public.bookings ADD CONSTRAINT bookings_assignment_state_check
            CHECK (assignment_state IN ({states})) NOT VALID;
    END IF;
END
$check$;

CREATE TABLE IF NOT EXISTS public.feature_rollouts (
    flag text PRIMARY KEY,
    -- lint: allow prefer-bigint-over-int: a percentage, 0 to 100
    percentage integer NOT NULL DEFAULT 0
        CONSTRAINT feature_rollouts_percentage_check CHECK (percentage BETWEEN 0 AND 100),
    restaurant_ids uuid[] NOT NULL DEFAULT '{{}}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);
""")
    install_sql_file("functions/enforce_assignment_state_transition/v1.sql")
    install_sql_file("functions/feature_enabled_for/v1.sql")
    install_sql_file("functions/time_bucket/v1.sql")
    execute_sql("""
DO $trigger$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'booking_assignment_state_machine'
                   AND tgrelid = 'public.bookings'::regclass) THEN
        CREATE TRIGGER booking_assignment_state_machine
            BEFORE UPDATE OF assignment_state ON public.bookings
            FOR EACH ROW EXECUTE FUNCTION public.enforce_assignment_state_transition();
    END IF;
END
$trigger$;
""")
    with outside_transaction():
        op.execute(
            "-- lint: allow prefer-robust-stmts: VALIDATE is idempotent; outside the "
            "transaction on purpose (SHARE UPDATE EXCLUSIVE only, writes go on)\n"
            "ALTER TABLE public.bookings VALIDATE CONSTRAINT bookings_assignment_state_check"
        )


def downgrade() -> None:
    # The event history in observability_events stays: it belongs to core, not to this release.
    op.execute("""
DROP TRIGGER booking_assignment_state_machine ON public.bookings;
DROP FUNCTION public.enforce_assignment_state_transition();
DROP FUNCTION public.feature_enabled_for(text, uuid);
DROP TABLE public.feature_rollouts;
ALTER TABLE public.bookings DROP CONSTRAINT bookings_assignment_state_check;
ALTER TABLE public.bookings DROP COLUMN assignment_state;
DROP TABLE public.assignment_state_transitions;
""")
    execute_sql("""
DO $compat$
BEGIN
    -- Only our stand-in: a real TimescaleDB time_bucket is left alone.
    IF obj_description(to_regprocedure('public.time_bucket(interval, timestamptz)'), 'pg_proc')
        = 'venuedb:version=1' THEN
        DROP FUNCTION public.time_bucket(interval, timestamptz);
    END IF;
END
$compat$;
""")
