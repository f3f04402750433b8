"""Byte rates on the command line: 64MB/s, 512kB/s, 1GiB/s, always with a unit (0 needs none).

Like durations (toolkit.durations), a bare number other than 0 is refused: whether
`--max-wal-rate 64` meant bytes or megabytes is a guess off by a factor of a million.
Units are PostgreSQL's (kB, MB, GB: powers of 1024, as in postgresql.conf), plus the
IEC spellings KiB, MiB, GiB for those who write them; `/s` is optional.
"""

from __future__ import annotations

import re

from toolkit.errors import BadInput

_UNITS = {
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
}
_RATE = re.compile(r"^\s*(\d{1,9}(?:\.\d{1,6})?)\s*([a-z]+)?\s*(?:/\s*s)?\s*$", re.IGNORECASE)


def parse_rate(text: str, *, option: str) -> float:
    """Bytes per second; 0 is 'no limit'."""
    match = _RATE.match(str(text))
    if not match or (match[2] is not None and match[2].lower() not in _UNITS):
        raise BadInput(f"{option}: {text!r} is not a byte rate (examples: 0, 16MB/s, 1GB/s)")
    number, unit = float(match[1]), match[2]
    if unit is None:
        if number != 0:
            raise BadInput(f"{option}: {text!r} needs a unit, e.g. {match[1]}MB/s")
        return 0.0
    return number * _UNITS[unit.lower()]


def rate_text(rate: float) -> str:
    if rate == 0:
        return "0 (no limit)"
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if rate >= size:
            return f"{rate / size:g}{unit}/s"
    return f"{rate:g}B/s"
