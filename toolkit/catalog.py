"""A snapshot of the schema objects in the application's schemas, from PostgreSQL's own catalog.

Used to report what a rehearsed change would do (objects added, removed, changed);
each object is identified by kind and name and described by the catalog's own
definition functions (pg_get_constraintdef, pg_get_indexdef, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Schemas that belong to the application; the toolkit's own schema and PostgreSQL's are left out.
APP_SCHEMAS = ("public", "auth")

SNAPSHOT_SQL = """
WITH app_ns AS (
    SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY(%(schemas)s)
)
SELECT 'table', n.nspname || '.' || c.relname, c.relkind::text || ' rls=' || c.relrowsecurity::text
FROM pg_class c JOIN app_ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
UNION ALL
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
JOIN app_ns n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', n.nspname || '.' || c.relname || '.' || con.conname,
       pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN app_ns n ON n.oid = c.relnamespace
WHERE con.contype <> 'n'  -- PostgreSQL 18 lists NOT NULL as constraints; columns carry it already
UNION ALL
SELECT 'index', n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN app_ns n ON n.oid = i.relnamespace
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN app_ns n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend dep
                  WHERE dep.objid = p.oid AND dep.deptype = 'e')
UNION ALL
SELECT 'trigger', n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN app_ns n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal
UNION ALL
SELECT 'policy', pol.schemaname || '.' || pol.tablename || '.' || pol.policyname,
       pol.cmd || ' ' || array_to_string(pol.roles, ',') || ' using ' || coalesce(pol.qual, '')
       || ' check ' || coalesce(pol.with_check, '')
FROM pg_policies pol WHERE pol.schemaname = ANY(%(schemas)s)
UNION ALL
SELECT 'extension', e.extname, e.extversion FROM pg_extension e
"""


@dataclass(frozen=True)
class Change:
    action: str  # added | removed | changed
    kind: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "kind": self.kind, "name": self.name}


def snapshot(
    cursor_owner: Any, schemas: tuple[str, ...] = APP_SCHEMAS
) -> dict[tuple[str, str], str]:
    """(kind, name) -> definition. Accepts a psycopg connection or a SQLAlchemy connection."""
    params = {"schemas": list(schemas)}
    if hasattr(cursor_owner, "exec_driver_sql"):
        rows = cursor_owner.exec_driver_sql(SNAPSHOT_SQL, params).fetchall()
    else:
        rows = cursor_owner.execute(SNAPSHOT_SQL, params).fetchall()
    # alembic_version is the migration tool's bookkeeping, not the application's schema.
    return {
        (kind, name): definition
        for kind, name, definition in rows
        if not name.startswith(("public.alembic_version", "public.alembic_version_pkc"))
    }


def diff(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[Change]:
    changes = [Change("added", k, n) for (k, n) in after.keys() - before.keys()]
    changes += [Change("removed", k, n) for (k, n) in before.keys() - after.keys()]
    changes += [
        Change("changed", k, n)
        for (k, n) in before.keys() & after.keys()
        if before[(k, n)] != after[(k, n)]
    ]
    order = {
        "table": 0,
        "column": 1,
        "constraint": 2,
        "index": 3,
        "function": 4,
        "trigger": 5,
        "policy": 6,
        "extension": 7,
    }
    return sorted(changes, key=lambda c: (order.get(c.kind, 9), c.name, c.action))
