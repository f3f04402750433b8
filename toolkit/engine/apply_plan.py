"""`venuedb apply --plan`: the revisions an apply would run, in order, each with what it
does about locks, and whether the lint gate would let it through. Reads only: the plan
comes from alembic_version (Alembic's own planner), the notes from the revision files,
the lint verdict from squawk on their offline SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.engine import revisions as revs
from toolkit.engine.migrate import plan_for
from toolkit.errors import OperationFailed
from toolkit.server import connection as db


@dataclass
class ApplyPlan:
    target: str  # the Alembic target
    release: str | None
    branches: dict[str, str | None]  # where each branch is now
    revisions: list[dict[str, Any]] = field(default_factory=list)  # in order, with notes
    lint: dict[str, Any] = field(default_factory=dict)
    would_refuse: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "release": self.release,
            "branches": self.branches,
            "planned": self.revisions,
            "lint": self.lint,
            "would_refuse": self.would_refuse,
        }


# What a revision declares about how it avoids long locks (toolkit/ops): read from its module.
_RESUMABLE = (
    "steps out of its transaction (CONCURRENTLY index builds, NOT VALID constraints "
    "validated afterwards, batched copies): no long write-blocking lock; resumable if "
    "interrupted"
)
_SWAP = (
    "replaces an exclusion constraint through a shadow table: rows copied in batches, then "
    "a brief ACCESS EXCLUSIVE lock (lock_timeout, retried) to rename; tables under the "
    "shadow-swap threshold take the plain, blocking path"
)
_PLAIN = (
    "runs in one transaction: its DDL takes the locks its statements need until it commits "
    "(lock_timeout per revision, retried); `venuedb apply --rehearse` lists them"
)


def lock_notes(revision: str) -> list[str]:
    """How the revision treats locks, as it declares it (RESUMABLE, an ExclusionSwap)."""
    from toolkit.ops.shadow_swap import ExclusionSwap

    module = getattr(revs.script_directory().get_revision(revision), "module", None)
    notes = []
    if isinstance(getattr(module, "UPGRADE", None), ExclusionSwap):
        notes.append(_SWAP)
    if getattr(module, "RESUMABLE", False):
        notes.append(_RESUMABLE)
    return notes or [_PLAIN]


def plan_apply(target: db.Target, target_name: str | None, lint_gate: Any = None) -> ApplyPlan:
    """What `venuedb apply TARGET` would run now; `lint_gate` (a LintGate) judges it as the
    apply would, without refusing: its findings become `would_refuse`."""
    from toolkit.integrity.lint_gate import LintRefused

    steps, branches, alembic_target = plan_for(target, "upgrade", target_name)
    _, release = revs.upgrade_target(target_name)
    found = ApplyPlan(alembic_target, release.name if release else None, branches)
    found.revisions = [s.to_dict() | {"lock_notes": lock_notes(s.revision)} for s in steps]
    names = [s.revision for s in steps]
    if lint_gate is None or not names:
        return found
    try:
        lint_gate.check(names)
    except LintRefused as exc:
        found.would_refuse.append(str(exc))
    except OperationFailed as exc:  # squawk missing: the apply would refuse too
        found.would_refuse.append(f"lint could not run: {exc}")
    found.lint = lint_gate.to_dict(names)
    return found
