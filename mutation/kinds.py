"""The mutation kinds: for each kind of rule-bearing object (mutation/objects.py), the ways
someone with a superuser's psql could weaken it in production. Each is SQL applied, in one
transaction, to a clone of the migrated template.

A kind is a function decorated with `@kind(object_kind, name)`: given the object (and a
connection to the migrated template, for kinds that must look at data), it returns the
mutation's SQL and a one-line description, or None when the kind does not apply to that
object (a constraint that is already DEFERRABLE, a policy with no USING clause). README,
"Schema mutation testing", shows how to add one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from mutation.objects import RuleObject
from tests import rows


@dataclass(frozen=True)
class Mutation:
    """One weakening of one object."""

    id: str  # "<object kind>.<kind name> <object key>": unique and stable across runs
    kind: str  # "<object kind>.<kind name>", e.g. "constraint.drop"
    object_kind: str
    object: str  # the object's snapshot key
    table: str | None
    relevant_names: tuple[str, ...]  # what a test of it would name: its table, its function
    description: str
    sql: str
    # Undoes a change outside the database (a role is cluster-wide): run after the mutation.
    revert: str = ""
    release: str = ""  # the release that created or last changed the object
    # A SQL function PostgreSQL may inline into its caller's query: its calls are not
    # counted, so the statistics cannot say which tests run it.
    uncounted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Made:
    sql: str
    description: str
    revert: str = ""


@dataclass(frozen=True)
class Equivalent:
    """The kind applies, but the catalog proves the mutation changes nothing any role
    but the trusted ones (the owner, service_role) can do: not made, and said why."""

    why: str


Maker = Callable[[RuleObject, "psycopg.Connection[Any]"], Made | Equivalent | None]
KINDS: dict[str, list[tuple[str, Maker]]] = {}


def kind(object_kind: str, name: str) -> Callable[[Maker], Maker]:
    def register(maker: Maker) -> Maker:
        KINDS.setdefault(object_kind, []).append((name, maker))
        return maker

    return register


def generate(
    objects: list[RuleObject],
    conn: psycopg.Connection[Any],
    releases: dict[str, str],
    equivalent: dict[str, str] | None = None,
) -> list[Mutation]:
    """Every applicable mutation of every object, in a stable order. Those proven
    equivalent go to `equivalent` (id -> why) instead."""
    made = []
    for obj in objects:
        for name, maker in KINDS.get(obj.kind, []):
            result = maker(obj, conn)
            if result is None:
                continue
            if isinstance(result, Equivalent):
                if equivalent is not None:
                    equivalent[f"{obj.kind}.{name} {obj.key}"] = result.why
                continue
            relevant = _relevant(obj)
            made.append(
                Mutation(
                    id=f"{obj.kind}.{name} {obj.key}",
                    kind=f"{obj.kind}.{name}",
                    object_kind=obj.kind,
                    object=obj.key,
                    table=obj.table,
                    relevant_names=relevant,
                    description=result.description,
                    sql=result.sql,
                    revert=result.revert,
                    release=releases.get(f"{obj.kind} {obj.key}", ""),
                    uncounted=obj.kind == "function" and bool(obj.facts["inlinable"]),
                )
            )
    return made


def _relevant(obj: RuleObject) -> tuple[str, ...]:
    """The tables and functions a test must have touched to notice the mutation. A
    trigger's, and a trigger function's: its tables and its function (PostgreSQL counts
    a function's call only when it returns, so a test the trigger refused shows only the
    table)."""
    if obj.kind == "trigger":
        return tuple(sorted({obj.short_name, str(obj.facts["function"])}))
    if obj.kind == "function":  # a trigger function: and the tables it fires on
        return tuple(sorted({obj.short_name, *obj.facts["trigger_tables"]}))
    return (obj.short_name,)


# -- constraints ---------------------------------------------------------------------------

_TYPES = {"c": "CHECK", "f": "FOREIGN KEY", "p": "PRIMARY KEY", "u": "UNIQUE", "x": "EXCLUDE"}


def _alter(obj: RuleObject) -> str:
    return f"ALTER TABLE {obj.facts['qualified_table']}"


def _constraint(obj: RuleObject) -> str:
    return rows.ident(str(obj.facts["name"]))


@kind("constraint", "drop")
def drop_constraint(obj: RuleObject, conn: Any) -> Made:
    cascade = " CASCADE" if obj.facts["referenced"] else ""
    also = " (and the foreign keys that need it)" if cascade else ""
    return Made(
        f"{_alter(obj)} DROP CONSTRAINT {_constraint(obj)}{cascade};",
        f"{_TYPES[obj.facts['type']]} {obj.facts['name']} dropped{also}",
    )


@kind("constraint", "not_valid")
def not_valid(obj: RuleObject, conn: psycopg.Connection[Any]) -> Made | None:
    """Dropped, a row breaking it written, re-added NOT VALID: it checks new rows only."""
    if obj.facts["type"] not in ("c", "f"):
        return None  # PostgreSQL has NOT VALID for CHECK and foreign keys only
    table = str(obj.facts["qualified_table"])
    checks = rows.live_checks(conn, table)
    if obj.facts["type"] == "f":
        found = rows.search(conn, table, checks, fresh=list(obj.facts["columns"]))
    else:
        found = rows.search(conn, table, checks, breaking=checks.pop(str(obj.facts["name"])))
    if found is None:
        return None
    names, select = found
    insert = f"INSERT INTO {table} ({', '.join(names)}) OVERRIDING SYSTEM VALUE {select};"
    definition = str(obj.facts["definition"]).removesuffix(" NOT VALID")
    return Made(
        f"{_alter(obj)} DROP CONSTRAINT {_constraint(obj)};\n"
        "SET LOCAL session_replication_role = replica;\n"
        f"{insert}\n"
        "SET LOCAL session_replication_role = origin;\n"
        f"{_alter(obj)} ADD CONSTRAINT {_constraint(obj)} {definition} NOT VALID;",
        f"{_TYPES[obj.facts['type']]} {obj.facts['name']} re-added NOT VALID over a row "
        "that breaks it (written with triggers off)",
    )


_DEFERRABLE = re.compile(r"\s+(NOT )?DEFERRABLE(\s+INITIALLY (DEFERRED|IMMEDIATE))?")


@kind("constraint", "deferred")
def deferred(obj: RuleObject, conn: Any) -> Made | None:
    """DEFERRABLE INITIALLY DEFERRED: checked at COMMIT, not at the statement."""
    ctype = obj.facts["type"]
    if ctype == "c" or "INITIALLY DEFERRED" in str(obj.facts["definition"]):
        return None  # a CHECK cannot be deferred
    if obj.facts["referenced"]:
        return None  # a foreign key cannot reference a deferrable key
    if ctype == "f":
        sql = f"{_alter(obj)} ALTER CONSTRAINT {_constraint(obj)} DEFERRABLE INITIALLY DEFERRED;"
    else:
        definition = _DEFERRABLE.sub("", str(obj.facts["definition"]))
        sql = (
            f"{_alter(obj)} DROP CONSTRAINT {_constraint(obj)};\n"
            f"{_alter(obj)} ADD CONSTRAINT {_constraint(obj)} {definition} "
            "DEFERRABLE INITIALLY DEFERRED;"
        )
    return Made(sql, f"{_TYPES[ctype]} {obj.facts['name']} made DEFERRABLE INITIALLY DEFERRED")


def _narrower_check(definition: str) -> str | None:
    """A CHECK's predicate made to allow more: its last AND-ed condition dropped, or a
    strict comparison with its bound let through (`>` to `>=`, `<` to `<=`)."""
    body = definition.removeprefix("CHECK (").removesuffix(")")
    top = _split_top_level_and(body)
    if len(top) > 1:
        return "CHECK (" + " AND ".join(top[:-1]) + ")"
    relaxed = re.sub(r" ([<>]) ", r" \1= ", body, count=1)
    return None if relaxed == body else f"CHECK ({relaxed})"


def _split_top_level_and(expression: str) -> list[str]:
    inner = expression[1:-1] if expression.startswith("(") and expression.endswith(")") else ""
    if not inner or not _balanced(inner):
        return [expression]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and inner.startswith(" AND ", i):
            parts.append(inner[start:i])
            start = i + 5
    parts.append(inner[start:])
    return parts


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


@kind("constraint", "narrower")
def narrower(obj: RuleObject, conn: Any) -> Made | None:
    """The constraint's predicate narrowed: a CHECK that allows more, an exclusion
    constraint whose ranges conflict only when equal rather than when they overlap."""
    definition = str(obj.facts["definition"])
    if obj.facts["type"] == "c":
        weaker = _narrower_check(definition)
    elif obj.facts["type"] == "x" and " WITH &&" in definition and not obj.facts["referenced"]:
        weaker = definition.replace(" WITH &&", " WITH =")
    else:
        weaker = None
    if weaker is None:
        return None
    return Made(
        f"{_alter(obj)} DROP CONSTRAINT {_constraint(obj)};\n"
        f"{_alter(obj)} ADD CONSTRAINT {_constraint(obj)} {weaker};",
        f"{obj.facts['name']} narrowed to {weaker}",
    )


# -- triggers ------------------------------------------------------------------------------


def _trigger(obj: RuleObject) -> str:
    return rows.ident(str(obj.facts["name"]))


@kind("trigger", "disable")
def disable_trigger(obj: RuleObject, conn: Any) -> Made:
    return Made(
        f"{_alter(obj)} DISABLE TRIGGER {_trigger(obj)};", f"trigger {obj.facts['name']} disabled"
    )


@kind("trigger", "replica")
def replica_trigger(obj: RuleObject, conn: Any) -> Made:
    return Made(
        f"{_alter(obj)} ENABLE REPLICA TRIGGER {_trigger(obj)};",
        f"trigger {obj.facts['name']} set to fire only under session_replication_role = replica",
    )


@kind("trigger", "drop")
def drop_trigger(obj: RuleObject, conn: Any) -> Made:
    return Made(
        f"DROP TRIGGER {_trigger(obj)} ON {obj.facts['qualified_table']};",
        f"trigger {obj.facts['name']} dropped",
    )


_WHEN = re.compile(r" WHEN \((.*)\) EXECUTE (FUNCTION|PROCEDURE) ")


@kind("trigger", "no_when")
def no_when(obj: RuleObject, conn: Any) -> Made | None:
    """Its WHEN clause removed: the trigger fires on every row its events touch."""
    if not obj.facts["has_when"]:
        return None
    definition = _WHEN.sub(r" EXECUTE \2 ", str(obj.facts["definition"]), count=1)
    return Made(
        f"DROP TRIGGER {_trigger(obj)} ON {obj.facts['qualified_table']};\n{definition};",
        f"trigger {obj.facts['name']} without its WHEN clause",
    )


# -- policies ------------------------------------------------------------------------------


def _policy(obj: RuleObject) -> str:
    return f"POLICY {rows.ident(str(obj.facts['name']))} ON {obj.facts['qualified_table']}"


_ONLY_BYPASSING = (
    "the policy is for roles that bypass row level security (service_role): no role's "
    "access is decided by it"
)
_NO_BOUND_PRIVILEGE = (
    "no role row level security binds (anon, authenticated) holds a privilege on the "
    "table, and the roles that do bypass RLS (its owner, service_role): no access changes"
)


@kind("policy", "drop")
def drop_policy(obj: RuleObject, conn: Any) -> Made | Equivalent:
    if not obj.facts["api_privileged"]:
        return Equivalent(_NO_BOUND_PRIVILEGE)
    if obj.facts["only_bypassing_roles"]:
        return Equivalent(_ONLY_BYPASSING)
    return Made(f"DROP {_policy(obj)};", f"policy {obj.facts['name']} dropped")


@kind("policy", "using_true")
def using_true(obj: RuleObject, conn: Any) -> Made | Equivalent | None:
    if not obj.facts["api_privileged"]:
        return Equivalent(_NO_BOUND_PRIVILEGE)
    if obj.facts["only_bypassing_roles"]:
        return Equivalent(_ONLY_BYPASSING)
    if obj.facts["qual"] is None or obj.facts["qual"] == "true":
        return None
    return Made(f"ALTER {_policy(obj)} USING (true);", f"policy {obj.facts['name']}: USING (true)")


@kind("policy", "check_true")
def check_true(obj: RuleObject, conn: Any) -> Made | Equivalent | None:
    if not obj.facts["api_privileged"]:
        return Equivalent(_NO_BOUND_PRIVILEGE)
    if obj.facts["only_bypassing_roles"]:
        return Equivalent(_ONLY_BYPASSING)
    if obj.facts["with_check"] is None or obj.facts["with_check"] == "true":
        return None
    return Made(
        f"ALTER {_policy(obj)} WITH CHECK (true);",
        f"policy {obj.facts['name']}: WITH CHECK (true)",
    )


@kind("policy", "to_public")
def to_public(obj: RuleObject, conn: Any) -> Made | Equivalent | None:
    roles = list(obj.facts["roles"])
    if roles == ["public"]:
        return None
    if not set(obj.facts["privileged_bound_roles"]) - set(roles):
        return Equivalent(
            "every role it would newly cover holds no privilege on the table (anon) or "
            "bypasses row level security (service_role): no access changes"
        )
    return Made(
        f"ALTER {_policy(obj)} TO PUBLIC;",
        f"policy {obj.facts['name']} widened from {', '.join(roles)} to PUBLIC",
    )


# -- functions -----------------------------------------------------------------------------


def _permissive_body(obj: RuleObject) -> str:
    """A body that checks nothing and allows everything its signature lets it say."""
    f = obj.facts
    if f["returns_trigger"]:
        return "BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END"
    if f["routine_kind"] == "p" or f["returns_void"]:
        return "BEGIN END"
    if f["returns_set"]:
        return "BEGIN RETURN; END"
    if f["has_out_arguments"]:
        return "BEGIN RETURN; END"
    if f["returns_boolean"]:
        return "BEGIN RETURN true; END"
    return "BEGIN RETURN NULL; END"


def _attributes(obj: RuleObject) -> str:
    f = obj.facts
    parts = [{"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}[str(f["volatility"])]]
    if f["strict"]:
        parts.append("STRICT")
    if f["security_definer"]:
        parts.append("SECURITY DEFINER")
    for setting in f["config"]:
        name, _, value = str(setting).partition("=")
        parts.append(
            f"SET {name} = {value}" if name == "search_path" else f"SET {name} = '{value}'"
        )
    return " ".join(parts)


@kind("function", "permissive_body")
def permissive_body(obj: RuleObject, conn: Any) -> Made:
    f = obj.facts
    routine = "PROCEDURE" if f["routine_kind"] == "p" else "FUNCTION"
    returns = "" if routine == "PROCEDURE" else f" RETURNS {f['result']}"
    attributes = "" if routine == "PROCEDURE" else " " + _attributes(obj)
    if routine == "PROCEDURE" and f["security_definer"]:
        attributes = " SECURITY DEFINER"
    return Made(
        f"CREATE OR REPLACE {routine} {f['qualified_name']}({f['arguments']}){returns} "
        f"LANGUAGE plpgsql{attributes} AS $mutant$ {_permissive_body(obj)} $mutant$;",
        f"{f['name']}: body replaced by `{_permissive_body(obj)}`",
    )


_UNREACHABLE = (
    "no role row level security binds (anon, authenticated) may run it, by EXECUTE or by "
    "a trigger on a table it may write: it runs only for its owner and service_role, "
    "whose rights it would borrow or whose names it would read are theirs already"
)


@kind("function", "security_flipped")
def security_flipped(obj: RuleObject, conn: Any) -> Made | Equivalent:
    if not obj.facts["api_reachable"]:
        return Equivalent(_UNREACHABLE)
    becomes = "INVOKER" if obj.facts["security_definer"] else "DEFINER"
    return Made(
        f"ALTER ROUTINE {obj.facts['signature']} SECURITY {becomes};",
        f"{obj.facts['name']} made SECURITY {becomes}",
    )


@kind("function", "search_path_reset")
def search_path_reset(obj: RuleObject, conn: Any) -> Made | Equivalent | None:
    if not any(str(s).startswith("search_path=") for s in obj.facts["config"]):
        return None
    if not obj.facts["api_reachable"]:
        return Equivalent(_UNREACHABLE)
    return Made(
        f"ALTER ROUTINE {obj.facts['signature']} RESET search_path;",
        f"{obj.facts['name']}: pinned search_path removed (it runs with the caller's)",
    )


def _grant_execute(obj: RuleObject, grantee: str, holds_it: str) -> Made | None:
    if obj.facts[holds_it]:
        return None
    return Made(
        f"GRANT EXECUTE ON ROUTINE {obj.facts['signature']} TO {grantee};",
        f"EXECUTE on {obj.facts['name']} granted to {grantee}",
    )


@kind("function", "execute_public")
def execute_public(obj: RuleObject, conn: Any) -> Made | None:
    return _grant_execute(obj, "PUBLIC", "public_execute")


@kind("function", "execute_anon")
def execute_anon(obj: RuleObject, conn: Any) -> Made | None:
    return _grant_execute(obj, "anon", "anon_execute")


@kind("function", "owner_changed")
def owner_changed(obj: RuleObject, conn: Any) -> Made:
    return Made(
        f"ALTER ROUTINE {obj.facts['signature']} OWNER TO authenticated;",
        f"{obj.facts['name']} owned by authenticated (any signed-in user may replace it)",
    )


# -- tables and roles ----------------------------------------------------------------------


@kind("table", "rls_disabled")
def rls_disabled(obj: RuleObject, conn: Any) -> Made | Equivalent | None:
    if not obj.facts["rls"]:
        return None
    if not obj.facts["api_privileged"]:
        return Equivalent(_NO_BOUND_PRIVILEGE)
    return Made(
        f"{_alter(obj)} DISABLE ROW LEVEL SECURITY;",
        f"row level security disabled on {obj.facts['name']}",
    )


@kind("table", "grants_widened")
def grants_widened(obj: RuleObject, conn: Any) -> Made | None:
    if not obj.facts["api_roles_lack_some"]:
        return None
    return Made(
        f"GRANT ALL ON TABLE {obj.facts['qualified_table']} TO anon, authenticated;",
        f"ALL privileges on {obj.facts['name']} (TRUNCATE included) granted to anon and "
        "authenticated",
    )


@kind("role", "bypassrls")
def bypassrls(obj: RuleObject, conn: Any) -> Made | None:
    if obj.facts["bypassrls"]:
        return None
    role = rows.ident(str(obj.facts["name"]))
    return Made(
        f"ALTER ROLE {role} BYPASSRLS;",
        f"role {obj.facts['name']} given BYPASSRLS",
        revert=f"ALTER ROLE {role} NOBYPASSRLS;",
    )
