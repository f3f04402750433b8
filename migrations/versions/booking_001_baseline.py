"""booking-baseline: the booking schema as seeds 000, 001, 003 and 004 found it.

Revision ID: booking_001
Revises:
Release: booking-baseline

Restaurants, zones, table inventory, bookings, assignments, holds and allocations
with the old exclusion constraint allocations_resource_window_excl (not scoped to a
restaurant, INITIALLY DEFERRED) and confirm_hold_assignment_tx v11. No index leads
with booking_table_assignments.booking_id yet: seed 000 adds it.
"""

from alembic import op

from toolkit.sqlfiles import install_sql_file

revision = "booking_001"
down_revision = None
branch_labels = ("booking",)
depends_on = "core_001"


def upgrade() -> None:
    # Extensions are shared by the whole database: created when missing, never dropped.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute("""
CREATE TABLE public.restaurants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    slug text NOT NULL CONSTRAINT restaurants_slug_key UNIQUE,
    timezone text NOT NULL DEFAULT 'UTC',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.zones (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id uuid NOT NULL
        CONSTRAINT zones_restaurant_id_fkey REFERENCES public.restaurants (id) ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT zones_restaurant_id_name_key UNIQUE (restaurant_id, name)
);

CREATE TABLE public.table_inventory (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id uuid NOT NULL
        CONSTRAINT table_inventory_restaurant_id_fkey
        REFERENCES public.restaurants (id) ON DELETE CASCADE,
    zone_id uuid NOT NULL
        CONSTRAINT table_inventory_zone_id_fkey REFERENCES public.zones (id) ON DELETE RESTRICT,
    table_number text NOT NULL,
    -- lint: allow prefer-bigint-over-int: counts of seats and guests, far below 2^31
    capacity integer NOT NULL CONSTRAINT table_inventory_capacity_check CHECK (capacity > 0),
    -- lint: allow prefer-bigint-over-int: counts of seats and guests, far below 2^31
    min_party_size integer NOT NULL DEFAULT 1
        CONSTRAINT table_inventory_min_party_size_check CHECK (min_party_size > 0),
    -- lint: allow prefer-bigint-over-int: counts of seats and guests, far below 2^31
    max_party_size integer,
    seating_type text NOT NULL DEFAULT 'standard',
    mobility text NOT NULL DEFAULT 'movable'
        CONSTRAINT table_inventory_mobility_check CHECK (mobility IN ('movable', 'fixed')),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT table_inventory_party_range_check
        CHECK (max_party_size IS NULL OR max_party_size >= min_party_size),
    CONSTRAINT table_inventory_restaurant_id_table_number_key UNIQUE (restaurant_id, table_number)
);
CREATE INDEX table_inventory_restaurant_id_zone_id_idx
    ON public.table_inventory (restaurant_id, zone_id);

CREATE TABLE public.bookings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id uuid NOT NULL
        CONSTRAINT bookings_restaurant_id_fkey REFERENCES public.restaurants (id) ON DELETE CASCADE,
    customer_name text,
    customer_email text,
    -- lint: allow prefer-bigint-over-int: counts of seats and guests, far below 2^31
    party_size integer NOT NULL CONSTRAINT bookings_party_size_check CHECK (party_size > 0),
    booking_date date NOT NULL,
    start_time time,
    end_time time,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT bookings_status_check CHECK (status IN (
            'pending', 'pending_allocation', 'confirmed', 'checked_in', 'completed',
            'cancelled', 'no_show'
        )),
    source text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_window_check CHECK (end_at > start_at)
);
CREATE INDEX bookings_restaurant_id_start_at_idx ON public.bookings (restaurant_id, start_at);
CREATE INDEX bookings_status_created_at_idx ON public.bookings (status, created_at);
CREATE INDEX bookings_created_at_idx ON public.bookings (created_at);

CREATE TABLE public.booking_table_assignments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id uuid NOT NULL
        CONSTRAINT booking_table_assignments_booking_id_fkey
        REFERENCES public.bookings (id) ON DELETE CASCADE,
    table_id uuid NOT NULL
        CONSTRAINT booking_table_assignments_table_id_fkey
        REFERENCES public.table_inventory (id) ON DELETE RESTRICT,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    assigned_by uuid,
    merge_group_id uuid,
    idempotency_key text,
    -- Deliberately not leading with booking_id: seed 000 adds that index.
    CONSTRAINT booking_table_assignments_table_id_booking_id_key UNIQUE (table_id, booking_id)
);

CREATE TABLE public.table_holds (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id uuid NOT NULL
        CONSTRAINT table_holds_restaurant_id_fkey
        REFERENCES public.restaurants (id) ON DELETE CASCADE,
    booking_id uuid
        CONSTRAINT table_holds_booking_id_fkey REFERENCES public.bookings (id) ON DELETE CASCADE,
    zone_id uuid CONSTRAINT table_holds_zone_id_fkey REFERENCES public.zones (id),
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    created_by uuid,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT table_holds_window_check CHECK (end_at > start_at)
);
CREATE INDEX table_holds_booking_id_idx ON public.table_holds (booking_id);
CREATE INDEX table_holds_expires_at_idx ON public.table_holds (expires_at);

CREATE TABLE public.table_hold_members (
    hold_id uuid NOT NULL
        CONSTRAINT table_hold_members_hold_id_fkey
        REFERENCES public.table_holds (id) ON DELETE CASCADE,
    table_id uuid NOT NULL
        CONSTRAINT table_hold_members_table_id_fkey REFERENCES public.table_inventory (id),
    CONSTRAINT table_hold_members_pkey PRIMARY KEY (hold_id, table_id)
);

CREATE TABLE public.allocations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id uuid NOT NULL
        CONSTRAINT allocations_restaurant_id_fkey
        REFERENCES public.restaurants (id) ON DELETE CASCADE,
    booking_id uuid
        CONSTRAINT allocations_booking_id_fkey REFERENCES public.bookings (id) ON DELETE CASCADE,
    resource_type text NOT NULL
        CONSTRAINT allocations_resource_type_check
        CHECK (resource_type IN ('table', 'merge_group')),
    resource_id uuid NOT NULL,
    "window" tstzrange NOT NULL,
    shadow boolean NOT NULL DEFAULT false,
    is_maintenance boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT allocations_resource_window_excl
        EXCLUDE USING gist (resource_type WITH =, resource_id WITH =, "window" WITH &&)
        WHERE (NOT shadow) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX allocations_booking_id_idx ON public.allocations (booking_id);
""")
    install_sql_file("functions/confirm_hold_assignment_tx/v11.sql")


def downgrade() -> None:
    op.execute("""
DROP FUNCTION public.confirm_hold_assignment_tx(uuid, uuid, text, uuid);
DROP TABLE public.allocations;
DROP TABLE public.table_hold_members;
DROP TABLE public.table_holds;
DROP TABLE public.booking_table_assignments;
DROP TABLE public.bookings;
DROP TABLE public.table_inventory;
DROP TABLE public.zones;
DROP TABLE public.restaurants;
""")
