"""`venuedb new-revision BRANCH -m MSG`."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.cli.common import JsonFlag, Output, handled


def new_revision(
    branch: Annotated[
        str, typer.Argument(help="The branch to extend: core, booking or bar.", show_default=False)
    ],
    message: Annotated[
        str,
        typer.Option(
            "-m",
            "--message",
            help="What the revision does: its docstring's first line and its file name's slug.",
            show_default=False,
        ),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Write migrations/versions/<branch>_<NNN>_<slug>.py from the project's template
    (migrations/script.py.mako): revision <branch>_<NNN>, one past the branch's head, which
    is its down_revision. Prints the path. Exit 2 for an unknown branch (the branches are
    listed) or when a file with that number exists already; nothing is written then.

    The new revision belongs to no release until migrations/releases.toml names it."""
    from toolkit.engine.new_revision import write_revision

    out = Output(json_output)
    with handled(out):
        revision, path = write_revision(branch, message)
        out.document("ok", path=str(path), branch=branch, revision=revision)
        out.line(str(path))
