"""The revision graph: branches, releases, targets and plans. No database needed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

from toolkit.engine.releases import (
    Release,
    find_release,
    load_releases,
    release_of,
    unknown_release,
)
from toolkit.errors import BadInput
from toolkit.paths import alembic_ini, project_root
from toolkit.read_once import read_once
from toolkit.server.urls import masked_first_line

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

BRANCHES = ("core", "booking", "bar")


def alembic_config(connection: Any = None) -> Config:
    from alembic.config import Config

    config = Config(str(alembic_ini()))
    config.set_main_option("script_location", str(project_root() / "migrations"))
    config.set_main_option("version_locations", str(project_root() / "migrations" / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


@dataclass(frozen=True)
class PlannedRevision:
    revision: str
    branch: str
    release: str | None
    message: str
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "branch": self.branch,
            "release": self.release,
            "message": self.message,
        }


def branch_of(revision: str) -> str:
    """The label of the branch root the revision descends from (by down_revision)."""
    script = script_directory()
    current = script.get_revision(revision)
    while current is not None and current.down_revision is not None:
        down = current.down_revision
        current = script.get_revision(down if isinstance(down, str) else down[0])
    labels = sorted(current.branch_labels) if current is not None else []
    return labels[0] if labels else "?"


def step_of(script_rev: Script, releases: list[Release] | None = None) -> PlannedRevision:
    """`releases`: the release list when the caller has read it already (reading and
    parsing releases.toml once per revision was most of `venuedb verify`'s time)."""
    release = release_of(script_rev.revision, releases)
    return PlannedRevision(
        revision=script_rev.revision,
        branch=branch_of(script_rev.revision),
        release=release.name if release else None,
        message=(script_rev.doc or "").strip(),
        path=script_rev.path,
    )


@read_once
def all_steps() -> list[PlannedRevision]:
    """Every revision, bases first, in an order in which they can be applied."""
    script = script_directory()
    ordered = list(reversed(list(script.walk_revisions("base", "heads"))))
    releases = load_releases()
    return [step_of(rev, releases) for rev in ordered]


def applied_revisions(heads: tuple[str, ...]) -> set[str]:
    """Revisions at or below the current heads.

    Follows down_revision and depends_on: alembic_version drops a head (core_001) once
    another branch's revision depends on it, yet it is applied.
    """
    script = script_directory()
    applied: set[str] = set()
    pending = list(heads)
    while pending:
        rev_id = pending.pop()
        if rev_id in applied:
            continue
        applied.add(rev_id)
        rev = script.get_revision(rev_id)
        if rev is not None:
            pending.extend(_ids(rev.down_revision))
            # depends_on may name a branch label: the revision it stands for.
            pending.extend(script.get_revision(dep).revision for dep in _ids(rev.dependencies))
    return applied


def _ids(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Alembic's down_revision and depends_on: None, one id, or several."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def heads_by_branch(heads: tuple[str, ...]) -> dict[str, str | None]:
    """The newest applied revision of each branch (None: nothing of it applied)."""
    applied = applied_revisions(heads)
    result: dict[str, str | None] = dict.fromkeys(BRANCHES)
    for step in all_steps():  # apply order, so the last applied one of a branch wins
        if step.revision in applied:
            result[step.branch] = step.revision
    return result


def releases_applied(heads: tuple[str, ...]) -> list[dict[str, Any]]:
    applied = applied_revisions(heads)
    out = []
    for release in load_releases():
        done = [r for r in release.revisions if r in applied]
        state = (
            "applied" if len(done) == len(release.revisions) else ("partial" if done else "pending")
        )
        out.append(
            {
                "release": release.name,
                "branch": release.branch,
                "state": state,
                "revisions": list(release.revisions),
                "applied": done,
            }
        )
    return out


def _is_revision(name: str) -> bool:
    """A revision id Alembic finds in migrations/versions/."""
    try:
        return script_directory().get_revision(name) is not None
    except Exception:  # alembic raises CommandError and several RevisionError flavours
        return False


def _validate_revision_id(name: str) -> None:
    """Refuse a name that is neither a release nor a revision by listing the releases,
    instead of Alembic's "Can't locate revision"."""
    if not _is_revision(name):
        raise BadInput(
            f"{unknown_release(name)}; nor is it a revision id (`venuedb history` lists them)"
        )


def _validate_branch_target(name: str) -> None:
    """BRANCH@head, BRANCH@base, BRANCH@-1: refuse an unknown BRANCH by listing the branches."""
    branch = name.partition("@")[0]
    if branch and branch not in BRANCHES and not _is_revision(branch):
        raise BadInput(f"unknown branch {branch!r} in {name!r}; branches: {', '.join(BRANCHES)}")


def upgrade_target(name: str | None) -> tuple[str, Release | None]:
    """An Alembic upgrade target for TARGET: heads, a release name, a revision, branch@head."""
    if name is not None and not name.strip():
        # An empty TARGET (`apply ''`, an unset shell variable) must not mean "everything".
        raise BadInput(
            "TARGET: '' is empty; allowed: a release name, a revision id, branch@head, or "
            "omit TARGET to apply every branch head"
        )
    if name in (None, "heads", "head"):
        return "heads", None
    assert name is not None
    release = find_release(name)
    if release is not None:
        return release.last, release
    if name == "base":
        raise BadInput(
            "`apply base` would do nothing: to undo everything use `venuedb rollback base`"
        )
    if "@" in name:
        _validate_branch_target(name)
    elif not name.startswith(("+", "-")):
        _validate_revision_id(name)
    return name, None


def downgrade_target(name: str) -> tuple[str, Release | None]:
    """An Alembic downgrade target: before a release, a revision, base, branch@base, branch@-1."""
    if not name.strip():
        raise BadInput("rollback needs a TARGET: a release name, a revision, branch@base or base")
    release = find_release(name)
    if release is not None:
        first = script_directory().get_revision(release.first)
        assert first is not None
        down = first.down_revision
        if down is None:
            return f"{release.branch}@base", release
        return (down if isinstance(down, str) else down[0]), release
    if name in ("heads", "head"):
        raise BadInput(f"`rollback {name}` would do nothing: name a release, a revision or base")
    if "@" in name:
        _validate_branch_target(name)
    elif name != "base" and not name.startswith(("+", "-")):
        _validate_revision_id(name)
    return name, None


Direction = Literal["upgrade", "downgrade"]


def checked_direction(direction: str) -> Direction:
    """`direction` itself, or ValueError: callers used to treat anything but "upgrade" as a
    downgrade, so a typo in a caller would have rolled a database back."""
    if direction not in get_args(Direction):
        raise ValueError(f"direction must be 'upgrade' or 'downgrade', not {direction!r}")
    return direction  # type: ignore[return-value]  # narrowed by the test above


def target_for(direction: Direction, name: str | None) -> tuple[str, Release | None]:
    """The Alembic target (and the release named, if any) of an upgrade or a downgrade."""
    if checked_direction(direction) == "upgrade":
        return upgrade_target(name)
    return downgrade_target(name or "")


def plan(direction: Direction, target: str, heads: tuple[str, ...]) -> list[PlannedRevision]:
    """The revisions Alembic will run, in order (uses the same planner as `alembic upgrade`)."""
    checked_direction(direction)
    script = script_directory()
    try:
        # Alembic's own planner, through its public API: what `alembic upgrade` and
        # `alembic downgrade` would run (compared over every target and 60 states of
        # the heads when it replaced the private _upgrade_revs/_downgrade_revs).
        if direction == "upgrade":
            revs = list(reversed(list(script.iterate_revisions(target, heads, implicit_base=True))))
        else:
            revs = list(script.iterate_revisions(heads, target, select_for_downgrade=True))
    except Exception as exc:
        raise BadInput(f"cannot {direction} to {target!r}: {masked_first_line(exc)}") from None
    releases = load_releases()
    return [step_of(rev, releases) for rev in revs]
