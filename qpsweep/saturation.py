"""The saturation verdict (pure): a state per level, the latency knee, and the QPS to run at.

Level states, first match wins (thresholds in ``Thresholds``):

0. ``no_requests``: nothing was sent (a schedule too short for its rate to draw any arrival,
   or a run interrupted before the level's first send); left out of the verdict.
1. ``client_limited``: the load generator fell behind systematically: more than
   ``late_share`` of the level's sends, and at least ``min_late_sends`` of them, went out over
   ``analyze.LATE_SEND_MS`` late (``n_late_sends``), or offered < ``offered_min_ratio`` x the
   schedule's own rate.  Such a level describes the client and is never used as evidence about
   the server.  A brief stall that delays only a few requests (p99 > ``stall_p99_ms``, not
   client-limited) is reported by the report as a note instead: measured on this project's
   2-core VMs, isolated stalls of up to 100 ms hit a few requests now and then whatever the
   load.  The count (rather than a p95 of the lag) keeps one late send among the handful of a
   short level from condemning it: with 9 sends, numpy's p95 is mostly the largest lag.
2. ``saturated``, naming each signal that fired: ``error_rate`` (first-try failures / sent >
   ``max_error_rate``: with ``--retries`` a request that needed a retry counts as a failure
   here, so that retries never hide saturation), ``throughput_plateau`` (completion_ratio <
   ``plateau_ratio``), ``queue_growth`` (queue_growth > ``queue_growth``), and only for a
   level too short to measure those two, ``latency_knee`` (offered above the knee's upper
   bound and the knee metric's p95 > ``knee_factor`` x baseline + slack).  Latency alone does
   not make a level saturated while the server still completes what it is offered: measured
   against the built-in simulator, p95 TTFT rises steeply from about 0.75x capacity, while the
   throughput signals switch on at capacity.
3. ``degraded``: p95 TTFT or p95 E2E > ``degrade_factor`` x baseline + ``degrade_slack_s``, or
   p95 E2E > ``max_p95_latency_s`` when given.
4. ``ok``.

The baseline is the p95 TTFT and E2E of the lowest-offered level that is not client-limited
and whose error rate is within ``max_error_rate``.

Knee (``find_knee``), for p95 TTFT and for p95 E2E against offered QPS over the levels that are
not client-limited: the continuous two-segment least-squares fit
``y = a + b x + c max(0, x - k)``, with ``k`` searched on a grid between the second-lowest and
second-highest level.  It is accepted when the slope after the knee, ``b + c``, is at least
``KNEE_SLOPE_RATIO`` times the slope before it and the fit removes at least half of a straight
line's squared error.  Its interval is the 5th-95th percentile of ``k`` over ``BOOTSTRAP``
refits on p95s recomputed from each level's requests resampled with replacement (fixed seed).
Cross-check: Kneedle on the same points (x and y scaled to [0, 1]; the knee is the level
farthest below the chord).  ``knee_qps`` is the lower of the TTFT and E2E knees.

Across levels: ``saturation_qps`` is the lowest offered QPS of a saturated level;
``max_sustainable_qps`` the highest offered QPS of an ``ok`` level below it;
``recommended_qps`` = ``headroom`` x max_sustainable, never above the knee's lower bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from qpsweep.analyze import LevelSummary
from qpsweep.slo import Slo, describe

KNEE_SLOPE_RATIO = 3.0
BOOTSTRAP = 200
MIN_KNEE_LEVELS = 4
_GRID = 200
Samples = Mapping[int, tuple[np.ndarray, np.ndarray]]  # level index -> (ttft_s, e2e_s)


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the verdict; the defaults are documented in the README."""

    max_error_rate: float = 0.05
    max_p95_latency_s: float | None = None
    headroom: float = 0.75
    late_share: float = 0.05
    min_late_sends: int = 2
    stall_p99_ms: float = 25.0
    offered_min_ratio: float = 0.95
    plateau_ratio: float = 0.9
    queue_growth: float = 0.15
    degrade_factor: float = 2.5
    degrade_slack_s: float = 0.1
    knee_factor: float = 4.0
    slos: tuple[Slo, ...] = ()


