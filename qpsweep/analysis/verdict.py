"""The saturation verdict (pure): estimates with 99% intervals, then a state per level.

The server is modelled as having one *saturation rate* ``lambda*``: below it the requests in
flight are stationary and refusals stay within ``max_error_rate``; above it they are not.
Every figure is an estimate from all levels together, with a two-sided ``confidence``
(default 99%) interval, and each level's state follows from comparing its offered rate with
that interval (so states are consistent with offered load by construction).  Per level, over
the window ``[w/2, w]`` of length T (``summary``): A sends, F requests that ended, C of them
successful, so A - F is the growth of the in-flight count.

Estimators (``docs/verdict.md`` derives them):

* **queue growth test** (per level, ``estimate.growth_z``): the offered rate over the whole
  level less the finish rate over the steady window, over the square root of the sum of
  their variances (Poisson or the sends' batch means; the finishes' batch means), a t score
  with Welch-Satterthwaite dof mapped to a normal score.  While the server keeps up both
  rates estimate the arrival rate with a non-negative covariance, so the sum bounds the
  variance.  A score ``> z_c`` (one-sided, 2.33 at 99%) proves the queue grew: the level is
  ``saturated`` (``queue_growth``).  The test needs at most
  ``T >= z_c^2 (lambda + mu) / (lambda - mu)^2`` seconds to see an overload lambda - mu.
* **stationarity boundary** (``saturation``'s queue part) and **capacity** (the plateau):
  the pooled success rate of the *overloaded* levels, those with a growing queue and those
  above the pooled estimate's upper bound (a fixed point), each over its plateau window
  (``summary``: the steady window, run on through the drain while the server has as much
  work as it had in it): ``mu = sum C_i / sum T_i``, its standard error from each level's
  batch-means error, ``se = sqrt(sum (T_i se_i)^2) / sum T_i``, interval ``mu +- t(dof) se``
  (Student t, dof = sum (batches_i - 1)). In the window, lambda - growth = F / T, so for a
  work-conserving server the rate where the queue stops being stationary and the completion
  plateau are the same number (successes, since a request that timed out leaves the queue
  without being served); ``capacity_qps`` pools the levels proved refusing too. Without an
  overloaded level only a lower bound exists: ``max_i (F_i / T_i - t se_i)``, what the
  server demonstrably completed.
* **error crossing**: the first-try failure share of each level (``k/n``), made
  non-decreasing in offered load (pool-adjacent-violators, weights n), is interpolated
  linearly to the rate where it crosses ``max_error_rate``; interval: percentiles of
  ``ERROR_BOOTSTRAP`` parametric resamples ``k* ~ Binomial(n, k/n)`` (fixed seed).  A level
  whose one-sided Clopper-Pearson lower bound exceeds ``max_error_rate`` is ``saturated``
  (``error_rate``) on its own.
* ``saturation_qps`` = the lower of the stationarity boundary and the error crossing, with the
  lower ends of their intervals.

Level states, first match wins:

0. ``no_requests`` (nothing sent) and 1. ``client_limited`` (the generator fell behind: more
   than ``late_share`` of the sends, and at least ``min_late_sends``, over
   ``analyze.LATE_SEND_MS`` late, or offered < ``offered_min_ratio`` x scheduled): no evidence.
2. ``saturated``: its own test (``queue_growth``, ``error_rate``), or offered above the upper
   end of the saturation interval (``above_saturation``).
3. ``inconclusive``: neither proved: offered inside the interval, above the demonstrated lower
   bound when no level was overloaded, or a failure share over ``max_error_rate`` that is not
   yet significant.  ``LevelState.needs`` says what would decide it.
4. sustainable, offered below the interval's lower end and failures within
   ``max_error_rate``: ``degraded`` when the SLO was missed, or (without ``--slo``) its p95
   TTFT or E2E > ``degrade_factor`` x the lightest level's + ``degrade_slack_s``, or p95 E2E >
   ``max_p95_latency_s``; else ``ok``.  Degraded is reported, never a limit.

Across levels: ``max_sustainable_qps`` is the highest rate proved sustainable: the highest
offered rate of a sustainable level or, without an SLO, the lower end of the saturation
interval when that is higher (below it the queue is stationary and failures within the limit,
whether a level ran there or not); with an SLO, the highest sustainable level meeting it.
``recommended_qps`` = ``headroom`` x that, with the p95
TTFT and E2E expected there (interpolated between levels).  ``certified_qps``: the highest
sustainable level whose every SLO, measured from the scheduled send, is certified by the
early-stopping rule (``qpsweep.analysis.early_stop``).  ``proved`` = (highest sustainable
offered rate below the lowest saturated one, lowest saturated offered rate).  The knee of p95
TTFT/E2E (two-segment fit, bootstrap interval, Kneedle cross-check) is reported, not used as a
limit.
A level proved saturated below one proved sustainable is a ``contradiction``, reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from qpsweep.analysis.early_stop import certified, failed, requests_needed
from qpsweep.analysis.estimate import (
    Estimate,
    Window,
    error_crossing,
    growth_z,
    one_sided_z,
    plateau,
    seconds_to_decide,
    share_bounds,
)
from qpsweep.analysis.summary import LevelSummary
from qpsweep.config.slo import describe
from qpsweep.config.thresholds import Thresholds

KNEE_SLOPE_RATIO = 3.0
BOOTSTRAP = 200
MIN_KNEE_LEVELS = 4
_GRID = 200
Samples = Mapping[int, tuple[np.ndarray, np.ndarray]]  # level index -> (ttft_s, e2e_s)


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
    """The verdict on one level; ``needs`` says what would decide an ``inconclusive`` one,
    ``growth_z`` is its queue growth test statistic, ``certified`` its SLO state
    (``met``, ``missed``, ``needs N requests`` or ``None`` without an SLO)."""

    index: int
    qps_target: float
    offered_qps: float
    state: str
    signals: tuple[str, ...] = ()
    needs: str | None = None
    growth_z: float | None = None
    certified: str | None = None

    @property
    def sustainable(self) -> bool:
        """Proved below saturation (``ok`` or ``degraded``)."""
        return self.state in ("ok", "degraded")


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
    saturation: Estimate | None = None
    capacity: Estimate | None = None
    errors: Estimate | None = None
    proved: tuple[float | None, float | None] = (None, None)
    certified_qps: float | None = None
    expected_at_recommended: tuple[float | None, float | None] = (None, None)
    contradictions: tuple[str, ...] = ()
    confidence: float = 0.99
    to_narrow: str | None = None


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


def window_of(s: LevelSummary) -> Window:
    """What the estimators take of a level."""
    failures = round(s.first_try_error_rate * s.n_sent)
    return Window(
        s.index,
        s.offered_qps,
        s.steady_s,
        s.steady_sent,
        s.steady_finished,
        s.steady_ok,
        s.finish_rate_se,
        s.ok_rate_se,
        s.n_sent,
        failures,
        s.plateau_s,
        s.plateau_finished,
        s.plateau_ok,
        s.plateau_batches,
        s.steady_finish_se,
        s.steady_batches,
        s.sent_rate_se,
        s.plateau_floor_se,
        s.steady_floor_se,
    )


SIGNAL_WORDS = {
    "error_rate": "significantly more than {max_error:.0%} of its requests failed",
    "queue_growth": "the requests in flight grew significantly",
    "above_saturation": "its offered rate was above the saturation interval",
}


def _fmt(qps: float | None) -> str:
    return "-" if qps is None else f"{qps:.3g}"


def _certify(s: LevelSummary, t: Thresholds) -> str | None:
    """``met`` / ``missed`` / ``needs N requests`` under every SLO (early stopping)."""
    if not t.slos or len(s.slo_tally) != len(t.slos):
        return None
    states = []
    for slo, (n, misses) in zip(t.slos, s.slo_tally, strict=True):
        if failed(n, misses, slo.percentile, t.confidence):
            return "missed"
        if certified(n, misses, slo.percentile, t.confidence):
            states.append(0)
        else:
            states.append(requests_needed(misses, slo.percentile, t.confidence))
    need = max(states)
    return "met" if need == 0 else f"needs {need} requests"


def _needs(s: LevelSummary, w: Window, sat: Estimate | None, queue: Estimate, t: Thresholds) -> str:
    """What would decide an inconclusive level."""
    low, _ = share_bounds(w.failures, w.n, t.confidence)
    share = w.failures / w.n if w.n else 0.0
    if share > t.max_error_rate and low <= t.max_error_rate:
        z = one_sided_z(t.confidence)
        n = z**2 * share * (1 - share) / (share - t.max_error_rate) ** 2
        return (
            f"about {max(n, w.n + 1):.0f} requests to tell its {share:.1%} failures from "
            f"--max-error-rate {t.max_error_rate:g}"
        )
    if queue.value is None and (sat is None or sat.value is None):
        return (
            f"a higher level that completes more than {_fmt(s.offered_qps)} QPS, or one that "
            "saturates the server"
        )
    rate = sat.value if sat is not None and sat.value is not None else queue.value
    seconds = None if rate is None else seconds_to_decide(s.offered_qps, rate, t.confidence)
    if seconds is None or seconds > 3600:
        return "more time above saturation (it sits at the saturation estimate)"
    return f"about {2 * seconds:.0f} s at this rate ({2 * seconds * s.offered_qps:.0f} requests)"


def _state(
    s: LevelSummary,
    w: Window,
    sat_low: float,
    sat_high: float,
    base: tuple[float | None, float | None],
    t: Thresholds,
) -> tuple[str, tuple[str, ...]]:
    """The state of a judged level and its signals (see the module docstring)."""
    z = growth_z(w)
    low, _ = share_bounds(w.failures, w.n, t.confidence)
    signals = []
    if low > t.max_error_rate:
        signals.append("error_rate")
    if z is not None and z > one_sided_z(t.confidence):
        signals.append("queue_growth")
    if s.offered_qps > sat_high:
        signals.append("above_saturation")
    if signals:
        return "saturated", tuple(signals)
    if s.offered_qps >= sat_low or w.failures > t.max_error_rate * w.n:
        return "inconclusive", ()
    if t.slos and s.slo_met is False:
        return "degraded", ("slo_missed",)
    p95 = (s.ttft_s.get(95.0), s.e2e_s.get(95.0))
    slow = not t.slos and any(
        _over(v, b, t.degrade_factor, t.degrade_slack_s) for v, b in zip(p95, base, strict=True)
    )
    limit = t.max_p95_latency_s
    if slow or (limit is not None and p95[1] is not None and p95[1] > limit):
        return "degraded", ()
    return "ok", ()


def _saturation(queue: Estimate, errors: Estimate | None) -> Estimate | None:
    """The lower of the stationarity boundary and the error crossing (``None``: neither)."""
    found = [e for e in (queue, errors) if e is not None and e.value is not None]
    if not found:
        return None
    best = min(found, key=lambda e: e.value or 0.0)
    return Estimate(
        best.value,
        min(e.low for e in found),
        min(e.high for e in found),
        best.method,
        best.n_levels,
    )


def _expected(levels: Sequence[LevelSummary], qps: float | None) -> tuple[float | None, ...]:
    """p95 TTFT and E2E at ``qps``, interpolated linearly between levels (clamped)."""
    out: list[float | None] = []
    for metric in ("ttft_s", "e2e_s"):
        pts = [(s.offered_qps, v) for s in levels if (v := getattr(s, metric).get(95.0))]
        if qps is None or not pts:
            out.append(None)
            continue
        xs, ys = zip(*sorted(pts), strict=True)
        out.append(float(np.interp(qps, xs, ys)))
    return tuple(out)


def assess(
    summaries: Sequence[LevelSummary], samples: Samples, thresholds: Thresholds = Thresholds()
) -> Verdict:
    """The verdict on a run's levels (any order); ``samples`` feed the knee's bootstrap."""
    t = thresholds
    levels = sorted(summaries, key=lambda s: s.offered_qps)
    valid = [s for s in levels if s.n_sent and not client_limited(s, t)]
    windows = {s.index: window_of(s) for s in valid}
    calm = [s for s in valid if s.first_try_error_rate <= t.max_error_rate]
    base = (calm[0].ttft_s.get(95.0), calm[0].e2e_s.get(95.0)) if calm else (None, None)
    zc = one_sided_z(t.confidence)
    grown = {i for i, w in windows.items() if (z := growth_z(w)) is not None and z > zc}
    refused = {  # proved over --max-error-rate: the error_rate signal
        i
        for i, w in windows.items()
        if share_bounds(w.failures, w.n, t.confidence)[0] > t.max_error_rate
    }
    ws = list(windows.values())
    queue = plateau(ws, grown, ok=True, confidence=t.confidence)
    capacity = plateau(ws, grown | refused, ok=True, confidence=t.confidence)
    errors = error_crossing(ws, t.max_error_rate, t.confidence)
    sat = _saturation(queue, errors)
    sat_low = sat.low if sat is not None else queue.low
    sat_high = sat.high if sat is not None else float("inf")
    states: list[LevelState] = []
    for s in levels:
        if s.index not in windows:
            gone = "client_limited" if s.n_sent else "no_requests"
            states.append(LevelState(s.index, s.qps_target, s.offered_qps, gone))
            continue
        w = windows[s.index]
        state, signals = _state(s, w, sat_low, sat_high, base, t)
        needs = _needs(s, w, sat, queue, t) if state == "inconclusive" else None
        cert = _certify(s, t)
        z = growth_z(w)
        states.append(
            LevelState(s.index, s.qps_target, s.offered_qps, state, signals, needs, z, cert)
        )
    shown = _demonstrated(list(windows.values()), t.confidence)
    clash = tuple(
        f"{_fmt(st.offered_qps)} QPS had a growing queue, yet a level completed {_fmt(shown)} QPS"
        for st in states
        if "queue_growth" in st.signals and shown > st.offered_qps
    )
    return _judge_levels(levels, states, valid, samples, t, sat, capacity, errors, clash)


def _demonstrated(windows: list[Window], confidence: float) -> float:
    """The highest finish rate a level proved (its lower bound)."""
    return plateau(windows, set(), ok=False, confidence=confidence).low


def _judge_levels(
    levels: Sequence[LevelSummary],
    states: list[LevelState],
    valid: Sequence[LevelSummary],
    samples: Samples,
    t: Thresholds,
    sat: Estimate | None,
    capacity: Estimate,
    errors: Estimate | None,
    clash: tuple[str, ...],
) -> Verdict:
    """The figures across levels from the states (see the module docstring)."""
    x = np.array([s.offered_qps for s in valid])
    empty = np.empty(0)
    knees = tuple(
        k
        for metric, pos in (("ttft", 0), ("e2e", 1))
        if (k := find_knee(metric, x, [samples.get(s.index, (empty, empty))[pos] for s in valid]))
    )
    saturated = [st for st in states if st.state == "saturated"]
    first_sat = saturated[0] if saturated else None
    sustained = [st for st in states if st.sustainable]
    contradictions = clash + tuple(
        f"{_fmt(hi.offered_qps)} QPS was proved sustainable above {_fmt(lo.offered_qps)} QPS, "
        f"proved saturated ({', '.join(lo.signals)})"
        for lo in saturated[:1]
        for hi in sustained
        if hi.offered_qps > lo.offered_qps
    )
    ceiling = first_sat.offered_qps if first_sat else float("inf")
    usable = [st for st in sustained if st.offered_qps < ceiling]
    proved = (
        usable[-1].offered_qps if usable else None,
        first_sat.offered_qps if first_sat else None,
    )
    good = [st for st in usable if not t.slos or st.state == "ok"]
    sustainable = good[-1].offered_qps if good else None
    if not t.slos and sat is not None and sat.value is not None and sat.low > 0:
        # every rate below the interval's lower end is proved sustainable, tested or not
        sustainable = max(sustainable or 0.0, sat.low)
    recommended = None if sustainable is None else t.headroom * sustainable
    certified_levels = [st for st in usable if st.certified == "met"]
    to_narrow = _to_narrow(proved, sat, t)
    verdict = Verdict(
        levels=tuple(sorted(states, key=lambda st: st.index)),
        saturation_qps=None if sat is None else sat.value,
        saturation_signals=first_sat.signals if first_sat else (),
        knee=min(knees, key=lambda k: k.qps) if knees else None,
        knees=knees,
        max_sustainable_qps=sustainable,
        recommended_qps=recommended,
        headroom=t.headroom,
        reason="",
        suggestion=_suggestion(states, valid),
        saturation=sat,
        capacity=capacity,
        errors=errors,
        proved=proved,
        certified_qps=certified_levels[-1].offered_qps if certified_levels else None,
        expected_at_recommended=tuple(_expected(valid, recommended)),  # type: ignore[arg-type]
        contradictions=contradictions,
        confidence=t.confidence,
        to_narrow=to_narrow,
    )
    return _with_reason(verdict, t)


def _to_narrow(
    proved: tuple[float | None, float | None], sat: Estimate | None, t: Thresholds
) -> str | None:
    """What would narrow the proved interval and the saturation interval further: a level at
    the proved interval's midpoint, long enough for the growth test to decide it
    (``2 x seconds_to_decide``: the steady window is the level's second half), and, since a
    pooled rate's standard error falls as ``1 / sqrt(time)``, 4x the overloaded levels' time
    to halve the saturation interval."""
    lo, hi = proved
    if lo is None or hi is None or sat is None or sat.value is None:
        return None
    mid = (lo + hi) / 2
    seconds = seconds_to_decide(mid, sat.value, t.confidence)
    words = ["the saturation interval halves with 4x the time at the overloaded levels"]
    if seconds is not None and seconds <= 3600:
        words.insert(
            0,
            f"a level at {_fmt(mid)} QPS for about {2 * seconds:.0f} s "
            f"({2 * seconds * mid:.0f} requests) would split the proved interval",
        )
    else:
        words.insert(0, f"a level at {_fmt(mid)} QPS sits at the estimate: it cannot split it")
    return "; ".join(words)


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


def _interval(e: Estimate | None) -> str:
    if e is None:
        return "-"
    high = "inf" if not np.isfinite(e.high) else _fmt(e.high)
    return f"{_fmt(e.low)}-{high}"


def _with_reason(v: Verdict, t: Thresholds) -> Verdict:
    words = []
    pct = f"{v.confidence:.0%}"
    limited = [_fmt(st.qps_target) for st in v.levels if st.state == "client_limited"]
    if limited:
        words.append(
            f"The load generator fell behind at {', '.join(limited)} QPS: those levels describe "
            "the client and are left out of the verdict."
        )
    sat = v.saturation
    if sat is not None and sat.value is not None:
        words.append(
            f"The server saturates at {_fmt(sat.value)} QPS ({pct} interval "
            f"{_interval(sat)}; {sat.method})."
        )
    elif v.capacity is not None:
        words.append(
            f"No level saturated the server; it completed at least {_fmt(v.capacity.low)} "
            f"QPS ({pct} lower bound)."
        )
    lo, hi = v.proved
    if hi is not None:
        fmt = {"max_error": t.max_error_rate}
        why = "; ".join(SIGNAL_WORDS[s].format(**fmt) for s in v.saturation_signals)
        words.append(f"Proved: sustained at {_fmt(lo)} QPS, saturated at {_fmt(hi)} QPS ({why}).")
    if v.contradictions:
        words.append("Contradiction: " + "; ".join(v.contradictions) + ".")
    if v.knee is not None:
        k = v.knee
        words.append(
            f"Its p95 {k.metric.upper()} bends upward at {_fmt(k.qps)} QPS (90% interval "
            f"{_fmt(k.low)}-{_fmt(k.high)})."
        )
    if v.max_sustainable_qps is not None and v.recommended_qps is not None:
        meets = f" meeting the SLO ({describe(t.slos)})" if t.slos else ""
        ttft, e2e = v.expected_at_recommended
        there = (
            f"; expected p95 TTFT {ttft:.3g} s, E2E {e2e:.3g} s"
            if ttft is not None and e2e is not None
            else ""
        )
        words.append(
            f"The highest rate proved sustainable{meets} is "
            f"{_fmt(v.max_sustainable_qps)} QPS: set the production limit at "
            f"{_fmt(v.recommended_qps)} QPS ({t.headroom:g} x {_fmt(v.max_sustainable_qps)}"
            f"{there})."
        )
        if not t.slos:
            words.append("Latency is not bounded by this: --slo sets the limits it must meet.")
    elif len(limited) < len(v.levels):
        words.append(f"No level was proved sustainable at {pct} confidence.")
    if t.slos:
        words.append(f"SLO-certified QPS (early stopping, {pct}): {_fmt(v.certified_qps)}.")
    if v.suggestion:
        words.append(v.suggestion + ".")
    return replace(v, reason=" ".join(words))
