import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from qpsweep.load.schedule import arrival_offsets_s


def test_poisson_gaps_are_exponential_by_kolmogorov_smirnov() -> None:
    offsets = arrival_offsets_s(20.0, 300.0, "poisson", seed=7)
    gaps = np.diff(offsets)
    result = stats.kstest(gaps, "expon", args=(0, 1 / 20.0))
    assert result.pvalue > 0.01
    assert len(offsets) == pytest.approx(6000, rel=0.05)


def test_ks_rejects_a_constant_schedule() -> None:
    """The KS check above is able to fail: evenly spaced gaps are not exponential."""
    gaps = np.diff(arrival_offsets_s(20.0, 300.0, "constant"))
    assert stats.kstest(gaps, "expon", args=(0, 1 / 20.0)).pvalue < 1e-6


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    a = arrival_offsets_s(10.0, 60.0, "poisson", seed=1)
    b = arrival_offsets_s(10.0, 60.0, "poisson", seed=1)
    c = arrival_offsets_s(10.0, 60.0, "poisson", seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:50], c[:50])


def test_constant_schedule_is_exact() -> None:
    assert arrival_offsets_s(4.0, 1.0, "constant").tolist() == [0.0, 0.25, 0.5, 0.75]


def test_gamma_keeps_the_rate_and_burstiness_changes_spread() -> None:
    bursty = np.diff(arrival_offsets_s(50.0, 200.0, "gamma", burstiness=0.25, seed=3))
    smooth = np.diff(arrival_offsets_s(50.0, 200.0, "gamma", burstiness=4.0, seed=3))
    assert bursty.mean() == pytest.approx(1 / 50.0, rel=0.1)
    assert smooth.mean() == pytest.approx(1 / 50.0, rel=0.05)
    assert bursty.std() / bursty.mean() > 1.5
    assert smooth.std() / smooth.mean() < 0.75


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.05, 500.0),
    duration=st.floats(0.5, 30.0),
    arrival=st.sampled_from(["poisson", "constant", "gamma"]),
    seed=st.integers(0, 2**31),
)
def test_offsets_sorted_within_window_and_seeded(
    rate: float, duration: float, arrival: str, seed: int
) -> None:
    offsets = arrival_offsets_s(rate, duration, arrival, 0.5, seed)
    assert np.all(np.diff(offsets) >= 0)
    assert offsets.size == 0 or (offsets[0] >= 0 and offsets[-1] < duration)
    assert np.array_equal(offsets, arrival_offsets_s(rate, duration, arrival, 0.5, seed))
