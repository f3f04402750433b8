"""Rollback levels: on-call's ladder per release, declared in migrations/rollback_levels.toml.

Level 1 turns a release's features off (flags), level 2 removes one piece surgically with
forward steps (migrations/levels/<steps>.py) and leaves every release applied, level 3 is
the full revert (level 1, then the release's schema downgrade). This module reads the
declarations, loads the level-2 step modules, and keeps the state of level 2 in
venuedb.release_levels: a database at "release X, level 2 applied" is a state `verify`
knows (its postconditions and its reference schema), not drift.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from toolkit.errors import BadInput
from toolkit.paths import migrations_dir, read_toml
from toolkit.server.connection import table_exists

KINDS = {1: "flags", 2: "surgical", 3: "downgrade"}


@dataclass(frozen=True)
class Level:
    release: str
    level: int
    seed: str
    changes: str
    duration: str
    data_loss: bool
    flags: tuple[str, ...] = ()
    steps: str | None = None

    @property
    def kind(self) -> str:
        return KINDS[self.level]

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "level": self.level,
            "kind": self.kind,
            "seed": self.seed,
            "changes": self.changes,
            "duration": self.duration,
            "data_loss": self.data_loss,
            "flags": list(self.flags),
            "steps": f"migrations/levels/{self.steps}.py" if self.steps else None,
        }


def levels_file() -> Path:
    return migrations_dir() / "rollback_levels.toml"


def steps_dir() -> Path:
    return migrations_dir() / "levels"


def load_levels(path: Path | None = None) -> list[Level]:
    """Every declared level, validated against the releases, flags and step modules."""
    from toolkit.engine.releases import load_releases
    from toolkit.venue.flags import flag_named

    path = path or levels_file()
    data = read_toml(path, "the rollback levels")
    releases = {r.name for r in load_releases()}
    levels: list[Level] = []
    for entry in data.get("level", []):
        try:
            level = Level(
                release=entry["release"],
                level=int(entry["level"]),
                seed=entry["seed"],
                changes=entry["changes"],
                duration=entry["duration"],
                data_loss=bool(entry["data_loss"]),
                flags=tuple(entry.get("flags", ())),
                steps=entry.get("steps"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"malformed level entry in {path}: {exc}") from None
        where = f"{path.name}: {level.release} level {level.level}"
        problems = []
        if level.release not in releases:
            problems.append(f"unknown release {level.release!r}")
        if level.level not in KINDS:
            problems.append("a level is 1, 2 or 3")
        if level.level == 1 and not level.flags:
            problems.append("level 1 names the flags it turns off")
        problems += [f"unknown flag {f}" for f in level.flags if flag_named(f) is None]
        if level.level == 2 and not (level.steps and (steps_dir() / f"{level.steps}.py").is_file()):
            problems.append(f"level 2 needs its steps in {steps_dir()}/<steps>.py")
        if any(o.release == level.release and o.level == level.level for o in levels):
            problems.append("declared twice")
        if problems:
            raise BadInput(f"{where}: {'; '.join(problems)}")
        levels.append(level)
    return levels


def levels_of(release: str) -> list[Level]:
    return [lv for lv in load_levels() if lv.release == release]


def find_level(release: str, number: int) -> Level:
    """The declared level, or BadInput naming what the release does declare."""
    from toolkit.engine.releases import find_release, unknown_release

    if find_release(release) is None:
        raise BadInput(f"--level needs a release name: {unknown_release(release)}")
    if number not in KINDS:
        raise BadInput(f"--level is 1, 2 or 3, got {number}")
    declared = levels_of(release)
    for level in declared:
        if level.level == number:
            return level
    if not declared:
        raise BadInput(
            f"release {release} declares no rollback levels ({levels_file().name}); its "
            f"seed defines none. `venuedb rollback {release}` without --level is its schema "
            "downgrade"
        )
    have = ", ".join(f"{lv.level} ({lv.kind})" for lv in declared)
    raise BadInput(
        f"release {release} declares no level {number} (its seed defines none); it declares "
        f"level {have}"
    )


@cache
def steps_module(name: str) -> ModuleType:
    """migrations/levels/<name>.py: STEPS, describe(conn), apply(details), restore(details),
    postconditions(details)."""
    path = steps_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"venuedb_levels_{name}", path)
    if spec is None or spec.loader is None:
        raise BadInput(f"cannot load the level steps {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the state of level 2 in the database ----------------------------------------------


# A level's row says `applying` / `restoring` from before its first step until its last
# step commits (with the row's final state, in the same transaction): a run that died in
# between leaves that word behind, so verify and status say "interrupted", never "applied"
# or nothing.
APPLIED, APPLYING, RESTORING = "applied", "applying", "restoring"


@dataclass(frozen=True)
class AppliedLevel:
    release: str
    level: int
    details: dict[str, Any]
    applied_at: str
    deployment_id: int | None
    actor: str
    state: str = APPLIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "level": self.level,
            "state": self.state,
            "details": self.details,
            "applied_at": self.applied_at,
            "deployment_id": self.deployment_id,
            "actor": self.actor,
        }

    def describe(self) -> str:
        if self.state != APPLIED:
            return (
                f"release {self.release}, level {self.level}: a run {self.state} it since "
                f"{self.applied_at} (deployment {self.deployment_id}, {self.actor}) did not "
                f"finish: run `venuedb rollback {self.release} --level {self.level}` again to "
                f"finish it, or `venuedb rollout {self.release}` to restore"
            )
        return (
            f"release {self.release}, level {self.level} applied {self.applied_at} by "
            f"{self.actor} (deployment {self.deployment_id})"
        )


def recorded(conn: Any) -> list[AppliedLevel]:
    """Every level row of a release that is still applied, whatever its state (a downgrade
    of the release ends its level: rows of releases no longer applied are ignored)."""
    from toolkit.engine import revisions as revs
    from toolkit.engine.migrate import current_heads

    if not table_exists(conn, "venuedb.release_levels"):
        return []
    # to_jsonb: a table from an earlier build has no `state` (read-only commands read it
    # as it is; the next deploying command adds the column).
    rows = conn.execute(
        "SELECT release, level, details, applied_at, deployment_id, actor, "
        "coalesce(to_jsonb(l) ->> 'state', 'applied') FROM venuedb.release_levels l "
        "ORDER BY applied_at"
    ).fetchall()
    if not rows:
        return []
    # Revisions this checkout does not know (a newer checkout deployed them) decide
    # nothing here; verify reports them.
    known = {s.revision for s in revs.all_steps()}
    heads = tuple(h for h in current_heads(conn) if h in known)
    live = {r["release"] for r in revs.releases_applied(heads) if r["state"] == "applied"}
    return [
        AppliedLevel(r[0], int(r[1]), dict(r[2] or {}), str(r[3]), r[4], r[5], r[6])
        for r in rows
        if r[0] in live
    ]


def applied(conn: Any) -> list[AppliedLevel]:
    """The releases at level 2, completely."""
    return [a for a in recorded(conn) if a.state == APPLIED]


def steps_sha256(level: Level) -> str:
    from toolkit.ops.sql_files import file_sha256

    return file_sha256(steps_dir() / f"{level.steps}.py")


def changed_steps(states: list[AppliedLevel]) -> list[dict[str, str]]:
    """Applied levels whose steps file changed since: the live state was made by another
    file than the one a restore or verify's reference would run (tamper)."""
    out = []
    for state in states:
        level = find_level(state.release, state.level)
        recorded = state.details.get("steps_sha256")
        current = steps_sha256(level)
        if recorded != current:
            out.append(
                {
                    "kind": "level_steps_changed",
                    "name": f"migrations/levels/{level.steps}.py",
                    "expected": str(recorded),
                    "actual": current,
                    "detail": f"{state.describe()} ran another version of its steps file: "
                    "the restore and verify's reference would run this one",
                }
            )
    return out


