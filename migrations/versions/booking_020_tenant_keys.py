"""booking-distribution-keys: restaurant_id in every key of the booking tables.

Revision ID: booking_020
Revises: booking_019
Release: booking-distribution-keys

Issue 22 (part 5): Citus distributes a table by one column and enforces a PRIMARY KEY,
UNIQUE or foreign key only when it includes that column (a foreign key on both sides).
After booking_019 every booking table holds restaurant_id NOT NULL; this revision puts
it into every key:

* primary keys: (id) -> (id, restaurant_id) on zones, table_inventory, bookings,
  table_holds, booking_table_assignments, booking_confirmation_results and allocations;
  table_hold_members (hold_id, table_id) -> (hold_id, table_id, restaurant_id). The
  tenant key is appended, so every lookup by id alone (the functions, the triggers, the
  application) keeps its index;
* booking_table_assignments_table_id_booking_id_key (table_id, booking_id) ->
  (table_id, booking_id, restaurant_id); table_adjacencies_pair_key gets restaurant_id
  after the pair;
* every foreign key between booking tables is composite, (restaurant_id, parent) ->
  parent (restaurant_id, id): table_inventory and table_holds -> zones,
  booking_table_assignments and table_hold_members -> table_inventory,
  booking_table_assignments, table_holds and booking_confirmation_results -> bookings,
  table_hold_members -> table_holds. allocations_booking_id_fkey goes: the composite
  allocations_booking_restaurant_fkey (booking-integrity) already says more;
* bookings_restaurant_id_id_key and table_inventory_restaurant_id_id_key go: the new
  primary keys are the same columns, and the foreign keys that referenced them
  (allocations_booking_restaurant_fkey, table_adjacencies_table_a/b_fkey) reference the
  primary keys now. Constraint names stay, so errors and queries naming them still match.

Lock budget: each new key's unique index is built CONCURRENTLY first (writers keep going).
Then, per referenced table, one short transaction (catalog only, a few milliseconds under
lock_timeout, retried): drop the foreign keys that reference it, swap its primary key to
the prebuilt index (DROP CONSTRAINT + ADD PRIMARY KEY USING INDEX: the columns are
already NOT NULL, no scan) and add the foreign keys back, composite, NOT VALID: enforced
for every write from that commit on. Last, every foreign key is validated outside the
revision's transaction (SHARE UPDATE EXCLUSIVE on the child, ROW SHARE on the parent:
writers keep going during the scan). Every step checks the catalog first, so a rerun
resumes. The downgrade walks the same steps back to the single-column keys.
"""

from dataclasses import dataclass

from alembic import context, op

from toolkit.ops import (
    create_index_concurrently,
    drop_index_concurrently,
    execute_sql,
    outside_transaction,
)

revision = "booking_020"
down_revision = "booking_019"
branch_labels = None
depends_on = None
# Builds indexes CONCURRENTLY and validates outside its transaction; idempotent.
RESUMABLE = True


@dataclass(frozen=True)
class Key:
    """A PRIMARY KEY or UNIQUE constraint."""

    table: str
    name: str
    kind: str  # PRIMARY KEY | UNIQUE
    columns: str

    @property
    def definition(self) -> str:
        """As pg_get_constraintdef prints it."""
        return f"{self.kind} ({self.columns})"

    @property
    def prebuilt(self) -> str:
        """The unique index built CONCURRENTLY before it becomes this constraint."""
        return f"{self.name}_next"


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    columns: str
    parent: str
    parent_columns: str
    on_delete: str = ""  # e.g. " ON DELETE CASCADE"

    @property
    def definition(self) -> str:
        return (
            f"FOREIGN KEY ({self.columns}) REFERENCES public.{self.parent} "
            f"({self.parent_columns}){self.on_delete}"
        )


@dataclass(frozen=True)
class Keys:
    keys: tuple[Key, ...]
    foreign_keys: tuple[ForeignKey, ...]


# The referenced tables first: a child's foreign keys are re-added when its parent's
# keys change, and a parent's new key must exist before a child references it.
ORDER = (
    "zones",
    "table_inventory",
    "bookings",
    "table_holds",
    "booking_table_assignments",
    "booking_confirmation_results",
    "allocations",
    "table_hold_members",
)
CASCADE, RESTRICT = " ON DELETE CASCADE", " ON DELETE RESTRICT"


