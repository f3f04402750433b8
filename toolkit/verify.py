"""`venuedb verify`: postconditions of applied releases, drift of the live schema from the
committed snapshot, and tampering (revision files changed after they were applied, a
released sql/functions file edited, revisions applied out of order)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import connection as db
from toolkit import interrupted_swaps, postconditions, records, snapshot
from toolkit import revisions as revs
from toolkit.errors import BadInput
from toolkit.migrate import current_heads
from toolkit.releases import find_release, load_releases


@dataclass
class Report:
    postconditions: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    tamper: list[dict[str, Any]] = field(default_factory=list)
    in_progress: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (
            not self.drift
            and not self.tamper
            and not self.in_progress
            and all(p["ok"] for p in self.postconditions)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "postconditions": self.postconditions,
            "drift": self.drift,
            "tamper": self.tamper,
            "in_progress": self.in_progress,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }


def verify(target: db.Target, release: str | None = None) -> Report:
    import time

    started = time.monotonic()
    if release is not None and find_release(release) is None:
        known = ", ".join(r.name for r in load_releases())
        raise BadInput(f"unknown release {release!r} (known: {known})")
    report = Report()
    with db.connect(target, purpose="verify") as conn:
        heads = current_heads(conn)
        applied = [r for r in revs.releases_applied(heads) if r["state"] == "applied"]
        names = [r["release"] for r in applied]
        if release is not None and release not in names:
            report.notes.append(f"release {release} is not (fully) applied: nothing to verify")
        checks = postconditions.effective(postconditions.load_checks(), names)
        if release is not None:
            checks = [c for c in checks if c.release == release]
        report.postconditions = [r.to_dict() for r in postconditions.evaluate(conn, checks)]
        _tamper(conn, heads, release, report)
        report.in_progress = [
            s.to_dict() | {"what": s.describe()} for s in interrupted_swaps.find(conn)
        ]
        if release is None:
            _drift(conn, heads, report)
        else:
            report.notes.append("drift is compared for the whole schema only (without --release)")
    report.seconds = time.monotonic() - started
    return report


def _drift(conn: Any, heads: tuple[str, ...], report: Report) -> None:
    path = snapshot.snapshot_file()
    if not path.exists():
        report.notes.append(f"no snapshot at {path}: run `venuedb snapshot`")
        return
    reference = snapshot.load(path)
    live_heads = sorted(h for h in revs.heads_by_branch(heads).values() if h)
    if sorted(reference["heads"]) != live_heads:
        report.notes.append(
            "drift not compared: the database is not at the heads the snapshot "
            f"describes ({', '.join(reference['heads'])}); run `venuedb apply`"
        )
        return
    report.drift = [d.to_dict() for d in snapshot.diff(reference["objects"], snapshot.take(conn))]


def _tamper(conn: Any, heads: tuple[str, ...], release: str | None, report: Report) -> None:
    scope = set(find_release(release).revisions) if release else None  # type: ignore[union-attr]
    if records.schema_exists(conn):
        rows = conn.execute(
            "SELECT revision, path, sha256, applied_at FROM venuedb.revision_checksums"
        ).fetchall()
        recorded = {r[0]: (r[1], r[2], r[3]) for r in rows}
    else:
        recorded = {}
        report.notes.append("no checksums recorded (revisions applied without the toolkit)")
    steps = {s.revision: s for s in revs.all_steps()}
    for revision, (path, sha, _) in recorded.items():
        if scope is not None and revision not in scope:
            continue
        step = steps.get(revision)
        current = Path(step.path) if step else Path(path)
        if not current.exists():
            report.tamper.append(
                {"kind": "revision_file_missing", "name": revision, "expected": sha, "actual": None}
            )
            continue
        now = hashlib.sha256(current.read_bytes()).hexdigest()
        if now != sha:
            report.tamper.append(
                {
                    "kind": "revision_file_changed",
                    "name": revision,
                    "expected": sha,
                    "actual": now,
                    "detail": f"{current.name} changed after it was applied",
                }
            )
    _out_of_order(recorded, steps, scope, report)
    if release is None and snapshot.snapshot_file().exists():
        released = snapshot.load().get("function_files", {})
        present = snapshot.function_file_hashes()
        for name, sha in released.items():
            if present.get(name) != sha:
                report.tamper.append(
                    {
                        "kind": "function_file_edited"
                        if name in present
                        else "function_file_removed",
                        "name": name,
                        "expected": sha,
                        "actual": present.get(name),
                        "detail": "released function files are immutable: add a new version file",
                    }
                )


def _out_of_order(
    recorded: dict[str, Any], steps: dict[str, Any], scope: set[str] | None, report: Report
) -> None:
    """Along each branch, a revision must not have been applied before its predecessor."""
    script = revs.script_directory()
    for revision, (_, _, applied_at) in recorded.items():
        if scope is not None and revision not in scope:
            continue
        rev = script.get_revision(revision) if revision in steps else None
        down = rev.down_revision if rev is not None else None
        if isinstance(down, str) and down in recorded and recorded[down][2] > applied_at:
            report.tamper.append(
                {
                    "kind": "applied_out_of_order",
                    "name": revision,
                    "expected": f"after {down}",
                    "actual": str(applied_at),
                    "detail": f"{revision} was applied before {down}",
                }
            )