def record_start(
    conn: Any, release: str, state: str, deployment_id: int | None, actor: str
) -> None:
    """Before the first step, committed on its own: `applying` (a new row) or `restoring`."""
    conn.execute(
        "INSERT INTO venuedb.release_levels (release, level, state, deployment_id, actor) "
        "VALUES (%s, 2, %s, %s, %s) ON CONFLICT (release) DO UPDATE SET "
        "state = EXCLUDED.state, applied_at = clock_timestamp(), "
        "deployment_id = EXCLUDED.deployment_id, actor = EXCLUDED.actor",
        (release, state, deployment_id, actor),
    )


def record_applied(conn: Any, release: str, details: dict[str, Any]) -> None:
    """In the transaction of the last step: the level is applied, with what it decided."""
    details = details | {"steps_sha256": steps_sha256(find_level(release, 2))}
    conn.execute(
        "UPDATE venuedb.release_levels SET state = %s, details = %s::jsonb, "
        "applied_at = clock_timestamp() WHERE release = %s",
        (APPLIED, json.dumps(details), release),
    )


def forget(conn: Any, release: str) -> None:
    conn.execute("DELETE FROM venuedb.release_levels WHERE release = %s", (release,))


def forget_unapplied(conn: Any) -> list[str]:
    """After a downgrade: the level rows of releases that are no longer applied go."""
    if not table_exists(conn, "venuedb.release_levels"):
        return []
    keep = {a.release for a in recorded(conn)}
    rows = conn.execute("SELECT release FROM venuedb.release_levels").fetchall()
    gone = [r[0] for r in rows if r[0] not in keep]
    for release in gone:
        forget(conn, release)
    return gone


def level_postconditions(states: list[AppliedLevel]) -> list[Any]:
    """The postconditions of the applied levels, as postconditions.Postcondition (release "X level
    2"): they replace the releases' own checks on the same objects."""
    from toolkit.integrity.postconditions import Postcondition

    checks = []
    for state in states:
        level = find_level(state.release, state.level)
        assert level.steps is not None
        module = steps_module(level.steps)
        for kind, obj, expect in module.postconditions(state.details):
            checks.append(Postcondition(f"{state.release} level {state.level}", kind, obj, expect))
    return checks


def with_levels(checks: list[Any], states: list[AppliedLevel]) -> list[Any]:
    """The releases' effective checks with the applied levels' on top: a level's check
    replaces any check on the same kind and object, and an object a level removes is not
    checked by any other kind either (its grants, its version)."""
    ours = level_postconditions(states)
    if not ours:
        return checks
    replaced = {(c.kind, c.object) for c in ours}
    removed = {c.object for c in ours if c.expect == "absent"}
    kept = [c for c in checks if (c.kind, c.object) not in replaced and c.object not in removed]
    return kept + ours


def undone_by(target: Any, steps: list[Any]) -> tuple[tuple[str, ...], list[Any]]:
    """The database's current heads, and the level-2 states of the releases a downgrade
    of `steps` undoes (wholly or in part): they are restored before it runs."""
    from toolkit.engine.migrate import current_heads
    from toolkit.server import connection as db

    undone = {s.release for s in steps if s.release}
    with db.connect(target, purpose="rollback plan") as conn:
        return current_heads(conn), [a for a in recorded(conn) if a.release in undone]
