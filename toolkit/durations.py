"""Durations on the command line: 1s, 500ms, 2m, always with a unit (0 needs none).

Every duration option has bounds (`Bounds`): a value outside them is refused before
anything connects or runs. `--lock-timeout 0` in particular would switch off the
protection that keeps a migration from queueing every query on a table behind it.

A bare number other than 0 is refused: `--timeout 5000` meant milliseconds to one
option and seconds to another, and a wrong guess is off by a factor of 1000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolkit.errors import BadInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
# At most 9 digits before the point: 10**30 is refused as malformed before any arithmetic.
_DURATION = re.compile(r"^\s*(\d{1,9}(?:\.\d{1,6})?)\s*(ms|s|min|m|h)?\s*$")


@dataclass(frozen=True)
class Bounds:
    """Allowed range in seconds; zero_allowed admits 0 as 'none' (statement_timeout)."""

    low: float
    high: float
    zero_allowed: bool = False

    def describe(self) -> str:
        text = f"{human(self.low)} .. {human(self.high)}"
        return f"0 (none) or {text}" if self.zero_allowed else text


# The bounds of every duration option; the --help texts quote these.
LOCK_TIMEOUT = Bounds(0.001, 60.0)
STATEMENT_TIMEOUT = Bounds(0.001, 24 * 3600.0, zero_allowed=True)
LOCK_WAIT = Bounds(0.0, 3600.0)
SLEEP = Bounds(0.0, 60.0)
TARGET_BATCH = Bounds(0.001, 60.0)
MAX_DURATION = Bounds(1.0, 7 * 24 * 3600.0)
# `check` and `exporter`: the statement_timeout of each health check, and check's --watch.
CHECK_TIMEOUT = Bounds(0.001, 24 * 3600.0)
WATCH = Bounds(1.0, 24 * 3600.0)


class MissingUnit(BadInput):
    """A bare number other than 0 where a duration is expected (exit 2)."""


def human(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds < 3600 or seconds % 3600:
        return f"{seconds / 60:g}min"
    return f"{seconds / 3600:g}h"


def parse_seconds(text: str, *, option: str = "duration") -> float:
    match = _DURATION.match(str(text))
    if not match:
        raise BadInput(f"{option}: {text!r} is not a duration (examples: 500ms, 1s, 2m)")
    number, unit = match[1], match[2]
    if unit is None:
        if float(number) != 0:
            raise MissingUnit(f"{option}: {text!r} needs a unit, e.g. {number}ms or {number}s")
        return 0.0
    return float(number) * _UNITS[unit]


def parse_bounded(text: str, bounds: Bounds, *, option: str) -> float:
    """parse_seconds, then refuse a value outside `bounds` naming the option and the range."""
    try:
        seconds = parse_seconds(text, option=option)
    except MissingUnit as exc:
        raise MissingUnit(f"{exc}; allowed: {bounds.describe()}") from None
    except BadInput:
        raise BadInput(
            f"{option}: {text!r} is not a duration; allowed: {bounds.describe()} "
            "(examples: 500ms, 1s, 2m)"
        ) from None
    if seconds == 0 and bounds.zero_allowed:
        return 0.0
    if not bounds.low <= seconds <= bounds.high:
        raise BadInput(f"{option}: {text!r} is out of range; allowed: {bounds.describe()}")
    return seconds


def to_milliseconds(seconds: float) -> int:
    """A whole number of ms for SET lock_timeout / statement_timeout (0 disables)."""
    return max(round(seconds * 1000), 1) if seconds > 0 else 0


def to_postgres(seconds: float) -> str:
    """A value for SET lock_timeout / statement_timeout (0 disables)."""
    return f"{to_milliseconds(seconds)}ms"


def check_count(value: int, low: int, high: int, *, option: str) -> int:
    """A count option (retries, batch size, rows) within [low, high], else BadInput naming it."""
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:20]}..."
        raise BadInput(f"{option}: {shown} is out of range; allowed: {low} .. {high}")
    return value
