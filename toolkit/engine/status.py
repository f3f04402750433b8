"""`venuedb status` and `venuedb history`: where each branch is, what is pending, what ran last."""

from __future__ import annotations

from typing import Any

from toolkit.deployments import store as records
from toolkit.engine import interrupted_swaps
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import current_heads
from toolkit.runbook import levels
from toolkit.server import connection as db
from toolkit.server import standby


def status(target: db.Target) -> dict[str, Any]:
    with db.connect(target, purpose="status") as conn:
        heads = current_heads(conn)
        # A read-only session (a hot standby) reads the records as they are: reap writes.
        read_only = standby.read_only(conn)
        records.reap(conn)  # so "last deployment" never shows a dead run as running
        last = records.last_deployment(conn)
        server_version = db.scalar(conn, "SHOW server_version")
        in_progress = [s.to_dict() | {"what": s.describe()} for s in interrupted_swaps.find(conn)]
        at_level = {a.release: a for a in levels.recorded(conn)}
        in_progress += [
            a.to_dict() | {"what": a.describe()} for a in at_level.values() if a.state != "applied"
        ]
    applied = revs.applied_revisions(heads)
    pending = [s.to_dict() for s in revs.all_steps() if s.revision not in applied]
    return {
        "server_version": server_version,
        "branches": revs.heads_by_branch(heads),
        "pending": pending,
        # A release at rollback level 2 is applied, minus the piece the level removed.
        "releases": [
            r | {"level": at_level[r["release"]].to_dict() if r["release"] in at_level else None}
            for r in revs.releases_applied(heads)
        ],
        "last_deployment": last,
        "in_progress": in_progress,
        "read_only": read_only.to_dict() if read_only else None,
        "read_only_note": records.unmarked_runs_note(read_only) if read_only else None,
    }


def history(target: db.Target | None) -> list[dict[str, Any]]:
    """Every revision in apply order, marked applied or not when a database is known."""
    applied: set[str] | None = None
    checksums: dict[str, str] = {}
    if target is not None:
        with db.connect(target, purpose="history") as conn:
            applied = revs.applied_revisions(current_heads(conn))
            if records.schema_exists(conn):
                rows = conn.execute(
                    "SELECT revision, applied_at::text FROM venuedb.revision_checksums"
                ).fetchall()
                checksums = {r[0]: r[1] for r in rows}
    out = []
    for step in revs.all_steps():
        entry = step.to_dict()
        if applied is not None:
            entry["applied"] = step.revision in applied
            entry["applied_at"] = checksums.get(step.revision)
        out.append(entry)
    return out
