"""Choosing the next level of an adaptive sweep (``--qps auto``), pure.

``next_qps(history, plan)`` looks at the levels run so far, as ``(qps_target, state)`` pairs
with the states of ``saturation``, and returns the next target or ``None`` to stop:

1. ramp: start at ``start_qps`` and double until a level is saturated or ``max_qps`` is run;
2. bisect: between the highest unsaturated level below the lowest saturated one (``lo``) and
   that saturated level (``hi``), run ``(lo + hi) / 2`` until ``(hi - lo) / lo <= precision``;
3. if even the first level saturates, halve downwards (at most down to ``start_qps / 16``);
4. a ``client_limited`` level (the generator fell behind) is no evidence either way: it is
   repeated once, since a shared machine can stall for a moment; a second one ends the search,
   because higher rates would measure the client.

Targets are rounded to 3 significant digits.  The time budget is enforced by the sweep, which
also makes every level at least ``level_duration_s`` long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_LEVEL_REQUESTS = 50
STEADY_E2E_FACTOR = 4.0


@dataclass(frozen=True)
class AutoPlan:
    """Settings of an adaptive sweep."""

    start_qps: float = 1.0
    max_qps: float = 1000.0
    precision: float = 0.1
    budget_s: float = 900.0


def _round(qps: float) -> float:
    return float(f"{qps:.3g}")


def rerun_due(history: Sequence[tuple[float, str]]) -> bool:
    """The level just run was ``client_limited`` for the first time at its target: run it
    once more (a shared machine can stall for a moment; such a level says nothing about the
    server).  Shared by fixed lists and the adaptive search."""
    if not history or history[-1][1] != "client_limited":
        return False
    target = history[-1][0]
    return sum(1 for q, state in history if q == target and state == "client_limited") == 1


def next_qps(
    history: Sequence[tuple[float, str]], plan: AutoPlan, rerun: bool = True
) -> float | None:
    """The next level's target QPS, or ``None`` when the search is over (``rerun=False``:
    at the first ``client_limited`` level instead of the second)."""
    if not history:
        return _round(plan.start_qps)
    limited = [q for q, state in history if state == "client_limited"]
    if len(limited) > (1 if rerun else 0):
        return None
    if rerun_due(history):
        return history[-1][0]
    history = [(q, state) for q, state in history if state != "client_limited"]
    done = {q for q, _ in history}
    saturated = [q for q, state in history if state == "saturated"]
    if not saturated:
        top = max(done)
        return None if top >= plan.max_qps else _round(min(2 * top, plan.max_qps))
    hi = min(saturated)
    below = [q for q, state in history if state != "saturated" and q < hi]
    if not below:
        lower = _round(hi / 2)
        return None if lower < plan.start_qps / 16 or lower in done else lower
    lo = max(below)
    middle = _round((lo + hi) / 2)
    if (hi - lo) / lo <= plan.precision or middle in done:
        return None
    return middle


def level_duration_s(qps: float, duration_s: float, e2e_p50_s: float | None) -> float:
    """How long a level must run to be trusted: ``duration_s``, but at least
    ``MIN_LEVEL_REQUESTS`` arrivals and ``STEADY_E2E_FACTOR`` x the probe's median E2E (so the
    second half of the window, where the saturation signals are read, is in steady state)."""
    steady = STEADY_E2E_FACTOR * e2e_p50_s if e2e_p50_s else 0.0
    return max(duration_s, MIN_LEVEL_REQUESTS / qps, steady)
