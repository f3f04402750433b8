"""`venuedb verify`: postconditions of applied releases, drift of the live schema from what
its migrations build, and tampering (revision files changed after they were applied, a
released sql/functions file edited, revisions applied out of order).

Drift is compared at whatever revision the database is at: at the heads against the
committed snapshot (fast), elsewhere against a scratch database migrated to exactly the
live revisions. When no reference can be had, drift is `not_compared` and so is the
verdict: verify never says clean about what it did not compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.engine import checksums, interrupted_swaps
from toolkit.engine import revisions as revs
from toolkit.engine.migrate import current_heads
from toolkit.engine.releases import find_release, unknown_release
from toolkit.integrity import catalog as snapshot
from toolkit.integrity import postconditions
from toolkit.runbook import levels
from toolkit.server import connection as db
from toolkit.server import standby

# Verdicts, most serious first (all exit 3 but not_compared, 5, and clean, 0).
EXIT_CODES = {
    "tampered": 3,
    "in_progress": 3,
    "drift": 3,
    "postconditions_failed": 3,
    "not_compared": 5,
    "clean": 0,
}

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    pass


@dataclass
class Report:
    postconditions: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    tamper: list[dict[str, Any]] = field(default_factory=list)
    in_progress: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # compared | not_compared | not_asked (--release: postconditions and files only)
    drift_status: str = "compared"
    drift_reference: str = ""  # what the live schema was compared with
    not_compared: list[str] = field(default_factory=list)  # why something went unchecked
    levels: list[dict[str, Any]] = field(default_factory=list)  # releases at level 2
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.tamper:
            return "tampered"
        if self.in_progress:
            return "in_progress"
        if self.drift:
            return "drift"
        if not all(p["ok"] for p in self.postconditions):
            return "postconditions_failed"
        if self.not_compared:
            return "not_compared"
        return "clean"

    @property
    def clean(self) -> bool:
        return self.status == "clean"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "verdict": self.status,
            "postconditions": self.postconditions,
            "drift_status": self.drift_status,
            "drift_reference": self.drift_reference,
            "drift": self.drift,
            "tamper": self.tamper,
            "in_progress": self.in_progress,
            "not_compared": self.not_compared,
            "levels": self.levels,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }


def verify(
    target: db.Target,
    release: str | None = None,
    *,
    scratch_url: str | None = None,
    progress: Progress = _silent,
) -> Report:
    """Verify `target`. `scratch_url`: a server where the scratch reference database may be
    created when the target's own server refuses (default: the target's server)."""
    import time

    started = time.monotonic()
    if release is not None and find_release(release) is None:
        raise unknown_release(release)
    report = Report()
    with db.connect(target, purpose="verify") as conn:
        read_only = standby.read_only(conn)
        if read_only is not None and read_only.in_recovery:
            report.notes.append(_replayed_up_to(conn))
        heads = current_heads(conn)
        known_heads = tuple(h for h in heads if _known(h))
        unknown = [h for h in heads if h not in known_heads]
        if unknown:
            report.not_compared.append(
                f"alembic_version holds {', '.join(unknown)}, which this checkout does not "
                "know (a newer checkout deployed it, or the row was edited): nothing at that "
                "revision can be checked; verify with the checkout that deployed it"
            )
        applied = [r for r in revs.releases_applied(known_heads) if r["state"] == "applied"]
        names = [r["release"] for r in applied]
        if release is not None and release not in names:
            report.not_compared.append(
                f"release {release} is not (fully) applied: none of its postconditions checked"
            )
        checks = postconditions.effective(postconditions.load_postconditions(), names)
        # A release at level 2 is held to the level's postconditions, not its own.
        recorded = levels.recorded(conn)
        at_level = [a for a in recorded if a.state == levels.APPLIED]
        checks = levels.with_levels(checks, at_level)
        report.levels = [a.to_dict() for a in at_level]
        for state in at_level:
            report.notes.append(
                f"{state.describe()}: compared as such (`venuedb rollout {state.release}` "
                "restores it)"
            )
        if release is not None:
            checks = [c for c in checks if c.release.split(" level ")[0] == release]
        report.postconditions = [r.to_dict() for r in postconditions.evaluate(conn, checks)]
        _tamper(conn, heads, release, report)
        report.tamper += levels.changed_steps(at_level)
        report.in_progress = [
            s.to_dict() | {"what": s.describe()} for s in interrupted_swaps.find(conn)
        ] + [a.to_dict() | {"what": a.describe()} for a in recorded if a not in at_level]
        if release is None:
            scratch = _scratch_server(target, scratch_url, read_only)
            _drift(conn, heads, unknown, report, scratch, progress, at_level)
        else:
            report.drift_status = "not_asked"
            report.notes.append("drift is compared for the whole schema only (without --release)")
    report.seconds = time.monotonic() - started
    return report


def _replayed_up_to(conn: Any) -> str:
    """A standby verifies what it has replayed: say up to when."""
    replayed = db.scalar(conn, "SELECT pg_last_xact_replay_timestamp()")
    return "verified on a hot standby: the schema and records as replayed from the primary" + (
        f", up to its transaction of {replayed.isoformat()}" if replayed else ""
    )


@dataclass(frozen=True)
class ScratchRefused:
    """No scratch server: why (the target cannot create one, and none was given)."""

    reason: str


def _scratch_server(
    target: db.Target, scratch_url: str | None, read_only: standby.ReadOnly | None
) -> str | ScratchRefused:
    """Where a scratch reference database may be built: --scratch-url, else beside the
    target, unless the target's session cannot write (a hot standby: CREATE DATABASE is
    refused there, and verify never writes to its primary unasked)."""
    if scratch_url is not None:
        return scratch_url
    if read_only is not None:
        return ScratchRefused(f"{target.masked} is {read_only.describe()}")
    return target.url


def _known(revision: str) -> bool:
    try:
        return revs.script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises several flavours for an unknown or ambiguous id
        return False


# Relations and functions outside PostgreSQL's and the toolkit's schemas that no
# extension owns: what a database "holds" when asking whether it is empty.
_PROJECT_OBJECTS_SQL = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'venuedb')
          AND n.nspname !~ '^pg_(toast|temp_)'
          AND NOT (n.nspname = 'public' AND c.relname = 'alembic_version')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')),
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'venuedb')
          AND n.nspname !~ '^pg_(toast|temp_)'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))
"""