def _pkeys(columns: str) -> tuple[Key, ...]:
    return tuple(
        Key(t, f"{t}_pkey", "PRIMARY KEY", columns) for t in ORDER if t != "table_hold_members"
    )


BEFORE = Keys(
    keys=(
        *_pkeys("id"),
        Key("table_hold_members", "table_hold_members_pkey", "PRIMARY KEY", "hold_id, table_id"),
        Key(
            "table_inventory", "table_inventory_restaurant_id_id_key", "UNIQUE", "restaurant_id, id"
        ),
        Key("bookings", "bookings_restaurant_id_id_key", "UNIQUE", "restaurant_id, id"),
        Key(
            "booking_table_assignments",
            "booking_table_assignments_table_id_booking_id_key",
            "UNIQUE",
            "table_id, booking_id",
        ),
    ),
    foreign_keys=(
        ForeignKey(
            "table_inventory", "table_inventory_zone_id_fkey", "zone_id", "zones", "id", RESTRICT
        ),
        ForeignKey("table_holds", "table_holds_zone_id_fkey", "zone_id", "zones", "id"),
        ForeignKey(
            "booking_table_assignments",
            "booking_table_assignments_table_id_fkey",
            "table_id",
            "table_inventory",
            "id",
            RESTRICT,
        ),
        ForeignKey(
            "table_hold_members",
            "table_hold_members_table_id_fkey",
            "table_id",
            "table_inventory",
            "id",
        ),
        ForeignKey(
            "table_adjacencies",
            "table_adjacencies_table_a_fkey",
            "restaurant_id, table_a",
            "table_inventory",
            "restaurant_id, id",
            CASCADE,
        ),
        ForeignKey(
            "table_adjacencies",
            "table_adjacencies_table_b_fkey",
            "restaurant_id, table_b",
            "table_inventory",
            "restaurant_id, id",
            CASCADE,
        ),
        ForeignKey(
            "allocations", "allocations_booking_id_fkey", "booking_id", "bookings", "id", CASCADE
        ),
        ForeignKey(
            "allocations",
            "allocations_booking_restaurant_fkey",
            "restaurant_id, booking_id",
            "bookings",
            "restaurant_id, id",
            CASCADE,
        ),
        ForeignKey(
            "booking_confirmation_results",
            "booking_confirmation_results_booking_id_fkey",
            "booking_id",
            "bookings",
            "id",
            CASCADE,
        ),
        ForeignKey(
            "booking_table_assignments",
            "booking_table_assignments_booking_id_fkey",
            "booking_id",
            "bookings",
            "id",
            CASCADE,
        ),
        ForeignKey(
            "table_holds", "table_holds_booking_id_fkey", "booking_id", "bookings", "id", CASCADE
        ),
        ForeignKey(
            "table_hold_members",
            "table_hold_members_hold_id_fkey",
            "hold_id",
            "table_holds",
            "id",
            CASCADE,
        ),
    ),
)


def _composite(fk: ForeignKey) -> ForeignKey:
    """The same foreign key with the tenant key on both sides."""
    if fk.columns.startswith("restaurant_id"):
        return fk
    return ForeignKey(
        fk.table,
        fk.name,
        f"restaurant_id, {fk.columns}",
        fk.parent,
        f"restaurant_id, {fk.parent_columns}",
        fk.on_delete,
    )


AFTER = Keys(
    keys=(
        *_pkeys("id, restaurant_id"),
        Key(
            "table_hold_members",
            "table_hold_members_pkey",
            "PRIMARY KEY",
            "hold_id, table_id, restaurant_id",
        ),
        Key(
            "booking_table_assignments",
            "booking_table_assignments_table_id_booking_id_key",
            "UNIQUE",
            "table_id, booking_id, restaurant_id",
        ),
    ),
    foreign_keys=tuple(
        _composite(fk) for fk in BEFORE.foreign_keys if fk.name != "allocations_booking_id_fkey"
    ),
)

