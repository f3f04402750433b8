"""The schema as PostgreSQL's catalog describes it, object by object, comparable across
databases and PostgreSQL versions (15 and 18): the reference for drift detection.

Definitions come from the catalog's own functions (pg_get_constraintdef,
pg_get_indexdef, pg_get_triggerdef, pg_get_ruledef, the function's source and
attributes, policies, grants, RLS flags, column types and defaults), plus what a
hand-made change could use to weaken the rules without touching a definition: the app
roles' attributes and settings, trigger firing modes (system FK triggers included),
function and schema privileges and owners, SECURITY DEFINER functions anywhere, rules,
default privileges, event triggers and the rows of the tables whose rows are rules.

Every schema is covered except PostgreSQL's own and the toolkit's (`venuedb`, checked by
the tamper checks): a schema the project does not know shows up as unexpected, with its
objects. Things that legitimately differ between servers are left out: NOT NULL
constraint rows (PostgreSQL 18 lists them; columns carry NOT NULL anyway), extension
versions and the objects extensions own. The role that deployed the schema (the owner of
alembic_version) is written `(deployer)`, so a snapshot taken on the embedded server
compares with a production deployed by another user. Privileges are compared after
folding in the object's default ACL (acldefault) and leaving out the owner's own, so a
GRANT later revoked back to the default is no drift.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import OperationFailed
from toolkit.paths import editable_project_root, migrations_dir, sql_dir
from toolkit.read_once import read_once
from toolkit.server.urls import masked_first_line

# The schemas the project's migrations create or fill; any other non-system schema in a
# database is reported as unexpected, with whatever it holds.
SCHEMAS = ("public", "auth")
# The roles core_001 creates (cluster-wide): their attributes decide what RLS and the
# grants are worth.
APP_ROLES = ("anon", "authenticated", "service_role")
# Tables whose rows are rules, not operational data: the state machine's allowed
# transitions. (feature_flags, feature_rollouts, table_adjacencies are operated on.)
RULE_TABLES = ("public.assignment_state_transitions",)
# A rule table the verifying role may not read (no SELECT, or RLS filters its rows).
UNREADABLE = "not readable by the verifying role"

# A normalised ACL: the object's default ACL when it has none, the owner's own privileges
# left out (they come with ownership), grantees as `(deployer)`/PUBLIC/role, `*` for
# WITH GRANT OPTION, sorted bytewise so every server orders it alike.
_ACL = """coalesce((SELECT string_agg(e, ',' ORDER BY e COLLATE "C") FROM (
    SELECT DISTINCT w.name || ':' || a.privilege_type
                    || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS e
    FROM aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) a
    JOIN who w ON w.oid = a.grantee
    WHERE a.grantee <> {owner}) acl), '')"""


def _acl(acl: str, kind: str, owner: str) -> str:
    return _ACL.format(acl=acl, kind=f'{kind}::"char"', owner=owner)


_REL_ACL_KIND = "CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END"


SNAPSHOT_SQL = f"""
WITH deployer AS (
    SELECT coalesce(
        (SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass('public.alembic_version')),
        (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)) AS oid
),
who AS (
    SELECT r.oid,
           CASE WHEN r.oid = (SELECT oid FROM deployer) THEN '(deployer)' ELSE r.rolname END
           AS name
    FROM pg_roles r
    UNION ALL SELECT 0, 'PUBLIC'
),
ext AS (
    SELECT d.classid, d.objid FROM pg_depend d WHERE d.deptype = 'e'
),
ns AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'venuedb')
      AND n.nspname !~ '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT 1 FROM ext
                      WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = n.oid)
),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl,
           c.relowner, n.nspname
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
    WHERE NOT (n.nspname = 'public' AND c.relname IN ('alembic_version', 'alembic_version_pkc'))
      AND NOT EXISTS (SELECT 1 FROM ext
                      WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
),
fn AS (
    SELECT p.oid, p.proname, p.proowner, p.proacl, p.prosecdef, p.proconfig, n.nspname,
           n.nspname || '.' || p.proname
           || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT 1 FROM ext
                      WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
)
SELECT 'table'::text, (nspname || '.' || relname)::text,
       'kind=' || relkind::text || ' rls=' || relrowsecurity::text
       || ' force_rls=' || relforcerowsecurity::text
       || ' owner=' || (SELECT w.name FROM who w WHERE w.oid = relowner)
FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'grant', r.nspname || '.' || r.relname,
       {_acl("r.relacl", _REL_ACL_KIND, "r.relowner")}
