"""Citus's rules for a distributed schema, checked on one database's catalog.

What Citus refuses (docs/citus.md): a distributed table whose PRIMARY KEY, UNIQUE
constraint, unique index or EXCLUDE constraint leaves out the distribution column (an
EXCLUDE must compare it with `=`), or whose distribution column may be NULL; a foreign key
between two distributed tables that does not map the one's distribution column onto the
other's (they must be co-located); a foreign key from a distributed table to a local one;
a foreign key from a reference table to anything but a reference table; a foreign key from
a local table to a distributed one; ON DELETE / ON UPDATE SET NULL or SET DEFAULT on a
foreign key that includes the distribution column (even with PostgreSQL 15's column list:
citusdata/citus#7132). Every table of the schemas the migrations create must be classified.

`violations` reads the catalog and returns each violation once, keyed by table, object
(the constraint, index or column) and kind, with the object's definition, so the revision
walk (toolkit/integrity/distribution.py) can tell which revision created or changed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from toolkit.integrity.distribution_plan import (
    DISTRIBUTED,
    LOCAL,
    REFERENCE,
    ROOT,
    Classification,
    Placement,
)

TENANT_KINDS = (ROOT, DISTRIBUTED)


@dataclass(frozen=True)
class Violation:
    table: str
    object: str  # a constraint, an index, a column, or the table itself
    kind: str
    message: str
    definition: str  # the object as the catalog defines it: changed means checked again

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.table, self.object, self.kind)

    def to_dict(self) -> dict[str, str]:
        return {
            "table": self.table,
            "object": self.object,
            "kind": self.kind,
            "message": self.message,
        }


@dataclass(frozen=True)
class Constraint:
    name: str
    type: str  # p u x f, or i for a unique index that backs no constraint
    columns: tuple[str | None, ...]  # None: an expression
    operators: tuple[str, ...]  # EXCLUDE: the operator of each element
    references: str  # f: the referenced table
    referenced: tuple[str, ...]  # f: the referenced columns
    on_delete: str  # f: confdeltype
    on_update: str  # f: confupdtype
    definition: str


@dataclass
class Table:
    name: str
    columns: dict[str, bool]  # name -> NOT NULL
    constraints: list[Constraint]


# Tables of every schema but the system's, the toolkit's own (a [[local_schema]]) and
# extensions' members; partitions are judged through their parent.
_TABLES = """
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
  AND n.nspname <> ALL(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2
"""
_COLUMNS = """
SELECT attrelid, attname, attnotnull FROM pg_attribute
WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped
ORDER BY attrelid, attnum
"""
# Column names in key order, NULL for an expression; an EXCLUDE's operators in the same order.
_CONSTRAINTS = """
SELECT con.conrelid, con.conname, con.contype,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(n, i)
             LEFT JOIN pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.n
             ORDER BY k.i),
       ARRAY(SELECT o.oprname FROM unnest(con.conexclop) WITH ORDINALITY AS x(op, i)
             JOIN pg_operator AS o ON o.oid = x.op ORDER BY x.i),
       coalesce(fn.nspname || '.' || fc.relname, ''),
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(n, i)
             JOIN pg_attribute AS a ON a.attrelid = con.confrelid AND a.attnum = k.n
             ORDER BY k.i),
       con.confdeltype, con.confupdtype, pg_get_constraintdef(con.oid)
FROM pg_constraint AS con
LEFT JOIN pg_class AS fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace AS fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY(%s) AND con.contype IN ('p', 'u', 'x', 'f')
ORDER BY con.conrelid, con.conname
"""
_UNIQUE_INDEXES = """
SELECT i.indrelid, ic.relname,
       ARRAY(SELECT a.attname
             FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(n, o)
             LEFT JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.n
             ORDER BY k.o),
       pg_get_indexdef(i.indexrelid)
FROM pg_index AS i
JOIN pg_class AS ic ON ic.oid = i.indexrelid
WHERE i.indisunique AND i.indrelid = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c
                  WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
ORDER BY ic.relname
"""


def read_tables(conn: Any, local_schemas: list[str]) -> list[Table]:
    """The tables the rules judge, with their columns, keys and unique indexes."""
    tables = {oid: Table(name, {}, []) for oid, name in conn.execute(_TABLES, (local_schemas,))}
    oids = list(tables)
    for oid, column, not_null in conn.execute(_COLUMNS, (oids,)):
        tables[oid].columns[column] = bool(not_null)
    for oid, name, kind, columns, ops, ref, ref_cols, on_del, on_upd, text in conn.execute(
        _CONSTRAINTS, (oids,)
    ):
        tables[oid].constraints.append(
            Constraint(
                name,
                kind,
                tuple(columns),
                tuple(ops or ()),
                ref,
                tuple(ref_cols or ()),
                on_del or "",
                on_upd or "",
                text,
            )
        )
    for oid, name, columns, text in conn.execute(_UNIQUE_INDEXES, (oids,)):
        tables[oid].constraints.append(
            Constraint(name, "i", tuple(columns), (), "", (), "", "", text)
        )
    return list(tables.values())


def violations(conn: Any, classification: Classification) -> dict[tuple[str, str, str], Violation]:
    """Every violation in the database `conn` is connected to, by key."""
    found: dict[tuple[str, str, str], Violation] = {}
    for table in read_tables(conn, sorted(classification.local_schemas)):
        for violation in judge_table(table, classification):
            found[violation.key] = violation
    return found


def placement_of(table: str, classification: Classification) -> Placement | None:
    """The table's placement; a table of a local schema is local."""
    schema = table.split(".", 1)[0]
    if schema in classification.local_schemas:
        return Placement(LOCAL, reason=classification.local_schemas[schema])
    return classification.placement(table)


