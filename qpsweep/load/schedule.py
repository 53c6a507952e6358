"""Arrival offsets for one level, computed up front from a seed (pure).

``arrival_offsets_s(rate_qps, duration_s, arrival, burstiness, seed)`` returns the sorted
send times, in seconds after the level starts, of every request in ``[0, duration_s)``:

* ``poisson``: gaps are exponential with mean ``1 / rate_qps`` (memoryless, open-loop);
* ``gamma``: gaps are gamma with shape ``k = burstiness`` and scale ``1 / (rate_qps * k)``,
  so the mean rate is unchanged; ``k < 1`` is burstier than Poisson, ``k > 1`` smoother,
  ``k = 1`` is Poisson (vLLM's ``--burstiness`` convention);
* ``constant``: ``0, 1/rate, 2/rate, ...``;
* ``trace``: the arrival times of a trace (``trace_s``, sorted, from 0) with every gap scaled
  by ``trace_rate / rate_qps`` (``trace_rate = (n - 1) / span``, the trace's mean rate), so
  the level's mean rate is ``rate_qps`` and the trace's bursts keep their shape.  A level
  longer than the scaled trace wraps around: pass ``j`` sends row ``i`` at
  ``(trace_s[i] + j * period) * scale`` with ``period = span * n / (n - 1)`` (the span plus
  one mean gap), so request ``k`` of the level is row ``k % n`` (``trace_passes`` says how
  many passes a level makes).

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
    trace_s: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted float64 offsets (seconds) of all arrivals in ``[0, duration_s)``."""
    if rate_qps <= 0 or duration_s <= 0:
        raise ValueError("rate_qps and duration_s must be positive")
    if arrival == "trace":
        if trace_s is None:
            raise ValueError("--arrival trace needs the trace's times")
        return _trace_offsets_s(trace_s, rate_qps, duration_s)
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


def _trace_period_s(trace_s: np.ndarray) -> float:
    """One pass of the trace, in trace seconds: its span plus one mean gap."""
    n = len(trace_s)
    return float(trace_s[-1]) * n / (n - 1)


def trace_passes(trace_s: np.ndarray, rate_qps: float, duration_s: float) -> float:
    """How many passes of the trace a level of ``duration_s`` at ``rate_qps`` makes (0.25: its
    first quarter; 2.5: twice over, then half of it again)."""
    n = len(trace_s)
    trace_rate = (n - 1) / float(trace_s[-1])
    return duration_s * rate_qps / trace_rate / _trace_period_s(trace_s)


def _trace_offsets_s(trace_s: np.ndarray, rate_qps: float, duration_s: float) -> np.ndarray:
    n = len(trace_s)
    if n < 2 or trace_s[-1] <= 0:
        raise ValueError("a trace needs at least 2 arrivals over a positive span")
    scale = (n - 1) / float(trace_s[-1]) / rate_qps  # level seconds per trace second
    period_s = _trace_period_s(trace_s)
    window_s = duration_s / scale  # the level's window in trace seconds
    passes = max(1, math.ceil(window_s / period_s))
    times = (trace_s[None, :] + period_s * np.arange(passes)[:, None]).ravel()
    times = times[: int(np.searchsorted(times, window_s, side="left"))]
    offsets: np.ndarray = times * scale
    return offsets
