"""The one back-off every retry in the toolkit waits: exponential, capped, jittered.

Jitter (±20 %) keeps two deploys, two backfills or two coordinators that failed together
from retrying together.
"""

from __future__ import annotations

import math
import random


def delay(base: float, retry: int, cap: float = math.inf) -> float:
    """How long to wait before retry number `retry` (0 for the first): `base` doubled
    per retry, at most `cap`, then ±20 %. In the unit of `base`."""
    if retry < 0:
        raise ValueError(f"retry counts from 0, not {retry}")
    return min(base * 2**retry, cap) * random.uniform(0.8, 1.2)