def _drift(
    conn: Any,
    heads: tuple[str, ...],
    unknown: list[str],
    report: Report,
    scratch_server: str | ScratchRefused,
    progress: Progress,
    at_level: list[levels.AppliedLevel],
) -> None:
    if unknown:
        report.drift_status = "not_compared"
        report.not_compared.append(
            f"drift not compared: no reference for the unknown revision {', '.join(unknown)}"
        )
        return
    if not heads:
        _never_stamped(conn, report)
        return
    live_heads = sorted(h for h in revs.heads_by_branch(heads).values() if h)
    live = snapshot.take(conn)
    path = snapshot.snapshot_file()
    committed = snapshot.load(path) if path.exists() else None
    where = ", ".join(live_heads) + "".join(f" + {a.release} level {a.level}" for a in at_level)
    if committed is not None and sorted(committed["heads"]) == live_heads and not at_level:
        reference = committed["objects"]
        report.drift_reference = f"{path.name} (the heads: {', '.join(live_heads)})"
    elif isinstance(scratch_server, ScratchRefused):
        _not_compared_without_scratch(
            report, where, f"{scratch_server.reason}: no scratch database can be created there"
        )
        return
    else:
        from urllib.parse import urlsplit

        server = urlsplit(scratch_server)
        progress(
            f"the database is at {where}, not at the heads the committed snapshot "
            f"describes: building the expected schema in a scratch database on "
            f"{server.hostname}:{server.port or 5432} (a few seconds)"
        )
        from toolkit.runbook.level_run import replay

        try:
            reference, _ = snapshot.build(
                scratch_server,
                targets=list(heads),
                after=(lambda url: replay(url, at_level)) if at_level else None,
            )
        except snapshot.ScratchUnavailable as exc:
            _not_compared_without_scratch(report, where, str(exc))
            return
        report.drift_reference = f"a scratch database migrated to {where}"
        # A scratch database on the same server sees the very same (cluster-wide)
        # roles: the committed snapshot is their reference at every revision.
        report.not_compared += snapshot.hold_cluster_kinds_to_snapshot(
            reference, live, committed, path
        )
    found = snapshot.diff(reference, live)
    if report.drift_reference.startswith("a scratch database"):
        found = _rollback_leftovers(found, committed, report)
    for d in found:
        if d.kind == "rule_data" and d.actual == snapshot.UNREADABLE:
            report.not_compared.append(
                f"rows of {d.name} not compared: the verifying role may not read them all "
                "(it needs SELECT, and no row level security filtering it)"
            )
    report.drift = [
        d.to_dict()
        for d in found
        if not (d.kind == "rule_data" and d.actual == snapshot.UNREADABLE)
    ]
    if report.not_compared:
        report.drift_status = "not_compared"


