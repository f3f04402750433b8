"""bar-observability: name resolutions recorded, so their error rate can be read.

Revision ID: bar_015
Revises: bar_014
Release: bar-observability

Seed 002's critical alert "server_id resolution error rate > 5% (in last 5 minutes)".
create_sale_by_server_name raises on a name it cannot resolve (unknown, ambiguous, no
name, mapped to someone who is not a member), and the raise rolls back everything its
transaction wrote: PostgreSQL has no autonomous transaction, so a raised failure cannot
be recorded by the database. The app relies on that raise to block the sale at the till,
so create_sale_by_server_name keeps it (v2, unchanged). This revision adds:

* server_id_resolution_log: one row per name resolution attempted (simplified mode,
  ENABLE_SWITCHING_MODE on), resolved or not, with its outcome;
* resolve_server_name(bar, typed name) v1: the live path's rule (mapping, else the one
  active member with that display name) as one function;
* try_create_sale_by_server_name(uuid, text, jsonb, numeric) v1: the same sale as
  create_sale_by_server_name, but a name that does not resolve is returned as
  (NULL, outcome, SQLSTATE, message) instead of raised, so the log row commits. The app
  moves its till to it to be observed; the check server_id_resolution_error_rate reads
  the log.

Grants: the log has row-level security and no policy (service_role reads it); the
resolver is the owner's only (it would be an oracle of a bar's staff);
try_create_sale_by_server_name is for authenticated and service_role, like
create_sale_by_server_name. Lock budget: a new, empty table and new functions.
"""

from alembic import op

from toolkit.sqlfiles import execute_sql, install_sql_file

revision = "bar_015"
down_revision = "bar_014"
branch_labels = None
depends_on = None

API_ROLES = "anon, authenticated, service_role"
TRY = "public.try_create_sale_by_server_name(uuid, text, jsonb, numeric)"


def upgrade() -> None:
    op.execute(f"""
CREATE TABLE public.server_id_resolution_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    bar_id uuid NOT NULL,
    server_name text,
    outcome text NOT NULL
        CONSTRAINT server_id_resolution_log_outcome_check
        CHECK (outcome IN ('mapping', 'display_name', 'no_name', 'unknown_name',
                           'ambiguous_name', 'not_member')),
    server_id uuid,
    sale_id uuid,
    created_by uuid
);
CREATE INDEX server_id_resolution_log_created_at_idx
    ON public.server_id_resolution_log (created_at);
COMMENT ON TABLE public.server_id_resolution_log IS
    'One row per server name resolution attempted by try_create_sale_by_server_name '
    '(outcome mapping / display_name: resolved, else why not). Append-only, no foreign '
    'keys: it outlives the sales, bars and users it names.';
ALTER TABLE public.server_id_resolution_log ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.server_id_resolution_log FROM PUBLIC, {API_ROLES};
GRANT SELECT ON public.server_id_resolution_log TO service_role;
""")
    install_sql_file("functions/resolve_server_name/v1.sql")
    install_sql_file("functions/try_create_sale_by_server_name/v1.sql")
    execute_sql(f"""
REVOKE ALL ON FUNCTION public.resolve_server_name(uuid, text) FROM PUBLIC, {API_ROLES};
REVOKE ALL ON FUNCTION {TRY} FROM PUBLIC, {API_ROLES};
GRANT EXECUTE ON FUNCTION {TRY} TO authenticated, service_role;
""")


def downgrade() -> None:
    op.execute(f"""
DROP FUNCTION {TRY};
DROP FUNCTION public.resolve_server_name(uuid, text);
DROP TABLE public.server_id_resolution_log;
""")