@dataclass(frozen=True)
class Knee:
    """A knee of one latency metric against offered QPS, with its bootstrap interval."""

    metric: str
    qps: float
    low: float
    high: float
    slope_before: float
    slope_after: float
    kneedle_qps: float | None


@dataclass(frozen=True)
class LevelState:
    """The verdict on one level."""

    index: int
    qps_target: float
    offered_qps: float
    state: str
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The answer across levels; ``reason`` says it in plain words."""

    levels: tuple[LevelState, ...]
    saturation_qps: float | None
    saturation_signals: tuple[str, ...]
    knee: Knee | None
    knees: tuple[Knee, ...]
    max_sustainable_qps: float | None
    recommended_qps: float | None
    headroom: float
    reason: str
    suggestion: str | None


def _hinge_fits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every grid knee k: (k, coefficients (a, b, c), squared error), vectorised."""
    xs = np.sort(x)
    ks = np.linspace(xs[1], xs[-2], _GRID)
    design = np.stack(
        [
            np.ones((_GRID, x.size)),
            np.broadcast_to(x, (_GRID, x.size)),
            np.maximum(0, x - ks[:, None]),
        ],
        axis=2,
    )
    gram = design.transpose(0, 2, 1) @ design + 1e-12 * np.eye(3)
    coef = np.linalg.solve(gram, (design.transpose(0, 2, 1) @ y)[:, :, None])[:, :, 0]
    sse = ((design @ coef[:, :, None])[:, :, 0] - y) ** 2
    return ks, coef, sse.sum(axis=1)


