"""Arrival offsets for one level, computed up front from a seed (pure).

``arrival_offsets_s(rate_qps, duration_s, arrival, burstiness, seed)`` returns the sorted
send times, in seconds after the level starts, of every request in ``[0, duration_s)``:

* ``poisson``: gaps are exponential with mean ``1 / rate_qps`` (memoryless, open-loop);
* ``gamma``: gaps are gamma with shape ``k = burstiness`` and scale ``1 / (rate_qps * k)``,
  so the mean rate is unchanged; ``k < 1`` is burstier than Poisson, ``k > 1`` smoother,
  ``k = 1`` is Poisson (vLLM's ``--burstiness`` convention);
* ``constant``: ``0, 1/rate, 2/rate, ...``.

The random stream depends only on ``(seed, rate_qps)``, so a level at 10 QPS sends the same
schedule in every run with the same seed, whatever other levels the run has.
"""

from __future__ import annotations

import math

import numpy as np


def level_rng(seed: int, rate_qps: float) -> np.random.Generator:
    """The generator for one level: a function of the run seed and the level's rate (mQPS)."""
    return np.random.default_rng(np.random.SeedSequence([seed, round(rate_qps * 1000)]))


def _gaps(rng: np.random.Generator, n: int, rate_qps: float, arrival: str, k: float) -> np.ndarray:
    if arrival == "poisson":
        return rng.exponential(1.0 / rate_qps, n)
    if arrival == "gamma":
        return rng.gamma(k, 1.0 / (rate_qps * k), n)
    raise ValueError(f"unknown arrival process {arrival!r}")


def arrival_offsets_s(
    rate_qps: float,
    duration_s: float,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Sorted float64 offsets (seconds) of all arrivals in ``[0, duration_s)``."""
    if rate_qps <= 0 or duration_s <= 0:
        raise ValueError("rate_qps and duration_s must be positive")
    if arrival == "constant":
        return np.arange(math.ceil(rate_qps * duration_s - 1e-9)) / rate_qps
    rng = level_rng(seed, rate_qps)
    expected = rate_qps * duration_s
    batch = int(expected + 8 * math.sqrt(expected) + 16)
    times = np.cumsum(_gaps(rng, batch, rate_qps, arrival, burstiness))
    while times[-1] < duration_s:
        more = np.cumsum(_gaps(rng, batch, rate_qps, arrival, burstiness)) + times[-1]
        times = np.concatenate([times, more])
    return times[: int(np.searchsorted(times, duration_s, side="left"))]
