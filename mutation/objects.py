"""The rule-bearing objects of a migrated database, read from its catalog: what the
mutation kinds (mutation/kinds.py) weaken. Each is keyed as `venuedb verify`'s catalog
snapshot keys it (toolkit/integrity/catalog.py), so a mutation names the object verify
would name and the release that created it (mutation/releases.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

# The schemas the releases create objects in (catalog.SCHEMAS).
SCHEMAS = ["public", "auth"]
_NOT_OURS = "('alembic_version', 'alembic_version_pkc')"


@dataclass(frozen=True)
class RuleObject:
    """One object: its kind (constraint, trigger, policy, function, table, role), its
    snapshot key, the table it guards (None for functions and roles) and what the mutation
    kinds need to know of it."""

    kind: str
    key: str
    table: str | None
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def short_name(self) -> str:
        """The bare name tests would mention: the function's or the table's."""
        if self.kind == "function":
            return str(self.facts["name"])
        if self.table is not None:
            return self.table.split(".")[-1]
        return self.key


_CONSTRAINTS = f"""
SELECT 'constraint' AS kind, n.nspname || '.' || c.relname || '.' || con.conname AS key,
       format('%%I.%%I', n.nspname, c.relname) AS qualified_table,
       n.nspname || '.' || c.relname AS table_key,
       con.conname AS name, con.contype::text AS type, pg_get_constraintdef(con.oid) AS definition,
       con.condeferrable AS deferrable,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS columns,
       (con.contype IN ('p', 'u', 'x') AND EXISTS (
           SELECT 1 FROM pg_constraint fk WHERE fk.contype = 'f' AND fk.conindid = con.conindid))
           AS referenced
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND con.contype IN ('c', 'f', 'p', 'u', 'x')
  AND c.relname NOT IN {_NOT_OURS}
ORDER BY 2
"""

_TRIGGERS = """
SELECT 'trigger' AS kind, n.nspname || '.' || c.relname || '.' || t.tgname AS key,
       format('%%I.%%I', n.nspname, c.relname) AS qualified_table,
       n.nspname || '.' || c.relname AS table_key,
       t.tgname AS name, pg_get_triggerdef(t.oid) AS definition, t.tgqual IS NOT NULL AS has_when,
       t.tgconstraint <> 0 AS constraint_trigger, p.proname AS function
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
ORDER BY 2
"""

_POLICIES = """
SELECT 'policy' AS kind, p.schemaname || '.' || p.tablename || '.' || p.policyname AS key,
       format('%%I.%%I', p.schemaname, p.tablename) AS qualified_table,
       p.schemaname || '.' || p.tablename AS table_key,
       p.policyname AS name, p.cmd, p.roles::text[] AS roles, p.qual, p.with_check,
       EXISTS (SELECT 1 FROM unnest(%(bound)s::text[]) r
               WHERE has_table_privilege(r, format('%%I.%%I', p.schemaname, p.tablename),
                                         'SELECT,INSERT,UPDATE,DELETE')) AS api_privileged,
       ARRAY(SELECT r FROM unnest(%(bound)s::text[]) r
             WHERE has_table_privilege(r, format('%%I.%%I', p.schemaname, p.tablename),
                                       'SELECT,INSERT,UPDATE,DELETE')) AS privileged_bound_roles,
       NOT EXISTS (SELECT 1 FROM unnest(p.roles) r
                   WHERE r = 'public' OR NOT coalesce(
                       (SELECT rolbypassrls FROM pg_roles WHERE rolname = r), false))
           AS only_bypassing_roles
FROM pg_policies p
WHERE p.schemaname = ANY(%(schemas)s)
ORDER BY 2
"""

_FUNCTIONS = """
SELECT 'function' AS kind,
       n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
           AS key,
       NULL AS table_key,
       p.proname AS name,
       format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
           AS signature,
       format('%%I.%%I', n.nspname, p.proname) AS qualified_name,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       p.prokind::text AS routine_kind, p.prorettype = 'trigger'::regtype AS returns_trigger,
       p.prorettype = 'boolean'::regtype AS returns_boolean,
       p.prorettype = 'void'::regtype AS returns_void,
       p.proretset AS returns_set,
       coalesce('o' = ANY(p.proargmodes) OR 'b' = ANY(p.proargmodes) OR 't' = ANY(p.proargmodes),
                false) AS has_out_arguments,
       p.prosecdef AS security_definer, coalesce(p.proconfig, '{}') AS config,
       p.provolatile::text AS volatility, p.proisstrict AS strict,
       coalesce((SELECT array_agg(DISTINCT c.relname::text ORDER BY c.relname::text)
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 WHERE t.tgfoid = p.oid AND NOT t.tgisinternal), '{}') AS trigger_tables,
       -- What PostgreSQL may inline (SQL, no SET, not SECURITY DEFINER): never counted.
       (p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
        AND p.proconfig IS NULL AND NOT p.prosecdef) AS inlinable,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute,
       has_function_privilege('anon', p.oid, 'EXECUTE') AS anon_execute,
       -- A role row level security binds (anon, authenticated) may run it: EXECUTE, or
       -- a trigger of it on a table that role may write.
       (EXISTS (SELECT 1 FROM unnest(%(bound)s::text[]) r
                WHERE has_function_privilege(r, p.oid, 'EXECUTE'))
        OR EXISTS (SELECT 1 FROM pg_trigger t, unnest(%(bound)s::text[]) r
                   WHERE t.tgfoid = p.oid
                     AND has_table_privilege(r, t.tgrelid, 'INSERT,UPDATE,DELETE')))
           AS api_reachable
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 2
"""

_TABLES = f"""
SELECT 'table' AS kind, n.nspname || '.' || c.relname AS key,
       format('%%I.%%I', n.nspname, c.relname) AS qualified_table,
       n.nspname || '.' || c.relname AS table_key,
       c.relname AS name, c.relrowsecurity AS rls,
       NOT (has_table_privilege('anon', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
            AND has_table_privilege('authenticated', c.oid,
                                    'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER'))
           AS api_roles_lack_some,
       EXISTS (SELECT 1 FROM unnest(%(bound)s::text[]) r
               WHERE has_table_privilege(r, c.oid, 'SELECT,INSERT,UPDATE,DELETE')) AS api_privileged
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND c.relname NOT IN {_NOT_OURS}
ORDER BY 2
"""

_ROLES = """
SELECT 'role' AS kind, r.rolname AS key, NULL AS table_key, r.rolname AS name,
       r.rolbypassrls AS bypassrls
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s)
ORDER BY 2
"""

# The roles core_001 creates (catalog.APP_ROLES): what RLS and the grants are written for.
API_ROLES = ["anon", "authenticated", "service_role"]
# The API roles row level security binds: the callers the rules are written against.
# service_role (BYPASSRLS) is the platform's own backend, trusted like the owner.
RLS_BOUND_ROLES = ["anon", "authenticated"]


def read(conn: psycopg.Connection[Any]) -> list[RuleObject]:
    """Every rule-bearing object of the database, in a stable order."""
    found: list[RuleObject] = []
    params = {"schemas": SCHEMAS, "roles": API_ROLES, "bound": RLS_BOUND_ROLES}
    with conn.cursor(row_factory=dict_row) as cur:
        for sql in (_CONSTRAINTS, _TRIGGERS, _POLICIES, _FUNCTIONS, _TABLES, _ROLES):
            for row in cur.execute(sql, params).fetchall():
                kind, key, table = row.pop("kind"), row.pop("key"), row.pop("table_key")
                found.append(RuleObject(kind, key, table, row))
    return found