FROM rel r WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
UNION ALL
SELECT * FROM (
    SELECT 'column_grant', r.nspname || '.' || r.relname || '.' || a.attname,
           coalesce((SELECT string_agg(e, ',' ORDER BY e COLLATE "C") FROM (
               SELECT DISTINCT w.name || ':' || x.privilege_type
                               || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS e
               FROM aclexplode(a.attacl) x JOIN who w ON w.oid = x.grantee
               WHERE x.grantee <> r.relowner) acl), '') AS acl
    FROM pg_attribute a JOIN rel r ON r.oid = a.attrelid
    WHERE a.attacl IS NOT NULL AND NOT a.attisdropped
) col WHERE col.acl <> ''
UNION ALL
SELECT 'column', r.nspname || '.' || r.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN rel r ON r.oid = a.attrelid AND r.relkind IN ('r', 'p')
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', r.nspname || '.' || r.relname || '.' || con.conname,
       pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN rel r ON r.oid = con.conrelid
WHERE con.contype <> 'n'
UNION ALL
SELECT 'index', r.nspname || '.' || r.relname, pg_get_indexdef(r.oid)
FROM rel r WHERE r.relkind = 'i'
UNION ALL
SELECT 'function', f.name,
       'returns ' || coalesce(pg_get_function_result(p.oid), 'void') || ' ' || l.lanname
       || ' kind=' || p.prokind::text
       || ' volatility=' || p.provolatile::text || ' security_definer=' || p.prosecdef::text
       || ' leakproof=' || p.proleakproof::text || ' strict=' || p.proisstrict::text
       || ' parallel=' || p.proparallel::text
       || ' owner=' || (SELECT w.name FROM who w WHERE w.oid = p.proowner)
       || ' config=' || coalesce(array_to_string(p.proconfig, ','), '')
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
       || ' source_md5=' || md5(p.prosrc)
FROM fn f JOIN pg_proc p ON p.oid = f.oid JOIN pg_language l ON l.oid = p.prolang
WHERE f.nspname <> 'venuedb'
UNION ALL
SELECT 'function_grant', f.name, {_acl("f.proacl", "'f'", "f.proowner")}
FROM fn f WHERE f.nspname <> 'venuedb'
UNION ALL
-- Anywhere, the toolkit's schema included: a SECURITY DEFINER function runs with its
-- owner's rights whatever schema it hides in.
SELECT 'security_definer', f.name,
       'owner=' || (SELECT w.name FROM who w WHERE w.oid = f.proowner)
       || ' config=' || coalesce(array_to_string(f.proconfig, ','), '')
FROM fn f WHERE f.prosecdef
UNION ALL
SELECT 'trigger', r.nspname || '.' || r.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid
WHERE NOT t.tgisinternal
UNION ALL
-- Internal (foreign key, deferred unique) triggers are named after OIDs: keyed by their
-- constraint, function and events instead.
SELECT 'trigger_mode',
       r.nspname || '.' || r.relname || '.'
       || CASE WHEN t.tgisinternal
               THEN coalesce(con.conname::text, '?') || '/' || tp.proname::text || '/'
                    || concat_ws('|', CASE WHEN t.tgtype & 4 <> 0 THEN 'insert' END,
                                 CASE WHEN t.tgtype & 8 <> 0 THEN 'delete' END,
                                 CASE WHEN t.tgtype & 16 <> 0 THEN 'update' END,
                                 CASE WHEN t.tgtype & 32 <> 0 THEN 'truncate' END)
               ELSE t.tgname::text END,
       CASE t.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'
                        WHEN 'R' THEN 'replica only' WHEN 'A' THEN 'always'
                        ELSE t.tgenabled::text END
FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid
JOIN pg_proc tp ON tp.oid = t.tgfoid
LEFT JOIN pg_constraint con ON con.oid = t.tgconstraint
UNION ALL
SELECT 'rule', r.nspname || '.' || r.relname || '.' || rw.rulename,
       pg_get_ruledef(rw.oid) || ' enabled=' || rw.ev_enabled::text
FROM pg_rewrite rw JOIN rel r ON r.oid = rw.ev_class
UNION ALL
SELECT 'policy', pol.schemaname || '.' || pol.tablename || '.' || pol.policyname,
       pol.permissive || ' ' || pol.cmd || ' to ' || array_to_string(pol.roles, ',')
       || ' using ' || coalesce(pol.qual, '') || ' check ' || coalesce(pol.with_check, '')
FROM pg_policies pol JOIN ns n ON n.nspname = pol.schemaname
UNION ALL
SELECT 'schema', n.nspname::text,
       'owner=' || (SELECT w.name FROM who w WHERE w.oid = n.nspowner)
       || ' grants=' || {_acl("n.nspacl", "'n'", "n.nspowner")}
