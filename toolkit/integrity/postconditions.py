"""Release postconditions (migrations/postconditions.toml), checked against the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.paths import migrations_dir, read_toml
from toolkit.read_once import read_once
from toolkit.server import connection as db

KINDS = (
    "table",
    "column",
    "constraint",
    "index",
    "trigger",
    "function_version",
    "rls",
    "policy",
    "extension",
    "fk_delete_rule",
    "function_execute",
)

# The roles whose EXECUTE privilege a `function_execute` postcondition states: PUBLIC
# (every role, through the default grant) and the API roles of core_001.
API_ROLES = ("anon", "authenticated", "service_role")


@dataclass(frozen=True)
class Postcondition:
    release: str
    kind: str
    object: str
    expect: str

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.object


@dataclass(frozen=True)
class PostconditionResult:
    check: Postcondition
    ok: bool
    actual: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.check.release,
            "kind": self.check.kind,
            "object": self.check.object,
            "expected": self.check.expect or "exists",
            "actual": self.actual,
            "ok": self.ok,
        }


@read_once
def load_postconditions(path: Path | None = None) -> list[Postcondition]:
    import os

    override = os.environ.get("VENUEDB_POSTCONDITIONS_FILE")
    path = path or (Path(override) if override else migrations_dir() / "postconditions.toml")
    data = read_toml(path, "the postconditions")
    checks = []
    for number, entry in enumerate(data.get("check", []), 1):
        try:
            check = Postcondition(
                entry["release"], entry["kind"], entry["object"], entry.get("expect", "")
            )
        except KeyError as exc:
            raise BadInput(f"{path}: check #{number} has no {exc}") from None
        if check.kind not in KINDS:
            raise BadInput(f"{path}: check #{number} has unknown kind {check.kind!r}")
        checks.append(check)
    return checks


def effective(checks: list[Postcondition], applied_releases: list[str]) -> list[Postcondition]:
    """The checks of the applied releases; for one kind and object the latest release wins."""
    order = {name: i for i, name in enumerate(applied_releases)}
    chosen: dict[tuple[str, str], Postcondition] = {}
    for check in checks:
        if check.release not in order:
            continue
        current = chosen.get(check.key)
        if current is None or order[check.release] >= order[current.release]:
            chosen[check.key] = check
    return list(chosen.values())


def _split(name: str) -> tuple[str, str]:
    schema, _, rest = name.rpartition(".")
    return (schema or "public"), rest


def _part_of_table(conn: Any, sql: str, name: str) -> Any:
    """The row `sql` finds for a column or constraint named TABLE.PART (TABLE in public),
    given the table and the part as its two parameters; None when there is none."""
    table, part = name.split(".", 1)
    return conn.execute(sql, (f"public.{table}", part)).fetchone()


def actual_value(conn: Any, check: Postcondition) -> str | None:
    """What the database has for the check's object (None: it does not exist)."""
    kind, name = check.kind, check.object
    if kind == "table":
        schema, table = _split(name)
        return "" if db.table_exists(conn, f"{schema}.{table}") else None
    if kind == "column":
        row = _part_of_table(
            conn,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "to_regclass(%s) AND attname = %s AND NOT attisdropped",
            name,
        )
        return "" if row else None
    if kind == "constraint":
        row = _part_of_table(
            conn,
            "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid = to_regclass(%s) AND conname = %s",
            name,
        )
        if row is None:
            return None
        return row[0] if row[1] else f"{row[0]} (NOT VALID: never validated)"
    if kind == "index":
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace",
            (name,),
        ).fetchone()
        if row is None:
            return None
        return "" if row[0] else "INVALID (a concurrent build did not finish)"
    if kind == "trigger":
        table, trigger = name.split(".", 1)
        row = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
            (f"public.{table}", trigger),
        ).fetchone()
        if row is None:
            return None
        return "" if row[0] != "D" else "DISABLED"
    if kind == "function_version":
        schema, function = _split(name)
        rows = conn.execute(
            "SELECT coalesce(obj_description(p.oid, 'pg_proc'), '') FROM pg_proc p "
            "WHERE p.proname = %s AND p.pronamespace = to_regnamespace(%s)",
            (function, schema),
        ).fetchall()
        if not rows:
            return None
        if not check.expect or check.expect == "absent":
            return ""
        versions = {r[0].removeprefix("venuedb:version=") for r in rows}
        return ",".join(sorted(versions))
    if kind == "rls":
        row = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(%s)", (f"public.{name}",)
        ).fetchone()
        return None if row is None else str(bool(row[0])).lower()
    if kind == "policy":
        table, policy = name.split(".", 1)
        row = conn.execute(
            "SELECT cmd FROM pg_policies WHERE schemaname = 'public' AND "
            "tablename = %s AND policyname = %s",
            (table, policy),
        ).fetchone()
        return "" if row else None
    if kind == "extension":
        row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (name,)).fetchone()
        return "" if row else None
    if kind == "function_execute":
        return _function_execute(conn, name)
    row = conn.execute(  # fk_delete_rule
        "SELECT delete_rule FROM information_schema.referential_constraints "
        "WHERE constraint_schema = 'public' AND constraint_name = %s",
        (name,),
    ).fetchone()
    return None if row is None else row[0]


def _function_execute(conn: Any, name: str) -> str | None:
    """Who may execute every overload of the function: 'PUBLIC', else the API roles
    that may (comma-separated, sorted), else 'none'. None when no such function exists."""
    schema, function = _split(name)
    rows = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
        "WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), "
        "ARRAY(SELECT r FROM unnest(%s::text[]) r WHERE has_function_privilege(r, p.oid, 'EXECUTE') "
        "ORDER BY r) FROM pg_proc p WHERE p.proname = %s AND p.pronamespace = to_regnamespace(%s)",
        (list(API_ROLES), function, schema),
    ).fetchall()
    if not rows:
        return None
    if any(public for public, _ in rows):
        return "PUBLIC"
    grantees = sorted({role for _, roles in rows for role in roles})
    return ",".join(grantees) or "none"


def _unhealthy(actual: str) -> bool:
    return actual.startswith(("INVALID", "DISABLED")) or "(NOT VALID" in actual


def evaluate(conn: Any, checks: list[Postcondition]) -> list[PostconditionResult]:
    results = []
    for check in checks:
        actual = actual_value(conn, check)
        if check.expect == "absent":
            ok = actual is None
        elif check.expect == "":
            ok = actual is not None and not _unhealthy(actual)
        else:
            ok = actual == check.expect
        results.append(
            PostconditionResult(check, ok, "absent" if actual is None else (actual or "exists"))
        )
    return results
