"""bar-integrity: the database owns ENABLE_SWITCHING_MODE; create_sale_by_server_name v2.

Revision ID: bar_012
Revises: bar_011
Release: bar-integrity

create_sale_by_server_name v1 took p_switching_enabled boolean DEFAULT TRUE: the caller
chose whether switching mode was on, and its default was the opposite of the flag's. The
flag now lives in the database, public.feature_flags (one row per flag, on globally or
for the listed bars), with the row ('ENABLE_SWITCHING_MODE', off); switching_mode_enabled
(bar) reads it, and create_sale_by_server_name v2 (uuid, text, jsonb, numeric) decides
from it. `venuedb flags set ENABLE_SWITCHING_MODE on|off [--bar BAR_ID ...]` writes it.

feature_flags has row-level security and no policy: anon and authenticated can neither
read nor write it; service_role gets SELECT, INSERT, UPDATE. switching_mode_enabled() is
executable by service_role only (create_sale_by_server_name is SECURITY DEFINER and asks
it as its owner).

v2 drops the fifth argument, so the function is dropped and created in this one
transaction: callers never see it missing, and a caller still passing five arguments
gets "function does not exist" instead of silently choosing. Lock budget: a new, empty
table and catalog changes. The downgrade drops v2 and the table and reinstalls v1 with
bar_004's grants.
"""

from alembic import op

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_012"
down_revision = "bar_011"
branch_labels = None
depends_on = None

API_ROLES = "anon, authenticated, service_role"
V1 = "public.create_sale_by_server_name(uuid, text, jsonb, numeric, boolean)"
V2 = "public.create_sale_by_server_name(uuid, text, jsonb, numeric)"


def upgrade() -> None:
    op.execute(f"""
CREATE TABLE public.feature_flags (
    name text PRIMARY KEY,
    enabled boolean NOT NULL DEFAULT false,
    bar_ids uuid [] NOT NULL DEFAULT '{{}}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);
COMMENT ON TABLE public.feature_flags IS
    'Feature flags owned by the database: on globally (enabled) or for the bars in bar_ids.';
INSERT INTO public.feature_flags (name, enabled, updated_by)
VALUES ('ENABLE_SWITCHING_MODE', false, 'bar_012');
ALTER TABLE public.feature_flags ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.feature_flags FROM PUBLIC, {API_ROLES};
GRANT SELECT, INSERT, UPDATE ON public.feature_flags TO service_role;
""")
    install_sql_file("functions/switching_mode_enabled/v1.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION public.switching_mode_enabled(uuid) FROM PUBLIC, {API_ROLES};
GRANT EXECUTE ON FUNCTION public.switching_mode_enabled(uuid) TO service_role;
""")
    op.execute(
        "-- lint: allow ban-drop-function: v2 has one argument less, so it is dropped and "
        "created in this one transaction; callers never see it missing\n"
        f"DROP FUNCTION {V1}"
    )
    install_sql_file("functions/create_sale_by_server_name/v2.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION {V2} FROM PUBLIC, {API_ROLES};
GRANT EXECUTE ON FUNCTION {V2} TO authenticated, service_role;
""")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {V2}")
    install_sql_file("functions/create_sale_by_server_name/v1.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION {V1} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {V1} TO authenticated, service_role;
DROP FUNCTION public.switching_mode_enabled(uuid);
DROP TABLE public.feature_flags;
""")
