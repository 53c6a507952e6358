"""Choosing the next level of an adaptive sweep (``--qps auto``), pure.

``next_level(levels, plan, saturation)`` looks at the verdict's states of the levels run so far
(``verdict.LevelState``, judged on *offered* rates) and returns the next ``(target,
duration factor)`` or ``None`` to stop:

1. ramp: start at ``start_qps`` and double the target until a level is ``saturated`` or
   ``max_qps`` is run;
2. narrow: between ``lo``, the highest offered rate proved sustainable below ``hi``, the
   lowest offered rate proved saturated, until ``(hi - lo) / lo <= precision``.  The next
   target is the midpoint, or, when the verdict's saturation interval lies inside ``(lo,
   hi)``, a probe just outside it (``precision / 4`` beyond its end on the side with the wider
   gap), where the level is expected to be decisive;
3. a target that was run already and left the boundary open is run again with its duration
   doubled (``MAX_EXTENSIONS`` times at most): more requests where the level was inconclusive;
4. if even the first level saturates, halve downwards (at most down to ``start_qps / 16``);
5. a ``client_limited`` level (the generator fell behind) is no evidence either way: it is
   repeated once, since a shared machine can stall for a moment; a second one ends the search,
   because higher rates would measure the client.

Targets are rounded to 3 significant digits.  The time budget is enforced by the sweep, which
also makes every level at least ``level_duration_s`` long.
"""

from __future__ import annotations

from collections.abc import Sequence

from qpsweep.analysis.estimate import Estimate
from qpsweep.analysis.verdict import LevelState
from qpsweep.config.thresholds import AutoPlan

MIN_LEVEL_REQUESTS = 50
MAX_EXTENSIONS = 2
STEADY_E2E_FACTOR = 4.0


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


def _narrow(
    levels: Sequence[LevelState], plan: AutoPlan, saturation: Estimate | None
) -> float | None:
    """The next target once a level is saturated (rules 2 and 4), before rounding."""
    hi = min(st.offered_qps for st in levels if st.state == "saturated")
    below = [st.offered_qps for st in levels if st.sustainable and st.offered_qps < hi]
    if not below:
        lower = hi / 2
        return None if lower < plan.start_qps / 16 else lower
    lo = max(below)
    if (hi - lo) / lo <= plan.precision:
        return None
    target = (lo + hi) / 2
    if saturation is not None and lo < saturation.low and saturation.high < hi:
        probe_below = saturation.low * (1 - plan.precision / 4)
        probe_above = saturation.high * (1 + plan.precision / 4)
        wider_below = (saturation.low - lo) / lo >= (hi - saturation.high) / saturation.high
        target = probe_below if wider_below else probe_above
        target = min(max(target, lo * (1 + plan.precision / 4)), hi / (1 + plan.precision / 4))
    return target


def next_level(
    levels: Sequence[LevelState],
    plan: AutoPlan,
    saturation: Estimate | None = None,
    rerun: bool = True,
) -> tuple[float, float] | None:
    """The next level's ``(target QPS, duration factor)``, or ``None`` when the search is over
    (``rerun=False``: at the first ``client_limited`` level instead of the second)."""
    if not levels:
        return _round(plan.start_qps), 1.0
    history = [(st.qps_target, st.state) for st in levels]
    limited = [q for q, state in history if state == "client_limited"]
    if len(limited) > (1 if rerun else 0):
        return None
    if rerun_due(history):
        return history[-1][0], 1.0
    judged = [st for st in levels if st.state not in ("client_limited", "no_requests")]
    if not judged:
        return None
    if not any(st.state == "saturated" for st in judged):
        top = max(st.qps_target for st in judged)
        return None if top >= plan.max_qps else (_round(min(2 * top, plan.max_qps)), 1.0)
    target = _narrow(judged, plan, saturation)
    if target is None:
        return None
    target = _round(target)
    runs = sum(1 for st in judged if st.qps_target == target)
    return None if runs > MAX_EXTENSIONS else (target, float(2**runs))


def level_duration_s(qps: float, duration_s: float, e2e_p50_s: float | None) -> float:
    """How long a level must run to be trusted: ``duration_s``, but at least
    ``MIN_LEVEL_REQUESTS`` arrivals and ``STEADY_E2E_FACTOR`` x the probe's median E2E (so the
    second half of the window, where the saturation signals are read, is in steady state)."""
    steady = STEADY_E2E_FACTOR * e2e_p50_s if e2e_p50_s else 0.0
    return max(duration_s, MIN_LEVEL_REQUESTS / qps, steady)
