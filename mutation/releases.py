"""Which release created (or last changed) each object: the database migrated one release
at a time, its catalog snapshot taken after each (toolkit/integrity/catalog.py), every
object added or changed by a release credited to it."""

from __future__ import annotations

import psycopg

from toolkit.engine.migrate import RunOptions, run
from toolkit.engine.releases import load_releases
from toolkit.integrity import catalog
from toolkit.server.connection import Target


def attribute(empty_url: str) -> dict[str, str]:
    """`"<kind> <key>"` -> release name, for the database at `empty_url` (migrated here)."""
    credited: dict[str, str] = {}
    before: dict[str, dict[str, str]] = {}
    for release in load_releases():
        run(Target(empty_url, "mutation"), "upgrade", release.name, RunOptions(actor="mutation"))
        with psycopg.connect(empty_url) as conn:
            after = catalog.take(conn)
        for change in catalog.changes(before, after):
            if change.action != "removed":
                credited[f"{change.kind} {change.name}"] = release.name
        before = after
    return credited


def branches() -> dict[str, str]:
    """Release name -> its branch (core, booking, bar): the domain of its tests."""
    return {r.name: r.branch for r in load_releases()}
