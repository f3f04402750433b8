"""Durations on the command line: 1s, 500ms, 2m, or a bare number of seconds."""

from __future__ import annotations

import re

from toolkit.errors import BadInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$")


def parse_seconds(text: str, *, option: str = "duration") -> float:
    match = _DURATION.match(str(text))
    if not match:
        raise BadInput(f"{option}: {text!r} is not a duration (examples: 500ms, 1s, 2m)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def to_postgres(seconds: float) -> str:
    """A value for SET lock_timeout / statement_timeout (0 disables)."""
    return f"{round(seconds * 1000)}ms"
