"""core: Supabase-compatible auth schema, auth.uid(), roles, observability_events.

Revision ID: core_001
Revises:
Release: core

The booking and bar rules rely on Supabase's auth.users, auth.uid() and the roles
anon / authenticated / service_role. On Supabase they exist already; on plain
PostgreSQL this revision creates them, so the same history runs on both.
"""

from alembic import op

from toolkit.sqlfiles import execute_sql

revision = "core_001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def upgrade() -> None:
    execute_sql("""
DO $core$
BEGIN
    IF to_regnamespace('auth') IS NULL THEN
        CREATE SCHEMA auth;
        -- The marker lets the downgrade drop only a schema this revision created.
        COMMENT ON SCHEMA auth IS 'venuedb:core_001';
    END IF;
    -- Roles are cluster-wide: created when missing, never dropped (other databases use them).
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END
$core$;

CREATE TABLE IF NOT EXISTS auth.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text UNIQUE,
    raw_user_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

DO $uid$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid
        LANGUAGE sql STABLE
        AS $fn$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        $fn$;
    END IF;
END
$uid$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
""")
    op.execute("""
CREATE TABLE public.observability_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    event_type text NOT NULL,
    severity text NOT NULL DEFAULT 'info'
        CONSTRAINT observability_events_severity_check
        CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    restaurant_id uuid,
    booking_id uuid,
    context jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX observability_events_source_created_at_idx
    ON public.observability_events (source, created_at);
CREATE INDEX observability_events_event_type_created_at_idx
    ON public.observability_events (event_type, created_at);
CREATE INDEX observability_events_booking_id_idx
    ON public.observability_events (booking_id);
CREATE INDEX observability_events_created_at_idx
    ON public.observability_events (created_at);
""")


def downgrade() -> None:
    op.execute("DROP TABLE public.observability_events")
    execute_sql("""
DO $core$
BEGIN
    IF obj_description(to_regnamespace('auth'), 'pg_namespace') = 'venuedb:core_001' THEN
        DROP SCHEMA auth CASCADE;
    END IF;
END
$core$;
""")
