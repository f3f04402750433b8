"""booking-integrity: each booking function and table usable by exactly the roles that need it.

Revision ID: booking_013
Revises: booking_012
Release: booking-integrity

Issue 15, hole 8: PostgreSQL grants EXECUTE on every new function to PUBLIC, so anon
and authenticated could call the planner, the confirmation and the retention procedure.
The booking API is the service role (BYPASSRLS): it gets EXECUTE on the functions it
calls (confirm_hold_assignment_tx and confirm_hold_conflicts, which it calls as the
invoker, plan_booking_tables, auto_assign_booking, feature_enabled_for, time_bucket,
prune_booking_confirmation_results) and the table privileges those functions need
(they run as the caller). Trigger functions are executed by their triggers whoever
writes, so nobody gets EXECUTE on them. anon and authenticated get nothing on the
booking tables, and row-level security is enabled on them with no policy: on Supabase,
whose default privileges grant every new table in public to anon and authenticated, a
table created by a later release stays closed until it is granted on purpose.

Lock budget: GRANT / REVOKE are catalog changes; ENABLE ROW LEVEL SECURITY takes an
ACCESS EXCLUSIVE lock, so each table is switched in a transaction of its own (a few
milliseconds each, never two tables' locks held together). Idempotent, so a rerun resumes.
"""

from toolkit.online import outside_transaction
from toolkit.sqlfiles import execute_sql

revision = "booking_013"
down_revision = "booking_012"
branch_labels = None
depends_on = None
# Enables RLS table by table outside the revision's transaction; idempotent.
RESUMABLE = True

SERVICE_FUNCTIONS = (
    "FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid)",
    "FUNCTION public.confirm_hold_conflicts(uuid, uuid[], tstzrange)",
    "FUNCTION public.plan_booking_tables(uuid, jsonb)",
    "FUNCTION public.auto_assign_booking(uuid, jsonb)",
    "FUNCTION public.feature_enabled_for(text, uuid)",
    "PROCEDURE public.prune_booking_confirmation_results(interval, integer, bigint)",
)
TRIGGER_FUNCTIONS = (
    "FUNCTION public.validate_booking_has_assignments()",
    "FUNCTION public.validate_booking_assignment_removal()",
    "FUNCTION public.enforce_assignment_state_transition()",
    "FUNCTION public.enforce_same_restaurant()",
    "FUNCTION public.validate_booking_allocations()",
)
# Our stand-in only: a real TimescaleDB time_bucket() is not ours to change.
TIME_BUCKET = "public.time_bucket(interval, timestamptz)"
WRITABLE_TABLES = (
    "restaurants",
    "zones",
    "table_inventory",
    "table_adjacencies",
    "bookings",
    "booking_table_assignments",
    "table_holds",
    "table_hold_members",
    "allocations",
)
READABLE_TABLES = ("assignment_state_transitions", "feature_rollouts")
TABLES = WRITABLE_TABLES + READABLE_TABLES
# The state machine's trigger and the coordinator write their events as the caller.
EVENTS = "GRANT SELECT, INSERT ON public.observability_events TO service_role;\n"


def _time_bucket(statement: str) -> str:
    return f"""
DO $time_bucket$
BEGIN
    IF obj_description(to_regprocedure('{TIME_BUCKET}'), 'pg_proc') = 'venuedb:version=1' THEN
        {statement};
    END IF;
END
$time_bucket$;
"""


def upgrade() -> None:
    every = ", ".join(f"public.{t}" for t in TABLES)
    execute_sql(
        "".join(f"REVOKE ALL ON {f} FROM PUBLIC;\n" for f in SERVICE_FUNCTIONS + TRIGGER_FUNCTIONS)
        + "".join(f"GRANT EXECUTE ON {f} TO service_role;\n" for f in SERVICE_FUNCTIONS)
        + _time_bucket(
            f"REVOKE ALL ON FUNCTION {TIME_BUCKET} FROM PUBLIC; "
            f"GRANT EXECUTE ON FUNCTION {TIME_BUCKET} TO service_role"
        )
        + f"REVOKE ALL ON {every} FROM PUBLIC, anon, authenticated;\n"
        + "GRANT SELECT, INSERT, UPDATE, DELETE ON "
        + ", ".join(f"public.{t}" for t in WRITABLE_TABLES)
        + " TO service_role;\n"
        + "GRANT SELECT ON "
        + ", ".join(f"public.{t}" for t in READABLE_TABLES)
        + " TO service_role;\n"
        + EVENTS
    )
    with outside_transaction():
        for table in TABLES:
            execute_sql(
                "-- lint: allow prefer-robust-stmts: ENABLE ROW LEVEL SECURITY is idempotent; "
                "one table per transaction on purpose (never two ACCESS EXCLUSIVE locks held)\n"
                f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;"
            )


def downgrade() -> None:
    with outside_transaction():
        for table in TABLES:
            execute_sql(
                "-- lint: allow prefer-robust-stmts: DISABLE ROW LEVEL SECURITY is idempotent; "
                "one table per transaction on purpose\n"
                f"ALTER TABLE public.{table} DISABLE ROW LEVEL SECURITY;"
            )
    every = ", ".join(f"public.{t}" for t in TABLES)
    execute_sql(
        f"REVOKE ALL ON {every} FROM service_role;\n"
        + EVENTS.replace("GRANT", "REVOKE").replace(" TO ", " FROM ")
        + "".join(f"REVOKE ALL ON {f} FROM service_role;\n" for f in SERVICE_FUNCTIONS)
        + "".join(
            f"GRANT EXECUTE ON {f} TO PUBLIC;\n" for f in SERVICE_FUNCTIONS + TRIGGER_FUNCTIONS
        )
        + _time_bucket(
            f"REVOKE ALL ON FUNCTION {TIME_BUCKET} FROM service_role; "
            f"GRANT EXECUTE ON FUNCTION {TIME_BUCKET} TO PUBLIC"
        )
    )
