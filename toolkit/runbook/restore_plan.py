"""`venuedb restore FILE --plan`: what the dump holds (its table of contents, read by
pg_restore --list) and whether the target would accept it. Reads only."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.runbook.backup import is_empty
from toolkit.server import connection as db
from toolkit.server.embedded import binary
from toolkit.server.urls import mask_text

# Entry types of more than one word in pg_restore --list (the rest are one word).
_LONG_TYPES = (
    "TABLE DATA",
    "FK CONSTRAINT",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "DEFAULT ACL",
    "ROW SECURITY",
    "EVENT TRIGGER",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "SHELL TYPE",
)


def contents(path: Path) -> list[str]:
    """The dump's table of contents, one entry a line (comments left out)."""
    if not path.is_file():
        raise BadInput(f"no backup file at {path}")
    result = subprocess.run(
        [str(binary("pg_restore")), "--list", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        first = (result.stderr or result.stdout).strip().splitlines()[:1]
        raise BadInput(
            f"{path} is not a readable pg_dump custom-format file: {mask_text(' '.join(first))}"
        )
    return [line for line in result.stdout.splitlines() if line and not line.startswith(";")]


def entry_type(line: str) -> str:
    """`215; 1259 16390 TABLE public bars postgres` -> TABLE."""
    words = line.split(";", 1)[-1].split()[2:]  # after the entry's two catalog ids
    text = " ".join(words)
    for long in _LONG_TYPES:
        if text.startswith(long + " ") or text == long:
            return long
    return words[0] if words else "?"


def plan_restore(path: Path, target: db.Target, *, force: bool) -> dict[str, Any]:
    entries = contents(path)
    by_type = Counter(entry_type(line) for line in entries)
    empty = is_empty(target)
    would_refuse = []
    if not empty and not force:
        would_refuse.append(
            f"{target.masked} is not empty; restore only into an empty database, or pass "
            "--force to replace what is there"
        )
    return {
        "path": str(path),
        "size_bytes": os.path.getsize(path),
        "objects": len(entries),
        "by_type": dict(sorted(by_type.items())),
        "target": target.masked,
        "target_empty": empty,
        "force": force,
        "would_drop_first": bool(force and not empty),
        "would_refuse": would_refuse,
    }
