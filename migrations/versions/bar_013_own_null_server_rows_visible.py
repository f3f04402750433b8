"""bar-integrity: a member sees the rows they created whose server_id is NULL.

Revision ID: bar_013
Revises: bar_012
Release: bar-integrity

With ENABLE_SWITCHING_MODE off (seed 002's "Option A" rollback) a server's own sale is
created without server_id, and {table}_select_by_role only showed a server the rows whose
server_id is theirs: the server's INSERT ... RETURNING failed, and the sale was invisible
to the one who made it. The select policies of sales, consignments and returns now also
show an active member the rows they created (created_by = auth.uid()) whose server_id is
NULL. Managers and owners still see every row of their bars; nobody sees another bar's.

Lock budget: ALTER POLICY is a catalog change. The downgrade ALTERs each policy back to
bar_004's expression.
"""

from toolkit.sqlfiles import execute_sql

revision = "bar_013"
down_revision = "bar_012"
branch_labels = None
depends_on = None

TABLES = ("sales", "consignments", "returns")
MANAGED = "(SELECT public.bar_ids_with_role('{owner,manager}'))::uuid[]"
MEMBER = "(SELECT public.bar_ids_with_role('{owner,manager,server}'))::uuid[]"
UID = "(SELECT auth.uid())"

NEW_USING = (
    f"bar_id = ANY ({MANAGED})\n"
    f"           OR (bar_id = ANY ({MEMBER})\n"
    f"               AND (server_id = {UID} OR (server_id IS NULL AND created_by = {UID})))"
)
# bar_004's expression, exactly.
OLD_USING = (
    f"bar_id = ANY ({MANAGED})\n           OR (server_id = {UID} AND bar_id = ANY ({MEMBER}))"
)


def _alter(using: str) -> str:
    return "".join(
        f"ALTER POLICY {t}_select_by_role ON public.{t}\n    USING ({using});\n" for t in TABLES
    )


def upgrade() -> None:
    execute_sql(_alter(NEW_USING))


def downgrade() -> None:
    execute_sql(_alter(OLD_USING))
