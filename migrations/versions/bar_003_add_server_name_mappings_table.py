"""mode-switching: server_name_mappings, the server name typed on the till -> a user.

Revision ID: bar_003
Revises: bar_002
Release: mode-switching

Seed 002's migration 20251224130100_add_server_name_mappings_table. In simplified mode
one till is shared and the manager types the server's name; this table maps that name,
per bar, to the server's user. Names are compared case- and space-insensitively: the
generated column name_normalized (lower case, trimmed, inner runs of white space folded
to one space) is unique per bar, so "Marie  Claire" and " marie claire" are one name and
a name can never map to two users. A new, empty table: no lock on existing rows.
"""

from alembic import op

revision = "bar_003"
down_revision = "bar_002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(r"""
CREATE TABLE public.server_name_mappings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bar_id uuid NOT NULL
        CONSTRAINT server_name_mappings_bar_id_fkey
        REFERENCES public.bars (id) ON DELETE CASCADE,
    user_id uuid NOT NULL
        CONSTRAINT server_name_mappings_user_id_fkey
        REFERENCES auth.users (id) ON DELETE CASCADE,
    server_name text NOT NULL
        CONSTRAINT server_name_mappings_server_name_check CHECK (btrim(server_name) <> ''),
    name_normalized text NOT NULL
        GENERATED ALWAYS AS (lower(btrim(regexp_replace(server_name, '\s+', ' ', 'g')))) STORED,
    created_by uuid
        CONSTRAINT server_name_mappings_created_by_fkey
        REFERENCES auth.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT server_name_mappings_bar_id_name_key UNIQUE (bar_id, name_normalized)
);
CREATE INDEX server_name_mappings_user_id_idx ON public.server_name_mappings (user_id);
CREATE INDEX server_name_mappings_created_by_idx ON public.server_name_mappings (created_by);
COMMENT ON TABLE public.server_name_mappings IS
    'Per bar, a server name (compared case- and space-insensitively) maps to one user.';
""")


def downgrade() -> None:
    op.execute("DROP TABLE public.server_name_mappings")
