"""bar-baseline: the bar schema as seed 002 found it.

Revision ID: bar_001
Revises:
Release: bar-baseline

Bars with their settings JSONB (operatingMode lives there), members and their roles,
sales / consignments / returns that record the server only by the name typed on the
till (no server_id yet), and audit_logs. No row-level security yet: seed 002 adds it.
"""

from alembic import op

revision = "bar_001"
down_revision = None
branch_labels = ("bar",)
depends_on = "core_001"


def upgrade() -> None:
    op.execute("""
CREATE TABLE public.bars (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    owner_id uuid CONSTRAINT bars_owner_id_fkey REFERENCES auth.users (id) ON DELETE SET NULL,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_sale_at timestamptz
);

CREATE TABLE public.bar_members (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid NOT NULL
        CONSTRAINT bar_members_bar_id_fkey REFERENCES public.bars (id) ON DELETE CASCADE,
    user_id uuid NOT NULL
        CONSTRAINT bar_members_user_id_fkey REFERENCES auth.users (id) ON DELETE CASCADE,
    role text NOT NULL
        CONSTRAINT bar_members_role_check CHECK (role IN ('owner', 'manager', 'server')),
    display_name text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bar_members_bar_id_user_id_key UNIQUE (bar_id, user_id)
);
CREATE INDEX bar_members_user_id_idx ON public.bar_members (user_id);

CREATE TABLE public.sales (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid NOT NULL
        CONSTRAINT sales_bar_id_fkey REFERENCES public.bars (id) ON DELETE CASCADE,
    created_by uuid
        CONSTRAINT sales_created_by_fkey REFERENCES auth.users (id) ON DELETE SET NULL,
    server_name text,
    items jsonb NOT NULL DEFAULT '[]'::jsonb,
    total numeric(12, 2) NOT NULL CONSTRAINT sales_total_check CHECK (total >= 0),
    payment_method text,
    status text NOT NULL DEFAULT 'completed'
        CONSTRAINT sales_status_check CHECK (status IN ('completed', 'voided', 'refunded')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sales_bar_id_created_at_idx ON public.sales (bar_id, created_at);
CREATE INDEX sales_created_at_idx ON public.sales (created_at);

CREATE TABLE public.consignments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid NOT NULL
        CONSTRAINT consignments_bar_id_fkey REFERENCES public.bars (id) ON DELETE CASCADE,
    created_by uuid
        CONSTRAINT consignments_created_by_fkey REFERENCES auth.users (id) ON DELETE SET NULL,
    server_name text,
    product_name text NOT NULL,
    -- lint: allow prefer-bigint-over-int: bottles per consignment, far below 2^31
    quantity integer NOT NULL CONSTRAINT consignments_quantity_check CHECK (quantity > 0),
    amount numeric(12, 2) NOT NULL DEFAULT 0
        CONSTRAINT consignments_amount_check CHECK (amount >= 0),
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT consignments_status_check
        CHECK (status IN ('active', 'claimed', 'expired', 'forfeited')),
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consignments_bar_id_created_at_idx ON public.consignments (bar_id, created_at);

CREATE TABLE public.returns (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid NOT NULL
        CONSTRAINT returns_bar_id_fkey REFERENCES public.bars (id) ON DELETE CASCADE,
    sale_id uuid CONSTRAINT returns_sale_id_fkey REFERENCES public.sales (id) ON DELETE SET NULL,
    created_by uuid
        CONSTRAINT returns_created_by_fkey REFERENCES auth.users (id) ON DELETE SET NULL,
    server_name text,
    amount numeric(12, 2) NOT NULL CONSTRAINT returns_amount_check CHECK (amount >= 0),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX returns_bar_id_created_at_idx ON public.returns (bar_id, created_at);

CREATE TABLE public.audit_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid CONSTRAINT audit_logs_bar_id_fkey REFERENCES public.bars (id) ON DELETE SET NULL,
    user_id uuid,
    event text NOT NULL,
    level text NOT NULL DEFAULT 'info'
        CONSTRAINT audit_logs_level_check
        CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    error_type text,
    error_message text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_created_at_idx ON public.audit_logs (created_at);
CREATE INDEX audit_logs_bar_id_created_at_idx ON public.audit_logs (bar_id, created_at);
""")


def downgrade() -> None:
    op.execute("""
DROP TABLE public.audit_logs;
DROP TABLE public.returns;
DROP TABLE public.consignments;
DROP TABLE public.sales;
DROP TABLE public.bar_members;
DROP TABLE public.bars;
""")
