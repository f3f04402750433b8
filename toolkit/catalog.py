"""The schema objects of a database as (kind, name) -> definition, for `apply --rehearse`'s
change report (objects added, removed, changed).

One catalog query serves both this and drift detection: it is toolkit.snapshot's, so a
rehearsal reports every kind verify compares (privileges, trigger modes, rule rows...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolkit import snapshot as catalog_snapshot

# Kept for callers; the snapshot itself covers every non-system schema (see toolkit.snapshot).
APP_SCHEMAS = catalog_snapshot.SCHEMAS


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
    """(kind, name) -> definition. Accepts a psycopg connection or a SQLAlchemy connection.

    `schemas` is accepted for compatibility and ignored: every schema is covered."""
    return {
        (kind, name): definition
        for kind, objects in catalog_snapshot.take(cursor_owner).items()
        for name, definition in objects.items()
    }


def diff(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[Change]:
    changes = [Change("added", k, n) for (k, n) in after.keys() - before.keys()]
    changes += [Change("removed", k, n) for (k, n) in before.keys() - after.keys()]
    changes += [
        Change("changed", k, n)
        for (k, n) in before.keys() & after.keys()
        if before[(k, n)] != after[(k, n)]
    ]
    order = {kind: i for i, kind in enumerate(catalog_snapshot.KINDS)}
    return sorted(changes, key=lambda c: (order.get(c.kind, len(order)), c.name, c.action))
