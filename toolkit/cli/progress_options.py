"""`--progress` and `--progress-interval`, shared by the commands that run long work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from toolkit import progress
from toolkit.errors import BadInput

ProgressMode = Annotated[
    str,
    typer.Option(
        "--progress",
        help="How long work reports progress on stderr: auto (a bar on a terminal, else "
        "lines), bar, lines (a plain line every --progress-interval and at the end), json "
        "(one object per line: event, what, unit, done, total, rate_per_s, eta_s, "
        "elapsed_s), none.",
    ),
]
ProgressInterval = Annotated[
    str,
    typer.Option(
        "--progress-interval",
        help=f"Time between two progress lines (lines, json), {progress.INTERVAL.describe()}.",
    ),
]


@contextmanager
def reporting(mode: str, interval: str) -> Iterator[None]:
    """The command's long work reports progress as the options say (checked first)."""
    from toolkit import durations as d

    if mode not in progress.MODES:
        raise BadInput(f"--progress: {mode!r} is not one of {', '.join(progress.MODES)}")
    seconds = d.parse_bounded(interval, progress.INTERVAL, option="--progress-interval")
    with progress.configured(progress.Settings(mode, seconds)):
        yield