FROM ns n
UNION ALL
SELECT * FROM (
    SELECT 'default_acl',
           (SELECT w.name FROM who w WHERE w.oid = d.defaclrole)
           || coalesce(' in ' || n.nspname, '') || ' on ' || d.defaclobjtype::text,
           coalesce((SELECT string_agg(e, ',' ORDER BY e COLLATE "C") FROM (
               SELECT DISTINCT w.name || ':' || x.privilege_type
                               || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS e
               FROM aclexplode(d.defaclacl) x JOIN who w ON w.oid = x.grantee
               WHERE x.grantee <> d.defaclrole) acl), '') AS acl
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
) dacl WHERE dacl.acl <> ''
UNION ALL
SELECT 'event_trigger', e.evtname::text,
       e.evtevent || ' ' || ep.proname || ' enabled=' || e.evtenabled::text
       || ' tags=' || coalesce(array_to_string(e.evttags, ','), '')
FROM pg_event_trigger e JOIN pg_proc ep ON ep.oid = e.evtfoid
WHERE NOT EXISTS (SELECT 1 FROM ext
                  WHERE ext.classid = 'pg_event_trigger'::regclass AND ext.objid = e.oid)
UNION ALL
SELECT 'role', r.rolname::text,
       'superuser=' || r.rolsuper::text || ' bypassrls=' || r.rolbypassrls::text
       || ' inherit=' || r.rolinherit::text || ' login=' || r.rolcanlogin::text
       || ' createrole=' || r.rolcreaterole::text || ' createdb=' || r.rolcreatedb::text
       || ' replication=' || r.rolreplication::text
       || ' settings=' || coalesce((
           SELECT string_agg(c, ',' ORDER BY c COLLATE "C") FROM (
               SELECT CASE WHEN s.setdatabase = 0 THEN '' ELSE 'this database:' END || cfg AS c
               FROM pg_db_role_setting s, unnest(s.setconfig) cfg
               WHERE s.setrole = r.oid
                 AND s.setdatabase IN (0, (SELECT oid FROM pg_database
                                           WHERE datname = current_database()))) st), '')
       || ' member_of=' || coalesce((
           SELECT string_agg(DISTINCT g.rolname, ',' ORDER BY g.rolname)
           FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
           WHERE m.member = r.oid), '')
FROM pg_roles r WHERE r.rolname = ANY(%(roles)s)
UNION ALL
SELECT 'extension', e.extname::text, 'installed' FROM pg_extension e WHERE e.extname <> 'plpgsql'
"""

KINDS = (
    "schema",
    "table",
    "column",
    "constraint",
    "index",
    "function",
    "trigger",
    "trigger_mode",
    "rule",
    "policy",
    "grant",
    "column_grant",
    "function_grant",
    "default_acl",
    "security_definer",
    "event_trigger",
    "role",
    "rule_data",
    "extension",
)

# Kinds a scratch database on the same server cannot be the reference for: roles are
# cluster-wide, so it would see the very roles under test. They come from the committed
# snapshot (no revision after core_001 changes a role).
CLUSTER_KINDS = ("role",)


def snapshot_file() -> Path:
    return migrations_dir() / "schema_snapshot.json"


def hold_cluster_kinds_to_snapshot(
    reference: dict[str, dict[str, str]],
    live: dict[str, dict[str, str]],
    committed: dict[str, Any] | None,
    path: Path,
) -> list[str]:
    """A reference built in a scratch database on the live database's server sees the very
    (cluster-wide) roles under test: take CLUSTER_KINDS from the committed snapshot (`path`)
    instead, or, without one, compare neither side's; the kinds left uncompared, said."""
    uncompared = []
    for kind in CLUSTER_KINDS:
        if committed is not None:
            reference[kind] = committed["objects"].get(kind, {})
        else:
            reference.pop(kind, None)
            live.pop(kind, None)
            uncompared.append(f"{kind} attributes not compared: no committed snapshot at {path}")
    return uncompared


def _rows(conn: Any, sql: str, params: dict[str, Any]) -> list[Any]:
    """A psycopg connection, or a SQLAlchemy one (apply --rehearse's)."""
    if hasattr(conn, "exec_driver_sql"):
        return list(conn.exec_driver_sql(sql, params).fetchall())
    return list(conn.execute(sql, params).fetchall())


_RULE_DATA_SQL = """
SELECT to_regclass(%(t)s) IS NOT NULL,
       has_table_privilege(to_regclass(%(t)s), 'SELECT')
       AND NOT row_security_active(to_regclass(%(t)s))
"""


