"""One percentile for the toolkit's reports and the benchmarks (issue 20)."""

from __future__ import annotations

import pytest

from toolkit.stats import percentile


def test_percentiles_interpolate_between_samples() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(list(reversed(values)), 50) == pytest.approx(50.5)  # order is free


def test_one_sample_or_none() -> None:
    assert percentile([], 95) is None
    assert percentile([7.0], 95) == 7.0


@pytest.mark.parametrize("pct", [0, 100, -1, 101])
def test_a_percentile_lies_strictly_inside(pct: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        percentile([1.0, 2.0], pct)
