"""The verdict's estimators with their intervals (pure); ``saturation`` states the model.

Inputs are per-level ``Window`` values: the offered rate and the counts of the steady window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ERROR_BOOTSTRAP = 400


@dataclass(frozen=True)
class Estimate:
    """A rate (QPS) with its two-sided interval; ``high`` is ``inf`` for a lower bound only."""

    value: float | None
    low: float
    high: float
    method: str
    n_levels: int = 0


@dataclass(frozen=True)
class Window:
    """One level as the estimators see it (see ``summary``'s steady-window counts)."""

    index: int
    offered_qps: float
    steady_s: float
    sent: int
    finished: int
    ok: int
    finish_se: float | None
    ok_se: float | None
    n: int
    failures: int
    plateau_s: float = 0.0  # the plateau window (analyze): its length, counts and batches
    plateau_finished: int = 0
    plateau_ok: int = 0
    batches: int = 10
    steady_finish_se: float | None = None  # batch-means error of F / steady_s
    steady_batches: int = 0
    sent_rate_se: float | None = None  # batch-means error of the offered rate
    plateau_floor_se: float = 0.0  # the least error of a plateau rate (edge resolution)
    steady_floor_se: float = 0.0  # the same for F / steady_s


def one_sided_z(confidence: float) -> float:
    """The one-sided normal critical value (2.326 at 0.99)."""
    from scipy.special import ndtri  # scipy loads slowly: only when judging

    return float(ndtri(confidence))


def growth_z(w: Window) -> float | None:
    """The queue growth test as a one-sided normal score: how far the offered rate is above
    the steady window's finish rate, ``d = n / W - F / T`` (W = n / offered, the arrival
    window), over ``sqrt(v_a + v_f)``.

    The null hypothesis is that the server keeps up, whose boundary is an arrival rate equal
    to the finish rate, so the offered rate's variance is taken there (a score test):
    ``v_a = D * min(offered, F / T) / W``, Poisson's ``rate / W`` times the sends' index of
    dispersion ``D = max(1, sent_rate_se^2 W / offered)`` (batch means of the sends: 1 for
    Poisson, more for burstier schedules).  While the server keeps up, both rates estimate
    the arrival rate and covary positively, so ``v_a + v_f`` bounds Var(d).  ``v_f`` is
    read two ways and the smaller score is returned (the evidence must hold under both):
    the batch means ``steady_finish_se^2`` as a t score with Welch-Satterthwaite dof
    (``steady_batches - 1`` for the batch part), mapped to the normal score with the same
    tail, and the edge-resolution floor ``steady_floor_se^2`` as a normal score (a fixed
    service time finishes in waves the batches cannot see).  Without the batch-means fields
    (older summaries): the Skellam bound ``(A - F) / sqrt(A + F)``."""
    if w.steady_s <= 0 or w.n < 1 or w.offered_qps <= 0:
        return None
    if w.steady_finish_se is None or w.steady_batches < 2:
        total = w.sent + w.finished
        return None if total < 1 else (w.sent - w.finished) / float(np.sqrt(total))
    from scipy.special import ndtri, stdtr

    finish_qps = w.finished / w.steady_s
    gap = w.offered_qps - finish_qps
    arrival_window_s = w.n / w.offered_qps
    dispersion = max(1.0, (w.sent_rate_se or 0.0) ** 2 * arrival_window_s / w.offered_qps)
    v_a = dispersion * min(w.offered_qps, finish_qps) / arrival_window_s

    def score(v_f: float, dof: float | None) -> float:
        """The normal score of ``gap`` with ``v_f``; a t score first when ``dof`` is set."""
        if v_a + v_f <= 0:
            return float(np.copysign(np.inf, gap)) if gap else 0.0
        z = gap / float(np.sqrt(v_a + v_f))
        return z if dof is None else float(-ndtri(stdtr(dof, -z)))  # the t tail's normal score

    v_b = w.steady_finish_se**2
    dof = (v_a + v_b) ** 2 / (v_b**2 / (w.steady_batches - 1)) if v_b > 0 else None
    return min(score(v_b, dof), score(w.steady_floor_se**2, None))


def seconds_to_decide(offered_qps: float, rate_qps: float, confidence: float) -> float | None:
    """How long a steady window must be for the growth test to see ``offered - rate``, at
    most: ``z_c^2 (offered + rate) / (offered - rate)^2`` seconds (``None`` when they are
    equal); Poisson-like finishes, and the offered rate read over the steady window only.
    The test reads the offered rate over the whole level, and steadier finishes need less."""
    gap = offered_qps - rate_qps
    if abs(gap) < 1e-9:
        return None
    return one_sided_z(confidence) ** 2 * (offered_qps + rate_qps) / gap**2


def share_bounds(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds ``(low, high)`` on a share ``k/n``, each at
    ``confidence``."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.special import betaincinv  # the beta distribution's quantile

    a = 1.0 - confidence
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, a))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - a))
    return low, high