def fit_knee(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Best accepted knee ``(k, slope_before, slope_after)`` of points ``(x, y)``, else None."""
    if x.size < MIN_KNEE_LEVELS or np.ptp(x) <= 0:
        return None
    ks, coef, sse = _hinge_fits(x, y)
    best = int(np.argmin(sse))
    _, before, bend = coef[best]
    after = before + bend
    line_sse = float(np.sum((np.polyval(np.polyfit(x, y, 1), x) - y) ** 2))
    explains = line_sse > 0 and sse[best] <= 0.5 * line_sse
    if bend <= 0 or after < KNEE_SLOPE_RATIO * max(before, 0.0) or not explains:
        return None
    return float(ks[best]), float(before), float(after)


def kneedle(x: np.ndarray, y: np.ndarray) -> float | None:
    """Kneedle's knee of an increasing convex curve: the point farthest below the chord."""
    if x.size < 3 or np.ptp(x) <= 0 or np.ptp(y) <= 0:
        return None
    order = np.argsort(x)
    xn = (x[order] - x.min()) / np.ptp(x)
    yn = (y[order] - y.min()) / np.ptp(y)
    return float(x[order][int(np.argmax(xn - yn))])


def find_knee(
    metric: str, x: np.ndarray, samples: Sequence[np.ndarray], seed: int = 0
) -> Knee | None:
    """The knee of p95(``samples[i]``) against ``x[i]`` with a bootstrap interval."""
    keep = [i for i, s in enumerate(samples) if s.size]
    x = np.asarray(x, dtype=float)[keep]
    samples = [samples[i] for i in keep]
    y = np.array([np.percentile(s, 95) for s in samples])
    fitted = fit_knee(x, y)
    if fitted is None:
        return None
    rng = np.random.default_rng(seed)
    ks = []
    for _ in range(BOOTSTRAP):
        y_boot = np.array([np.percentile(rng.choice(s, s.size), 95) for s in samples])
        refit = fit_knee(x, y_boot)
        if refit is not None:
            ks.append(refit[0])
    low, high = np.percentile(ks, [5, 95]) if ks else (fitted[0], fitted[0])
    k, before, after = fitted
    return Knee(metric, k, float(min(low, k)), float(max(high, k)), before, after, kneedle(x, y))


def too_many_late(n_late_sends: int, n_sent: int, t: Thresholds) -> bool:
    """True when more than ``late_share`` of ``n_sent`` sends, and at least
    ``min_late_sends``, were late: the generator (or a shard) fell behind, not a brief stall."""
    return n_late_sends >= t.min_late_sends and n_late_sends > t.late_share * n_sent


def client_limited(s: LevelSummary, t: Thresholds) -> bool:
    """True when the generator fell behind systematically at this level (see module doc)."""
    return too_many_late(s.n_late_sends, s.n_sent, t) or (
        s.scheduled_qps > 0 and s.offered_qps < t.offered_min_ratio * s.scheduled_qps
    )


def stalled(s: LevelSummary, t: Thresholds) -> bool:
    """True when a brief stall delayed a few sends (p99 high) without the level being behind."""
    lag99 = s.send_lag_ms.get(99.0)
    return lag99 is not None and lag99 > t.stall_p99_ms and not client_limited(s, t)


def _over(value: float | None, base: float | None, factor: float, slack_s: float) -> bool:
    return value is not None and base is not None and value > factor * base + slack_s


def _state(
    s: LevelSummary, base: tuple[float | None, float | None], knee: Knee | None, t: Thresholds
) -> LevelState:
    p95 = {"ttft": s.ttft_s.get(95.0), "e2e": s.e2e_s.get(95.0)}
    signals = []
    if s.first_try_error_rate > t.max_error_rate:
        signals.append("error_rate")
    if s.completion_ratio is not None and s.completion_ratio < t.plateau_ratio:
        signals.append("throughput_plateau")
    if s.queue_growth is not None and s.queue_growth > t.queue_growth:
        signals.append("queue_growth")
    knee_base = base[0] if knee is not None and knee.metric == "ttft" else base[1]
    unmeasured = s.completion_ratio is None and s.queue_growth is None
    beyond = knee is not None and unmeasured and s.offered_qps > knee.high
    if beyond and knee and _over(p95[knee.metric], knee_base, t.knee_factor, t.degrade_slack_s):
        signals.append("latency_knee")
    if signals:
        return LevelState(s.index, s.qps_target, s.offered_qps, "saturated", tuple(signals))
    if t.slos and s.slo_met is False:
        return LevelState(s.index, s.qps_target, s.offered_qps, "degraded", ("slo_missed",))
    slow = not t.slos and (
        _over(p95["ttft"], base[0], t.degrade_factor, t.degrade_slack_s)
        or _over(p95["e2e"], base[1], t.degrade_factor, t.degrade_slack_s)
    )
    limit = t.max_p95_latency_s
    if slow or (limit is not None and p95["e2e"] is not None and p95["e2e"] > limit):
        return LevelState(s.index, s.qps_target, s.offered_qps, "degraded")
    return LevelState(s.index, s.qps_target, s.offered_qps, "ok")


SIGNAL_WORDS = {
    "error_rate": "more than {max_error:.0%} of its requests failed",
    "throughput_plateau": "it completed fewer requests than were offered",
    "queue_growth": "requests in flight kept growing",
    "latency_knee": "the level was too short to measure throughput, and latency was far past "
    "the knee of the curve",
}


def _fmt(qps: float) -> str:
    return f"{qps:.3g}"


def assess(
    summaries: Sequence[LevelSummary], samples: Samples, thresholds: Thresholds = Thresholds()
) -> Verdict:
    """The verdict on a run's levels (any order); ``samples`` feed the knee's bootstrap."""
    t = thresholds
    levels = sorted(summaries, key=lambda s: s.offered_qps)
    valid = [s for s in levels if s.n_sent and not client_limited(s, t)]
    calm = [s for s in valid if s.first_try_error_rate <= t.max_error_rate]
    base = (calm[0].ttft_s.get(95.0), calm[0].e2e_s.get(95.0)) if calm else (None, None)
    x = np.array([s.offered_qps for s in valid])
    empty = np.empty(0)
    knees = tuple(
        k
        for metric, pos in (("ttft", 0), ("e2e", 1))
        if (k := find_knee(metric, x, [samples.get(s.index, (empty, empty))[pos] for s in valid]))
    )
    knee = min(knees, key=lambda k: k.qps) if knees else None
    valid_ids = {s.index for s in valid}
    states = [
        _state(s, base, knee, t)
        if s.index in valid_ids
        else LevelState(
            s.index, s.qps_target, s.offered_qps, "client_limited" if s.n_sent else "no_requests"
        )
        for s in levels
    ]
    saturated = [st for st in states if st.state == "saturated"]
    first_sat = saturated[0] if saturated else None
    ceiling = first_sat.offered_qps if first_sat else float("inf")
    ok = [st for st in states if st.state == "ok" and st.offered_qps < ceiling]
    sustainable = ok[-1].offered_qps if ok else None
    recommended = None
    if sustainable is not None:
        recommended = t.headroom * sustainable
        if knee is not None:
            recommended = min(recommended, knee.low)
    verdict = Verdict(
        levels=tuple(sorted(states, key=lambda st: st.index)),
        saturation_qps=first_sat.offered_qps if first_sat else None,
        saturation_signals=first_sat.signals if first_sat else (),
        knee=knee,
        knees=knees,
        max_sustainable_qps=sustainable,
        recommended_qps=recommended,
        headroom=t.headroom,
        reason="",
        suggestion=_suggestion(states, valid),
    )
    return _with_reason(verdict, t)


def _suggestion(states: Sequence[LevelState], valid: Sequence[LevelSummary]) -> str | None:
    if not valid:
        return None
    judged = [st for st in states if st.state not in ("client_limited", "no_requests")]
    top, bottom = max(st.offered_qps for st in judged), min(st.offered_qps for st in judged)
    if all(st.state != "saturated" for st in judged):
        levels = ",".join(_fmt(top * f) for f in (1.5, 2, 3, 4))
        return f"No level saturated the server: rerun with higher levels, e.g. --qps {levels}"
    if all(st.state == "saturated" for st in judged):
        levels = ",".join(_fmt(bottom * f) for f in (0.125, 0.25, 0.5, 0.75))
        return f"Every level saturated the server: rerun with lower levels, e.g. --qps {levels}"
    return None


def _with_reason(v: Verdict, t: Thresholds) -> Verdict:
    words = []
    limited = [_fmt(st.qps_target) for st in v.levels if st.state == "client_limited"]
    if limited:
        words.append(
            f"The load generator fell behind at {', '.join(limited)} QPS: those levels describe "
            "the client and are left out of the verdict."
        )
    if v.saturation_qps is not None:
        fmt = {"max_error": t.max_error_rate}
        why = "; ".join(SIGNAL_WORDS[s].format(**fmt) for s in v.saturation_signals)
        names = ", ".join(v.saturation_signals)
        words.append(f"The server saturated at {_fmt(v.saturation_qps)} QPS ({names}: {why}).")
    if v.knee is not None:
        k = v.knee
        steeper = k.slope_after / max(k.slope_before, 1e-9)
        words.append(
            f"Its p95 {k.metric.upper()} bends upward at {_fmt(k.qps)} QPS (90% interval "
            f"{_fmt(k.low)}-{_fmt(k.high)}), rising {steeper:.0f}x faster per QPS beyond it."
        )
    if v.max_sustainable_qps is not None and v.recommended_qps is not None:
        how = f"{t.headroom:g} x {_fmt(v.max_sustainable_qps)}"
        if v.knee is not None and v.recommended_qps == v.knee.low:
            how = f"the knee's lower bound, below {how}"
        meets = (
            f"meeting the SLO ({describe(t.slos)})"
            if t.slos
            else f"and p95 latency within {t.degrade_factor:g}x of the lightest level"
        )
        words.append(
            f"The highest level with no saturation signal {meets} was "
            f"{_fmt(v.max_sustainable_qps)} QPS: set the production limit at "
            f"{_fmt(v.recommended_qps)} QPS ({how})."
        )
    elif len(limited) < len(v.levels):
        fast = f"met the SLO ({describe(t.slos)})" if t.slos else "was fast enough"
        words.append(f"No level was unsaturated and {fast} to call sustainable.")
    if v.suggestion:
        words.append(v.suggestion + ".")
    return replace(v, reason=" ".join(words))
