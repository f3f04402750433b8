"""The releases declared in migrations/releases.toml: named groups of revisions on one branch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput
from toolkit.paths import migrations_dir, read_toml
from toolkit.read_once import read_once


@dataclass(frozen=True)
class Release:
    name: str
    branch: str
    summary: str
    seed: str
    revisions: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.revisions[0]

    @property
    def last(self) -> str:
        return self.revisions[-1]


def releases_file() -> Path:
    return migrations_dir() / "releases.toml"


@read_once
def load_releases(path: Path | None = None) -> list[Release]:
    path = path or releases_file()
    data = read_toml(path, "the release list")
    releases = []
    for entry in data.get("release", []):
        try:
            releases.append(
                Release(
                    name=entry["name"],
                    branch=entry["branch"],
                    summary=entry.get("summary", ""),
                    seed=entry.get("seed", ""),
                    revisions=tuple(entry["revisions"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise BadInput(f"malformed release entry in {path}: missing {exc}") from None
    return releases


def find_release(name: str, releases: list[Release] | None = None) -> Release | None:
    for release in releases if releases is not None else load_releases():
        if release.name == name:
            return release
    return None


def unknown_release(name: str, releases: list[Release] | None = None) -> BadInput:
    """The one wording every command uses for a name that is no release: the valid ones."""
    known = ", ".join(r.name for r in (releases if releases is not None else load_releases()))
    return BadInput(f"unknown release {name!r}; releases: {known}")


def release_of(revision: str, releases: list[Release] | None = None) -> Release | None:
    for release in releases if releases is not None else load_releases():
        if revision in release.revisions:
            return release
    return None


NO_RELEASE = "(no release)"


def undone_by(steps: list[Any]) -> dict[str, list[str]]:
    """The releases a downgrade plan undoes, in plan order (latest first), each with its
    revisions in the plan; revisions that belong to no release are grouped as NO_RELEASE."""
    undone: dict[str, list[str]] = {}
    for step in steps:
        undone.setdefault(step.release or NO_RELEASE, []).append(step.revision)
    return undone


def dependent_releases(steps: list[Any], named: str | None) -> list[str]:
    """The releases a rollback undoes besides the one it was asked for.

    A release target asks for that release alone. Any other target (a revision, bar@-1,
    base) asks for the release the plan ends in, the earliest it reaches: every later one
    it also undoes is built on it."""
    undone = list(undone_by(steps))
    if not undone:
        return []
    asked = named if named is not None else undone[-1]
    return [name for name in undone if name != asked]
