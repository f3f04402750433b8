"""Released history, frozen in fact: the manifest of released files and per-revision checksums.

`migrations/released.json` lists, for every released revision (a revision named in
migrations/releases.toml), its revision file and every SQL file it installs on the way up
and on the way down, each with its sha256, and one checksum over all of them. Entries are
only ever appended (`venuedb release-manifest`); `venuedb snapshot` never touches the file,
and tests/test_frozen_history.py checks it against git.

A revision's checksum is the sha256 of `sha256sum`-style lines ("<sha>  <path>\\n", sorted
by path) over its files: the same formula for the manifest, the record written at apply and
an acceptance (toolkit/engine/checksums.py), so equal checksums mean equal files.

No database here: this module reads files only.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import BadInput, VenuedbError
from toolkit.paths import editable_project_root, migrations_dir, project_root
from toolkit.read_once import read_once

MANIFEST_VERSION = 1


class Tampered(VenuedbError):
    """A released file differs from the manifest and nobody accepted it (exit 3)."""

    exit_code = 3
    status = "tampered"


def manifest_file() -> Path:
    return migrations_dir() / "released.json"


def relative(path: str | Path) -> str:
    """A path as the manifest names it: relative to the checkout, with forward slashes."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(project_root()).as_posix()
    except ValueError:
        return resolved.as_posix()


def sql_relative(sql_path: str) -> str:
    """A path given to install_sql_file (relative to sql/) as the manifest names it."""
    return f"sql/{sql_path}"


@read_once
def file_sha(path: str) -> str | None:
    """sha256 of a checkout-relative file now; None when it is gone."""
    full = project_root() / path
    if not full.is_file():
        return None
    return hashlib.sha256(full.read_bytes()).hexdigest()


def checksum(files: Iterable[tuple[str, str | None]]) -> str:
    """One checksum over (path, sha) pairs; a missing file counts as 'missing'."""
    lines = "".join(f"{sha or 'missing'}  {path}\n" for path, sha in sorted(set(files)))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileChange:
    revision: str
    path: str
    role: str
    expected: str
    actual: str | None  # None: the file is gone

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "path": self.path,
            "role": self.role,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass
class RevisionChange:
    """A released revision whose files differ from the manifest."""

    revision: str
    expected: str  # the manifest's checksum
    actual: str  # the checksum of the same files now
    files: list[FileChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "expected": self.expected,
            "actual": self.actual,
            "files": [f.to_dict() for f in self.files],
        }


# -- the manifest ---------------------------------------------------------------------------


@read_once
def load_manifest(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """revision -> entry; {} when there is no manifest yet."""
    path = path or manifest_file()
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["revisions"]
        for revision, entry in entries.items():
            if not isinstance(entry["files"], list) or not isinstance(entry["checksum"], str):
                raise TypeError(revision)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"cannot read the released-files manifest {path}: {exc!r}") from None
    return dict(entries)


def entry_files(entry: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["path"], f["sha256"]) for f in entry["files"]]


def current_checksum(entry: dict[str, Any]) -> str:
    """The checksum of an entry's files as they are now."""
    return checksum((path, file_sha(path)) for path, _ in entry_files(entry))


def compare_entry(revision: str, entry: dict[str, Any]) -> RevisionChange | None:
    changed = []
    for item in entry["files"]:
        now = file_sha(item["path"])
        if now != item["sha256"]:
            changed.append(FileChange(revision, item["path"], item["role"], item["sha256"], now))
    if not changed:
        return None
    return RevisionChange(revision, entry["checksum"], current_checksum(entry), changed)


def changes(manifest: dict[str, dict[str, Any]] | None = None) -> list[RevisionChange]:
    """Every released revision whose files differ from the manifest now."""
    manifest = load_manifest() if manifest is None else manifest
    found = [compare_entry(revision, entry) for revision, entry in manifest.items()]
    return [c for c in found if c is not None]


# -- which SQL files a revision installs ------------------------------------------------------


def collect_installs() -> dict[str, dict[str, list[str]]]:
    """revision -> {"upgrade": [...], "downgrade": [...]}: the sql/ files each installs.

    Learnt by running every revision's upgrade() and downgrade() offline (SQL into a
    discarded buffer) with toolkit.ops.sql_files collecting, so paths built at run time count.
    Runs alembic commands itself: never call it while a migration is running.
    """
    from alembic import command

    from toolkit.engine import revisions as revs
    from toolkit.ops.sql_files import collecting

    config = revs.alembic_config()
    config.output_buffer = io.StringIO()
    found: dict[str, dict[str, list[str]]] = {
        s.revision: {"upgrade": [], "downgrade": []} for s in revs.all_steps()
    }
    with collecting() as installed:

        def on_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
            direction = "upgrade" if step.is_upgrade else "downgrade"
            found[step.up_revision_id][direction] = list(dict.fromkeys(installed))
            installed.clear()

        config.attributes["on_version_apply"] = [on_step]
        command.upgrade(config, "heads", sql=True)
        # Offline downgrades need one starting revision: walk down from each head.
        for head in revs.script_directory().get_heads():
            installed.clear()
            command.downgrade(config, f"{head}:base", sql=True)
    return found


def build_entry(
    revision: str, release: str, revision_path: str, installs: dict[str, list[str]]
) -> dict[str, Any]:
    roles: dict[str, list[str]] = {relative(revision_path): ["revision"]}
    for direction in ("upgrade", "downgrade"):
        for sql in installs.get(direction, []):
            roles.setdefault(sql_relative(sql), []).append(direction)
    files = []
    for path, role in roles.items():
        sha = file_sha(path)
        if sha is None:
            raise BadInput(f"{revision}: {path} does not exist")
        files.append({"path": path, "role": "+".join(role), "sha256": sha})
    return {
        "release": release,
        "files": files,
        "checksum": checksum((f["path"], f["sha256"]) for f in files),
    }


@dataclass
class ManifestPlan:
    """What `venuedb release-manifest` would do: entries to add, entries it must not change."""

    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: list[RevisionChange] = field(default_factory=list)
    unreleased: list[str] = field(default_factory=list)  # in the manifest, not released
    kept: int = 0


def plan_manifest() -> ManifestPlan:
    from toolkit.engine import revisions as revs
    from toolkit.engine.releases import load_releases

    manifest = load_manifest()
    plan = ManifestPlan(kept=len(manifest), changed=changes(manifest))
    released = {r: release.name for release in load_releases() for r in release.revisions}
    plan.unreleased = sorted(set(manifest) - set(released))
    missing = [r for r in released if r not in manifest]
    if not missing:
        return plan
    installs = collect_installs()
    steps = {s.revision: s for s in revs.all_steps()}
    for revision in missing:
        if revision not in steps:
            raise BadInput(f"releases.toml names {revision}, which is not a revision")
        plan.added[revision] = build_entry(
            revision, released[revision], steps[revision].path, installs[revision]
        )
    return plan


def write_manifest(added: dict[str, dict[str, Any]]) -> Path:
    """Append entries; existing ones are copied as they are (never recomputed)."""
    editable_project_root("venuedb release-manifest")
    path = manifest_file()
    entries = load_manifest(path)
    clash = sorted(set(entries) & set(added))
    if clash:
        raise Tampered(f"refusing to change released entries: {', '.join(clash)}")
    entries.update(added)
    document = {
        "comment": "Released files, append-only: written by `venuedb release-manifest`, never "
        "by `venuedb snapshot`. A released file is never edited: add a new revision or a new "
        "version file instead.",
        "version": MANIFEST_VERSION,
        "revisions": entries,
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path