def _pooled(ws: Sequence[Window], ok: bool, confidence: float) -> tuple[float, float]:
    """``(rate, half-width)`` of the pooled rate over ``ws`` (see ``saturation``): the
    larger of the batch-means interval (Student t, the batches' dof) and the normal interval
    of the edge-resolution floor, so that it covers a random server (batches) and a
    deterministic one (the floor) alike."""
    from scipy.special import ndtri, stdtrit  # the normal's and Student t's quantiles

    total_s = sum(w.plateau_s for w in ws)
    count = sum(w.plateau_ok if ok else w.plateau_finished for w in ws)
    se = np.sqrt(sum((w.plateau_s * ((w.ok_se if ok else w.finish_se) or 0.0)) ** 2 for w in ws))
    floor = np.sqrt(sum((w.plateau_s * w.plateau_floor_se) ** 2 for w in ws))
    crit = float(stdtrit(sum(max(w.batches - 1, 1) for w in ws), 0.5 + confidence / 2))
    half = max(crit * float(se), float(ndtri(0.5 + confidence / 2)) * float(floor))
    return count / total_s, half / total_s


def plateau(
    windows: Sequence[Window], overloaded: set[int], ok: bool, confidence: float
) -> Estimate:
    """The completion plateau over the overloaded levels, grown to a fixed point: a level
    whose offered rate is above the interval's upper end joins (at most ``len`` rounds).
    Without an overloaded level: the demonstrated lower bound ``max(rate - half)``.  Lower
    ends are floored at 0."""
    usable = [w for w in windows if w.plateau_s > 0]
    name = "successes" if ok else "finishes"
    members = {w.index for w in usable if w.index in overloaded}
    if not members:
        lows = [r - h for r, h in (_pooled([w], ok, confidence) for w in usable)]
        return Estimate(None, max([0.0, *lows]), float("inf"), f"lower bound ({name})")
    for _ in range(len(usable)):
        rate, half = _pooled([w for w in usable if w.index in members], ok, confidence)
        grown = members | {w.index for w in usable if w.offered_qps > rate + half}
        if grown == members:
            break
        members = grown
    low = max(0.0, rate - half)  # a rate is never negative (few or no successes: wide)
    return Estimate(rate, low, rate + half, f"plateau ({name})", len(members))


def _isotonic(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing least-squares fit of ``y``."""
    blocks: list[list[float]] = []  # [mean, weight, size]
    for value, weight in zip(y.tolist(), weights.tolist(), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, _, n in blocks])


def crossing(x: np.ndarray, share: np.ndarray, n: np.ndarray, limit: float) -> float:
    """Where the isotonic share first exceeds ``limit``, linearly between levels; the lowest
    level when it already does (the interval then starts at 0), ``inf`` when none does."""
    fit = _isotonic(share, n)
    over = np.nonzero(fit > limit)[0]
    if not over.size:
        return float("inf")
    j = int(over[0])
    if j == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[j - 1], x[j], fit[j - 1], fit[j]
    return float(x0 + (limit - y0) * (x1 - x0) / (y1 - y0))


def error_crossing(
    windows: Sequence[Window], limit: float, confidence: float, seed: int = 0
) -> Estimate | None:
    """The offered rate where the failure share crosses ``limit``, with a bootstrap interval;
    ``None`` when no level's share is over it."""
    ws = sorted((w for w in windows if w.n), key=lambda w: w.offered_qps)
    if not ws:
        return None
    x = np.array([w.offered_qps for w in ws])
    n = np.array([w.n for w in ws])
    p = np.array([w.failures for w in ws]) / n
    value = crossing(x, p, n, limit)
    if not np.isfinite(value):
        return None
    rng = np.random.default_rng(seed)
    boots = [crossing(x, rng.binomial(n, p) / n, n, limit) for _ in range(ERROR_BOOTSTRAP)]
    low = float(np.quantile(boots, 0.5 - confidence / 2, method="lower"))
    high = np.quantile(boots, 0.5 + confidence / 2, method="higher")
    if _isotonic(p, n)[0] > limit:  # crossed below the lowest level: nothing known beneath
        low = 0.0
    return Estimate(value, float(min(low, value)), float(max(high, value)), "error crossing")
