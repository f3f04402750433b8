"""Percentiles of latencies, one definition for the toolkit's reports and the benchmarks."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct`th percentile (0 < pct < 100) of `values`, interpolated between the two
    nearest samples as statistics.quantiles does ('inclusive': the smallest and the
    largest sample are the 0th and the 100th), to a tenth of a percent; the sample
    itself when there is one, None when there is none."""
    if not 0 < pct < 100:
        raise ValueError(f"a percentile lies strictly between 0 and 100, not {pct}")
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[round(pct * 10) - 1]
