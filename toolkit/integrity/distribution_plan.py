"""migrations/distribution.toml read: which table is distributed by which tenant key,
which are reference or local tables and why, and the named exceptions.

The file's own comment says what each section means; toolkit/integrity/distribution_rules.py
holds the catalog to it. A malformed file is bad input (exit 2), never a silent default:
a table named twice, a reference, local table or exception without a reason, an unknown key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.paths import migrations_dir, read_toml

DISTRIBUTED = "distributed"
ROOT = "root"
REFERENCE = "reference"
LOCAL = "local"


@dataclass(frozen=True)
class Placement:
    """Where one table lives on Citus."""

    kind: str  # root | distributed | reference | local
    branch: str = ""  # the co-location group (root and distributed only)
    key: str = ""  # the distribution column (root and distributed only)
    reason: str = ""  # why (reference and local only)


@dataclass(frozen=True)
class AcceptedFinding:
    """One finding the file accepts at the heads: `object` of `table`, and why."""

    table: str
    object: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"table": self.table, "object": self.object, "reason": self.reason}


@dataclass
class Classification:
    tables: dict[str, Placement] = field(default_factory=dict)
    local_schemas: dict[str, str] = field(default_factory=dict)  # schema -> reason
    exceptions: list[AcceptedFinding] = field(default_factory=list)

    def placement(self, table: str) -> Placement | None:
        return self.tables.get(table)

    def with_reasons(self, kind: str) -> list[dict[str, str]]:
        """The reference or local tables, each with its reason, for the report."""
        return [
            {"table": name, "reason": p.reason}
            for name, p in sorted(self.tables.items())
            if p.kind == kind
        ]

    def to_dict(self) -> dict[str, Any]:
        groups: dict[str, dict[str, Any]] = {}
        for name, p in sorted(self.tables.items()):
            if p.kind == ROOT:
                groups.setdefault(p.branch, {"tables": []})["root"] = f"{name} ({p.key})"
            elif p.kind == DISTRIBUTED:
                group = groups.setdefault(p.branch, {"tables": []})
                group["tenant_key"] = p.key
                group["tables"].append(name)
        return {
            "co_location_groups": groups,
            "reference": self.with_reasons(REFERENCE),
            "local": self.with_reasons(LOCAL),
            "local_schemas": [
                {"schema": s, "reason": r} for s, r in sorted(self.local_schemas.items())
            ],
            "exceptions": [e.to_dict() for e in self.exceptions],
        }


def distribution_file() -> Path:
    return migrations_dir() / "distribution.toml"


def load(path: Path | None = None) -> Classification:
    path = path or distribution_file()
    return parse(read_toml(path, "the distribution classification"), str(path))


def parse(data: dict[str, Any], where: str = "distribution.toml") -> Classification:
    """The classification in `data` (the TOML document), or BadInput saying what is wrong."""
    _only(data, {"branches", "reference", "local", "local_schema", "exception"}, where)
    found = Classification()

    def place(table: Any, placement: Placement) -> None:
        if not isinstance(table, str) or "." not in table:
            raise BadInput(f"{where}: {table!r} is not a schema-qualified table name")
        if table in found.tables:
            raise BadInput(f"{where}: {table} is classified twice")
        found.tables[table] = placement

    for branch, group in _table(data, "branches", where).items():
        _only(group, {"tenant_key", "root", "root_key", "distributed"}, f"{where} [{branch}]")
        key = _text(group, "tenant_key", f"{where} [branches.{branch}]")
        if "root" in group:  # a group may have no root: its tenants' table is a reference one
            place(group["root"], Placement(ROOT, branch, _text(group, "root_key", where)))
        for table in group.get("distributed", []):
            place(table, Placement(DISTRIBUTED, branch, key))
    for kind in (REFERENCE, LOCAL):
        for entry in _entries(data, kind, where):
            _only(entry, {"table", "reason"}, f"{where} [[{kind}]]")
            place(entry.get("table"), Placement(kind, reason=_reason(entry, kind, where)))
    for entry in _entries(data, "local_schema", where):
        _only(entry, {"schema", "reason"}, f"{where} [[local_schema]]")
        schema = _text(entry, "schema", f"{where} [[local_schema]]")
        found.local_schemas[schema] = _reason(entry, "local_schema", where)
    for entry in _entries(data, "exception", where):
        _only(entry, {"table", "object", "reason"}, f"{where} [[exception]]")
        found.exceptions.append(
            AcceptedFinding(
                _text(entry, "table", f"{where} [[exception]]"),
                _text(entry, "object", f"{where} [[exception]]"),
                _reason(entry, "exception", where),
            )
        )
    return found


def _only(entry: Any, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: expected a table of keys, found {entry!r}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(allowed)}")


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    _only(value, set(value) if isinstance(value, dict) else set(), where)
    return dict(value)


def _entries(data: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise BadInput(f"{where}: [[{name}]] must be an array of tables")
    return value


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{where}: `{key}` is missing or empty")
    return value.strip()


def _reason(entry: dict[str, Any], kind: str, where: str) -> str:
    """Every reference, local table and exception says why: the report prints it."""
    return _text(entry, "reason", f"{where} [[{kind}]] {entry.get('table') or entry.get('schema')}")
