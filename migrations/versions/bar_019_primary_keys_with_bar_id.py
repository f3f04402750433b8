"""bar-distribution-keys: the primary key of every bar table that holds one bar's rows begins with bar_id.

Revision ID: bar_019
Revises: bar_018
Release: bar-distribution-keys

Issue 22: a table distributed by bar_id can only enforce a primary key or unique key
that includes bar_id (Citus checks uniqueness inside one shard). These tables hold one
bar's rows, have bar_id NOT NULL already, and had their primary key on the row's id
alone; it becomes (bar_id, id) under the same name:

    bar_members, sales, consignments, returns, server_name_mappings,
    server_id_resolution_log: PRIMARY KEY (bar_id, id)
    orphaned_sales: PRIMARY KEY (bar_id, sale_id)

Their other unique keys include bar_id already (bar_members (bar_id, user_id),
server_name_mappings (bar_id, name_normalized)). sales' key is the unique index
idx_sales_bar_id_id that bar_014 built for returns_bar_id_sale_id_fkey: it becomes
sales_pkey (renamed), so sales keeps two indexes, not three, and the foreign key keeps
referencing it. The ids stay generated as before (gen_random_uuid(), an identity).

Three tables are also read by their id alone, by privileged paths that name no bar: the
server_id backfills and corrections walk sales, consignments and returns by id (keyset,
migrations/backfills.toml) and their batch functions join on it, and the checks
migration_server_id_failures and orphaned_sales_created look sales up by id. A plain
index on (id) (sales_id_idx, consignments_id_idx, returns_id_idx) keeps those plans; it
is not unique (a distributed table cannot be), which changes nothing for uuids from
gen_random_uuid(). The application's queries go through row-level security, whose
bar_id = ANY (...) the (bar_id, id) keys serve.

Lock budget: every index is built CONCURRENTLY first (writers keep going). Then one
short transaction per table, in autocommit so that no table's lock is held while the
next is awaited: ALTER TABLE ... DROP CONSTRAINT <table>_pkey, then ADD CONSTRAINT
<table>_pkey PRIMARY KEY USING INDEX <the built index>: catalog only (the columns are NOT
NULL already, the index is built), ACCESS EXCLUSIVE on that one table for milliseconds.
Each step checks the catalog first, so a rerun after a crash or a lock timeout resumes.
The downgrade builds the unique (id) indexes CONCURRENTLY, swaps back the same way (for
sales also moving returns_bar_id_sale_id_fkey to a rebuilt idx_sales_bar_id_id, re-added
NOT VALID in the swap's transaction and validated outside it) and drops the (id) indexes.
"""

from dataclasses import dataclass

from alembic import context, op

from toolkit.ops import (
    create_index_concurrently,
    drop_index_concurrently,
    execute_sql,
    outside_transaction,
)

revision = "bar_019"
down_revision = "bar_018"
branch_labels = None
depends_on = None
# Steps out of its transaction (CONCURRENTLY, one transaction per swap); idempotent.
RESUMABLE = True

COMPOSITE_FK = "returns_bar_id_sale_id_fkey"
# The downgrade's swap of sales: sales_pkey (bar_id, id) carries returns' composite key,
# which moves to the rebuilt idx_sales_bar_id_id in the swap's own transaction (re-added
# NOT VALID: new rows stay checked throughout; validated after).
FK_MOVE = (
    f"\n        ALTER TABLE public.returns DROP CONSTRAINT {COMPOSITE_FK};",
    f"\n        ALTER TABLE public.returns ADD CONSTRAINT {COMPOSITE_FK}"
    "\n            FOREIGN KEY (bar_id, sale_id) REFERENCES public.sales (bar_id, id)"
    "\n            ON DELETE SET NULL (sale_id) NOT VALID;",
)


@dataclass(frozen=True)
class Table:
    name: str
    key: str = "id"  # the primary key's column before this revision
    tenant_index: str = ""  # the unique (bar_id, key) index that becomes the primary key
    id_index: bool = False  # read by its id alone: keeps a plain index on (id)

    @property
    def pkey(self) -> str:
        return f"{self.name}_pkey"

    @property
    def new_index(self) -> str:
        return self.tenant_index or f"{self.name}_bar_id_{self.key}_key"

    @property
    def old_index(self) -> str:
        """The unique (key) index the downgrade builds to become the primary key again."""
        return f"{self.name}_{self.key}_key"


TABLES = (
    Table("bar_members"),
    Table("sales", tenant_index="idx_sales_bar_id_id", id_index=True),
    Table("consignments", id_index=True),
    Table("returns", id_index=True),
    Table("server_name_mappings"),
    Table("server_id_resolution_log"),
    Table("orphaned_sales", key="sale_id"),
)


def _primary_key(table: Table) -> str | None:
    """The table's primary key now; None offline (`apply --sql` prints every step)."""
    if context.is_offline_mode():
        return None
    found = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %(table)s::regclass AND contype = 'p'",
            {"table": f"public.{table.name}"},
        )
        .scalar()
    )
    return str(found) if found is not None else None


def _swap(table: Table, columns: str, index: str, before: str = "", after: str = "") -> str:
    """One transaction (a DO statement in autocommit): the primary key becomes `columns`,
    using `index`, unless it is already; `before` and `after` run around the swap."""
    return f"""
DO $swap_{table.name}$
BEGIN
    IF (SELECT pg_get_constraintdef(c.oid) FROM pg_constraint AS c
        WHERE c.conrelid = 'public.{table.name}'::regclass AND c.contype = 'p')
       IS DISTINCT FROM 'PRIMARY KEY ({columns})' THEN{before}
        ALTER TABLE public.{table.name} DROP CONSTRAINT {table.pkey};
        ALTER TABLE public.{table.name}
            ADD CONSTRAINT {table.pkey} PRIMARY KEY USING INDEX {index};{after}
    END IF;
END
$swap_{table.name}$;
"""


def upgrade() -> None:
    for table in TABLES:
        # A rerun after the swap finds the index renamed to <table>_pkey: not rebuilt.
        if _primary_key(table) != f"PRIMARY KEY (bar_id, {table.key})":
            create_index_concurrently(
                table.new_index,
                f"ON public.{table.name} USING btree (bar_id, {table.key})",
                unique=True,
            )
        if table.id_index:
            create_index_concurrently(f"{table.name}_id_idx", f"ON public.{table.name} (id)")
    for table in TABLES:
        with outside_transaction():
            execute_sql(_swap(table, f"bar_id, {table.key}", table.new_index))


def downgrade() -> None:
    for table in TABLES:
        if _primary_key(table) != f"PRIMARY KEY ({table.key})":
            create_index_concurrently(
                table.old_index, f"ON public.{table.name} USING btree ({table.key})", unique=True
            )
        if table.tenant_index:
            create_index_concurrently(
                table.tenant_index,
                f"ON public.{table.name} USING btree (bar_id, {table.key})",
                unique=True,
            )
    for table in TABLES:
        around = FK_MOVE if table.name == "sales" else ("", "")
        with outside_transaction():
            execute_sql(_swap(table, table.key, table.old_index, *around))
    with outside_transaction():
        execute_sql(f"""
-- squawk-ignore prefer-robust-stmts -- VALIDATE is idempotent, a rerun validates again
ALTER TABLE public.returns VALIDATE CONSTRAINT {COMPOSITE_FK};
""")
    for table in TABLES:
        if table.id_index:
            drop_index_concurrently(f"{table.name}_id_idx")
        if not table.tenant_index:
            # Consumed by the swap; this only covers a half-finished upgrade.
            drop_index_concurrently(table.new_index)