def judge_table(table: Table, classification: Classification) -> Iterator[Violation]:
    placement = placement_of(table.name, classification)
    if placement is None:
        yield Violation(
            table.name,
            table.name,
            "unclassified",
            f"{table.name} is not classified: add it to migrations/distribution.toml as a "
            "distributed table of a branch (with the tenant key), a [[reference]] or a "
            "[[local]] table with its reason",
            ", ".join(table.columns),
        )
        return
    if placement.kind in TENANT_KINDS:
        yield from _tenant_table(table, placement, classification)
    else:
        yield from _shared_table(table, placement, classification)


def _tenant_table(
    table: Table, placement: Placement, classification: Classification
) -> Iterator[Violation]:
    key = placement.key
    if key not in table.columns:
        yield Violation(
            table.name,
            key,
            "key-missing",
            f"no tenant key column {key}: the table cannot be distributed by it",
            ", ".join(table.columns),
        )
    elif not table.columns[key]:
        yield Violation(
            table.name,
            key,
            "key-nullable",
            f"the tenant key {key} is nullable: Citus refuses a row whose distribution "
            "column is NULL (make it NOT NULL)",
            f"{key} NULL",
        )
    for con in table.constraints:
        if con.type in ("p", "u", "i") and key not in con.columns:
            what = {"p": "PRIMARY KEY", "u": "UNIQUE constraint", "i": "unique index"}[con.type]
            yield Violation(
                table.name,
                con.name,
                "unique-without-key",
                f"{what} ({_columns(con)}) does not include the tenant key {key}: Citus "
                "enforces uniqueness only within a shard",
                con.definition,
            )
        elif con.type == "x" and (key, "=") not in zip(con.columns, con.operators, strict=False):
            yield Violation(
                table.name,
                con.name,
                "exclusion-without-key",
                f"EXCLUDE ({_elements(con)}) does not compare the tenant key {key} WITH =: "
                "Citus enforces an exclusion constraint only within a shard",
                con.definition,
            )
        elif con.type == "f":
            yield from _tenant_foreign_key(table, con, placement, classification)


def _tenant_foreign_key(
    table: Table, con: Constraint, placement: Placement, classification: Classification
) -> Iterator[Violation]:
    key = placement.key
    target = placement_of(con.references, classification)
    if key in con.columns and {con.on_delete, con.on_update} & {"n", "d"}:
        yield Violation(
            table.name,
            con.name,
            "fk-sets-key",
            f"foreign key ({_columns(con)}) -> {con.references} includes the tenant key "
            f"{key} and sets NULL or DEFAULT on delete or update: Citus refuses it, even "
            "with a column list that leaves the key alone (citusdata/citus#7132)",
            con.definition,
        )
    if target is None or target.kind == REFERENCE:
        return  # an unclassified target is a finding of its own
    if target.kind == LOCAL:
        yield Violation(
            table.name,
            con.name,
            "fk-to-local",
            f"foreign key ({_columns(con)}) -> {con.references}, a local table: a "
            "distributed table may reference only reference tables and its co-located tables",
            con.definition,
        )
    elif target.branch != placement.branch:
        yield Violation(
            table.name,
            con.name,
            "fk-not-colocated",
            f"foreign key ({_columns(con)}) -> {con.references}, a table of the "
            f"{target.branch} branch, distributed by {target.key}: not co-located with "
            f"this {placement.branch} table",
            con.definition,
        )
    elif (key, target.key) not in zip(con.columns, con.referenced, strict=False):
        yield Violation(
            table.name,
            con.name,
            "fk-without-key",
            f"foreign key ({_columns(con)}) -> {con.references} ({', '.join(con.referenced)}) "
            f"does not map the tenant key {key} onto {con.references}.{target.key}: between "
            "distributed tables Citus needs the distribution column on both sides",
            con.definition,
        )


def _shared_table(
    table: Table, placement: Placement, classification: Classification
) -> Iterator[Violation]:
    """A reference table may reference only reference tables; a local table anything but
    a distributed one."""
    for con in table.constraints:
        if con.type != "f":
            continue
        target = placement_of(con.references, classification)
        if target is None:
            continue
        if placement.kind == REFERENCE and target.kind != REFERENCE:
            kind = "distributed" if target.kind in TENANT_KINDS else target.kind
            yield Violation(
                table.name,
                con.name,
                f"reference-to-{kind}",
                f"foreign key ({_columns(con)}) -> {con.references}, a {kind} table: "
                "a reference table is copied to every node and may reference only "
                "reference tables",
                con.definition,
            )
        elif placement.kind == LOCAL and target.kind in TENANT_KINDS:
            yield Violation(
                table.name,
                con.name,
                "local-to-distributed",
                f"foreign key ({_columns(con)}) -> {con.references}, a distributed table: a "
                "local table may reference only reference and local tables",
                con.definition,
            )


def _columns(con: Constraint) -> str:
    return ", ".join(c or "(expression)" for c in con.columns)


def _elements(con: Constraint) -> str:
    return ", ".join(
        f"{c or '(expression)'} WITH {op}"
        for c, op in zip(con.columns, con.operators, strict=False)
    )
