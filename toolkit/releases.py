"""The releases declared in migrations/releases.toml: named groups of revisions on one branch."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import BadInput
from toolkit.paths import migrations_dir


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


def load_releases(path: Path | None = None) -> list[Release]:
    path = path or releases_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"cannot read the release list {path}: {exc}") from None
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


def release_of(revision: str, releases: list[Release] | None = None) -> Release | None:
    for release in releases if releases is not None else load_releases():
        if revision in release.revisions:
            return release
    return None