def _not_compared_without_scratch(report: Report, where: str, why: str) -> None:
    report.drift_status = "not_compared"
    report.not_compared.append(
        f"drift not compared: no reference schema at {where}: {why}; "
        "pass --scratch-url URL (a server where a scratch database may be created), "
        "or verify at the heads (`venuedb apply`, `venuedb rollout RELEASE` for a "
        "release at a rollback level)"
    )


def _rollback_leftovers(
    found: list[snapshot.Drift], committed: dict[str, Any] | None, report: Report
) -> list[snapshot.Drift]:
    """Rollbacks keep the extensions a later revision installs (other objects may use
    them): below the heads, such an extension is a note, not drift. Any other extension
    still is."""
    ours = set((committed or {}).get("objects", {}).get("extension", {}))
    kept = []
    for d in found:
        if d.kind == "extension" and d.status == "unexpected" and d.name in ours:
            report.notes.append(
                f"extension {d.name} is installed though no applied revision needs it yet "
                "(a rollback keeps the extensions later revisions install)"
            )
        else:
            kept.append(d)
    return kept


def _never_stamped(conn: Any, report: Report) -> None:
    """No alembic_version rows (never migrated, or rolled back to base): no revision says
    what the schema should be. Objects there anyway were made without the migrations."""
    tables, functions = conn.execute(_PROJECT_OBJECTS_SQL).fetchone()
    if tables or functions:
        report.drift.append(
            {
                "kind": "revision",
                "name": "public.alembic_version",
                "status": "missing",
                "expected": "the revisions that built the schema",
                "actual": f"no revision recorded, yet {tables} tables and {functions} "
                "functions outside PostgreSQL's schemas: built or changed by hand",
            }
        )
        return
    report.drift_status = "not_compared"
    report.not_compared.append(
        "drift not compared: no revision is applied (alembic_version is absent or empty) "
        "and the database holds none of the project's objects, so there is nothing to "
        "compare; run `venuedb apply`"
    )


def _tamper(conn: Any, heads: tuple[str, ...], release: str | None, report: Report) -> None:
    """Files against their records and the released-files manifest, and the toolkit's own
    bookkeeping against alembic_version (toolkit/engine/checksums.py)."""
    scope = None
    if release:
        found = find_release(release)
        assert found is not None  # verify() refused an unknown release before connecting
        scope = set(found.revisions)
    rows = checksums.tamper(conn, heads, scope, report.tamper, report.notes)
    recorded = {r: (rec.path, rec.sha256, rec.applied_at) for r, rec in rows.items()}
    steps = {s.revision: s for s in revs.all_steps()}
    _out_of_order(recorded, steps, scope, report)


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