# A unique index that is no constraint (its columns are expressions).
PAIR_KEY = "table_adjacencies_pair_key"
PAIR_BEFORE = "(LEAST(table_a, table_b), GREATEST(table_a, table_b))"
PAIR_AFTER = "(LEAST(table_a, table_b), GREATEST(table_a, table_b), restaurant_id)"


def _in_place(key: Key) -> bool:
    """Whether the constraint already has the definition (a rerun after the swap)."""
    if context.is_offline_mode():
        return False
    row = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(%(t)s) AND conname = %(n)s",
            {"t": f"public.{key.table}", "n": key.name},
        )
        .fetchone()
    )
    return row is not None and row[0] == key.definition


def _swap_keys(table: str, source: Keys, target: Keys) -> str:
    """One transaction: the table's keys from `source` to `target`, with the foreign keys
    that reference it dropped first and added back (NOT VALID) last. Skipped once done:
    the prebuilt indexes are renamed into place by the swap."""
    new = [k for k in target.keys if k.table == table and k not in source.keys]
    if not new:
        return ""
    old = [k for k in source.keys if k.table == table and k not in target.keys]
    statements = [
        f"ALTER TABLE public.{fk.table} DROP CONSTRAINT IF EXISTS {fk.name};"
        for fk in source.foreign_keys
        if fk.parent == table
    ]
    statements += [f"ALTER TABLE public.{table} DROP CONSTRAINT IF EXISTS {k.name};" for k in old]
    statements += [
        f"ALTER TABLE public.{table} ADD CONSTRAINT {k.name} {k.kind} USING INDEX {k.prebuilt};"
        for k in new
    ]
    statements += [
        f"ALTER TABLE public.{fk.table} ADD CONSTRAINT {fk.name} {fk.definition} NOT VALID;"
        for fk in target.foreign_keys
        if fk.parent == table
    ]
    body = "\n        ".join(statements)
    return f"""
DO $keys$
BEGIN
    IF to_regclass('public.{new[0].prebuilt}') IS NOT NULL THEN
        {body}
    END IF;
END
$keys$;
"""


def _pair_key(definition: str) -> None:
    """table_adjacencies_pair_key with `definition`: the new index built CONCURRENTLY
    beside it, the old one dropped CONCURRENTLY, the new one renamed into its place."""
    unique = f"ON public.table_adjacencies USING btree {definition}"
    current = None
    if not context.is_offline_mode():
        (current,) = (
            op.get_bind()
            .exec_driver_sql(
                "SELECT pg_get_indexdef(to_regclass(%(i)s))", {"i": f"public.{PAIR_KEY}"}
            )
            .fetchone()
        )
        if current == f"CREATE UNIQUE INDEX {PAIR_KEY} {unique}":
            return
    create_index_concurrently(f"{PAIR_KEY}_next", unique, unique=True)
    if context.is_offline_mode() or current is not None:
        drop_index_concurrently(PAIR_KEY)
    execute_sql(
        "-- squawk-ignore renaming-object -- the new index takes the name of the one it "
        "replaces, so whatever names it (errors, queries) still matches\n"
        f"ALTER INDEX public.{PAIR_KEY}_next RENAME TO {PAIR_KEY};\n"
    )


def _move(source: Keys, target: Keys, pair_key: str) -> None:
    for key in target.keys:
        if key not in source.keys and not _in_place(key):
            create_index_concurrently(
                key.prebuilt, f"ON public.{key.table} USING btree ({key.columns})", unique=True
            )
    with outside_transaction():
        for table in ORDER:
            swap = _swap_keys(table, source, target)
            if swap:
                execute_sql(swap)
    with outside_transaction():
        for fk in target.foreign_keys:
            execute_sql(
                "-- squawk-ignore prefer-robust-stmts -- VALIDATE is idempotent, a rerun "
                "validates again\n"
                f"ALTER TABLE public.{fk.table} VALIDATE CONSTRAINT {fk.name};\n"
            )
    _pair_key(pair_key)


def upgrade() -> None:
    _move(BEFORE, AFTER, PAIR_AFTER)


def downgrade() -> None:
    _move(AFTER, BEFORE, PAIR_BEFORE)