def rule_data(conn: Any) -> dict[str, str]:
    """Row count and md5 of each rule table's rows, in a server-independent order."""
    out = {}
    for table in RULE_TABLES:
        [(exists, readable)] = _rows(conn, _RULE_DATA_SQL, {"t": table})
        if not exists:
            continue
        if not readable:
            out[table] = UNREADABLE
            continue
        schema, name = table.split(".", 1)
        quoted = f'"{schema}"."{name}"'  # from the constant above, never from input
        [(count, digest)] = _rows(
            conn,
            f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' "
            f"ORDER BY x::text COLLATE \"C\"), '')) FROM {quoted} x",
            {},
        )
        out[table] = f"rows={count} md5={digest}"
    return out


def take(conn: Any) -> dict[str, dict[str, str]]:
    """kind -> name -> definition, from a psycopg (or SQLAlchemy) connection."""
    out: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for kind, name, definition in _rows(conn, SNAPSHOT_SQL, {"roles": list(APP_ROLES)}):
        out[kind][name] = definition
    out["rule_data"] = rule_data(conn)
    return {kind: dict(sorted(objects.items())) for kind, objects in out.items()}


def function_file_hashes() -> dict[str, str]:
    """sha256 of every released sql/functions file: a released file is never edited."""
    root = sql_dir() / "functions"
    return {
        str(path.relative_to(sql_dir())): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.sql"))
    }


def write(objects: dict[str, dict[str, str]], heads: list[str], path: Path | None = None) -> Path:
    if path is None:
        editable_project_root("venuedb snapshot")
        path = snapshot_file()
    document = {
        "comment": "Generated by `venuedb snapshot`: the schema every migration builds. "
        "Review changes to it like code.",
        "heads": sorted(heads),
        "function_files": function_file_hashes(),
        "objects": objects,
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


@read_once
def load(path: Path | None = None) -> dict[str, Any]:
    path = path or snapshot_file()
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Drift:
    kind: str
    name: str
    status: str  # missing | unexpected | changed
    expected: str | None
    actual: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "expected": self.expected,
            "actual": self.actual,
        }


def diff(reference: dict[str, dict[str, str]], live: dict[str, dict[str, str]]) -> list[Drift]:
    found = []
    for kind in KINDS:
        want, have = reference.get(kind, {}), live.get(kind, {})
        for name in sorted(want.keys() | have.keys()):
            expected, actual = want.get(name), have.get(name)
            if expected == actual:
                continue
            status = (
                "missing" if actual is None else "unexpected" if expected is None else "changed"
            )
            found.append(Drift(kind, name, status, expected, actual))
    return found


class ScratchUnavailable(OperationFailed):
    """No scratch database could be created or migrated: no reference to compare with."""


def build(
    server_url: str,
    targets: list[str] | None = None,
    after: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Migrate a scratch database beside `server_url` to every head (or to exactly the
    revisions in `targets`, one per branch), run `after` on its URL (the rollback levels
    a database is at), and snapshot it.

    Raises ScratchUnavailable when the database cannot be created (no CREATEDB) or the
    migration fails; the scratch database is always dropped."""
    with _ONE_BUILD_AT_A_TIME:
        return _build(server_url, targets, after)


# Alembic's `op` and migration context are module-global: two scratch migrations in one
# process (`venuedb fleet verify` compares databases in threads) must take turns.
_ONE_BUILD_AT_A_TIME = threading.Lock()


def _build(
    server_url: str, targets: list[str] | None, after: Callable[[str], None] | None
) -> tuple[dict[str, dict[str, str]], list[str]]:
    from contextlib import ExitStack

    import psycopg

    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import RunOptions, current_heads, run
    from toolkit.server.connection import Target
    from toolkit.server.scratch import scratch_database

    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(server_url, "venuedb_scratch_"))
        except psycopg.Error as exc:
            raise ScratchUnavailable(
                f"cannot create a scratch database: {masked_first_line(exc)}"
            ) from None
        try:
            options = RunOptions(actor="snapshot")
            for name in targets if targets is not None else [None]:
                run(Target(url, "snapshot"), "upgrade", name, options)
            if after is not None:
                after(url)
            with psycopg.connect(url) as conn:
                objects = take(conn)
                heads = [h for h in revs.heads_by_branch(current_heads(conn)).values() if h]
        except Exception as exc:
            raise ScratchUnavailable(
                "cannot migrate a scratch database to "
                f"{', '.join(targets or ['the heads'])}: {masked_first_line(exc)}"
            ) from None
    return objects, heads


@dataclass(frozen=True)
class Change:
    """An object a migration added, removed or changed: `apply --rehearse`'s report."""

    action: str  # added | removed | changed
    kind: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "kind": self.kind, "name": self.name}


_ACTION = {"unexpected": "added", "missing": "removed", "changed": "changed"}


def changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[Change]:
    """What turned `before` into `after`, by the same comparison as drift (diff): an
    object `after` has and `before` lacks was added, and so on."""
    return [Change(_ACTION[d.status], d.kind, d.name) for d in diff(before, after)]
