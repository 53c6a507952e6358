"""The early-stopping rule's table (MLPerf LoadGen's figures at 99% confidence)."""

from __future__ import annotations

import pytest

from qpsweep.analysis.early_stop import certified, failed, requests_needed


@pytest.mark.parametrize(
    ("percentile", "needed"),
    [(99.0, [459, 662, 838]), (95.0, [90, 130, 165]), (90.0, [44, 64, 81])],
)
def test_requests_needed_per_number_of_misses(percentile: float, needed: list[int]) -> None:
    assert [requests_needed(k, percentile) for k in range(3)] == needed
    for misses, n in enumerate(needed):
        assert certified(n, misses, percentile) and not certified(n - 1, misses, percentile)


def test_too_many_misses_fail_and_a_few_cannot_tell_yet() -> None:
    assert failed(100, 5, 99.0)  # 5% misses where 1% is allowed
    assert not failed(100, 2, 99.0) and not certified(100, 2, 99.0)  # cannot tell yet
    assert not certified(0, 0, 99.0)
