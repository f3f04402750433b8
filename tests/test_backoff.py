"""The toolkit's one back-off (issue 20: four copies of it before)."""

from __future__ import annotations

import pytest

from toolkit import backoff


def test_it_doubles_per_retry_within_twenty_percent() -> None:
    for retry, nominal in enumerate((0.1, 0.2, 0.4, 0.8)):
        for _ in range(200):
            assert 0.8 * nominal <= backoff.delay(0.1, retry) <= 1.2 * nominal


def test_the_cap_bounds_it_before_the_jitter() -> None:
    waits = [backoff.delay(0.2, 10, cap=5.0) for _ in range(500)]
    assert min(waits) >= 4.0 and max(waits) <= 6.0
    assert len({round(w, 6) for w in waits}) > 1  # jittered, not a constant


def test_retries_count_from_zero() -> None:
    with pytest.raises(ValueError, match="retry counts from 0"):
        backoff.delay(0.1, -1)
