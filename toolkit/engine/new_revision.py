"""`venuedb new-revision BRANCH -m MSG`: the next revision of a branch, from the project's
template (migrations/script.py.mako), named as every revision is: <branch>_<NNN>_<slug>.py
with revision id <branch>_<NNN> and down_revision the branch's head."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from toolkit.engine import revisions as revs
from toolkit.errors import BadInput
from toolkit.paths import editable_project_root, migrations_dir

_NUMBERED = re.compile(r"^(?P<branch>[a-z]+)_(?P<number>\d{3})$")


def next_revision_id(branch: str) -> str:
    """<branch>_<NNN>, one past the branch's head; BadInput for an unknown branch."""
    from alembic.script import ScriptDirectory

    if branch not in revs.BRANCHES:
        raise BadInput(f"unknown branch {branch!r}; branches: {', '.join(revs.BRANCHES)}")
    # Read afresh, not the cached graph: it may be another project's or out of date.
    head = ScriptDirectory.from_config(revs.alembic_config()).get_revision(f"{branch}@head")
    assert head is not None  # every branch has its first revision
    match = _NUMBERED.match(head.revision)
    if match is None or match["branch"] != branch:
        raise BadInput(
            f"the head of {branch} is {head.revision!r}, not {branch}_NNN: cannot number the "
            "next revision"
        )
    return f"{branch}_{int(match['number']) + 1:03d}"


def write_revision(branch: str, message: str) -> tuple[str, Path]:
    """Write the new revision file: its revision id and path; nothing is written when refused."""
    from alembic import command

    if not re.search(r"\w", message):
        raise BadInput("-m needs a message: it is the revision's docstring and its file name")
    editable_project_root("venuedb new-revision")
    revision_id = next_revision_id(branch)
    versions = migrations_dir() / "versions"
    taken = sorted(versions.glob(f"{revision_id}_*")) + sorted(versions.glob(f"{revision_id}.py"))
    if taken:
        raise BadInput(
            f"{taken[0]} exists already and holds the number {revision_id}: move it away or "
            "finish it; nothing was written"
        )
    config = revs.alembic_config()
    config.cmd_opts = argparse.Namespace(quiet=True)  # stdout is ours: the path, or --json
    script = command.revision(config, message=message, head=f"{branch}@head", rev_id=revision_id)
    revs.script_directory.cache_clear()  # the graph has a new head
    assert script is not None and not isinstance(script, list)  # one head, one script
    return revision_id, Path(script.path)
