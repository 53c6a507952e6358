"""Comparing two runs level by level, with a significance test, pure.

``compare(base, candidate, alpha, threshold_pct)`` aligns the levels of two runs by target QPS
(when a run has several levels at one target, as ``--qps auto`` can, the last one that is not
``client_limited`` is used) and, per level, compares:

- TTFT (s), ITL (ms), E2E (s): p50, p95, p99 -- lower is better;
- tokens/s per request: p50, p95, p99 -- higher is better;
- success rate (%) -- higher is better;
- where either run's level streamed reasoning: the time to the first visible token (s,
  ``ttft_visible_s``: p50, p95, p99, tested like TTFT) -- lower is better;
- where either run's level reported cached prompt tokens: the cached share of prompt tokens
  (%, ``cached_pct``), shown without a test (it has no per-request samples to test).

Each row has base, candidate, ``delta = candidate - base`` and
``change_pct = 100 * delta / base``.  Significance is tested once per metric and level:
Mann-Whitney U, two-sided (scipy), on block medians.  Each run's successful requests at the
level are taken in send order and cut into ``min(10, n // 3)`` consecutive blocks; a block's
value is the median of its requests' TTFT, E2E, tokens/s or mean inter-token gap.  Requests
sent close together share the server's queue and the machine's state, so per-request values
are not independent, and a test on them calls two runs of one setting "different" far too
often (measured: 10 of 380 same-setting pairs flagged a regression at alpha 0.01 on a loaded
2-core machine; 0 of 380 with blocks).  Fisher's exact test compares the ok/failed counts for
the success rate.  The p-values of all tests in one diff are adjusted together
(Holm-Bonferroni), so that comparing many levels and metrics does not manufacture
regressions out of noise.  With 10 blocks a side the smallest possible p-value is about
1e-5, so a level needs at least 30 successful requests per run to give full power.

A row is a ``regression`` when all of these hold:

1. the metric's adjusted p-value is below ``alpha``;
2. the test's direction is bad: the candidate's values tend to be higher (latency) or lower
   (tokens/s, success), by the sign of ``U - n_base * n_candidate / 2``;
3. the row itself moved the bad way by more than ``threshold_pct`` percent (a p99 that rose
   while the distribution as a whole improved is "mixed", not a regression);
4. neither run is ``client_limited`` (numbers that describe the client) or ``saturated`` at
   that level: past saturation latency grows with the queue, i.e. with how long the overload
   lasted and the arrival draw, not with the server.  Instead, a level that the base sustained
   (``ok`` or ``degraded``) and at which the candidate is ``saturated`` is itself a regression
   (the ``state`` row): capacity fell below it.

With ``--multi-turn`` in either run, each common level also shows its session figures
(``SESSION_ROWS``: session start rate, requests per session, history tokens per turn, TTFT of
turn 1 and of later turns, turns not sent) as plain deltas, not tested: a session's turns are
not independent samples, and the TTFT rows above already test every turn.

Levels present in only one run are listed.  The verdict's numbers (saturation, knee, max
sustainable, recommended QPS) are compared as plain deltas: they have no per-request samples to
test.  So is the cost (``qpsweep.analysis.cost``) when the runs are priced: per level, the USD
per 1M output tokens and per 1k requests (rows ``cost_1m_out_usd`` and ``cost_1k_req_usd``,
when both runs are priced; never a regression, since they follow throughput, which is tested),
and at the recommended QPS among the verdict's numbers (when either run is).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from qpsweep.analysis.cost import Cost, RunCost
from qpsweep.analysis.sessions import SessionSummary
from qpsweep.analysis.summary import LevelSummary
from qpsweep.analysis.verdict import Verdict
from qpsweep.records.record import RequestRecord

PERCENTILES = (50.0, 95.0, 99.0)
HIGHER_IS_BETTER = frozenset({"tokens_per_sec", "success_pct", "cached_pct"})
COST_METRICS = ("cost_1m_out_usd", "cost_1k_req_usd")
MIN_SAMPLES = 3
MAX_BLOCKS = 10
MIN_BLOCK_SIZE = 3


@dataclass(frozen=True)
class RunData:
    """What ``compare`` needs of one run: its summaries, verdict and records, its cost when
    priced, and the mean rate of the trace it replayed (``--arrival trace``)."""

    name: str
    summaries: Sequence[LevelSummary]
    verdict: Verdict
    records: Sequence[RequestRecord]
    cost: RunCost | None = None
    trace_rate_qps: float | None = None


@dataclass(frozen=True)
class Row:
    """One metric at one level: base vs candidate."""

    metric: str
    stat: str
    base: float | None
    candidate: float | None
    p_value: float | None
    higher_is_better: bool
    significant: bool
    regression: bool
    test_worse: bool = False

    @property
    def delta(self) -> float | None:
        """``candidate - base`` (``None`` when either is missing)."""
        if self.base is None or self.candidate is None:
            return None
        return self.candidate - self.base

    @property
    def change_pct(self) -> float | None:
        """``100 * delta / base`` (``None`` when undefined)."""
        delta = self.delta
        if delta is None or self.base is None or self.base == 0:
            return None
        return 100.0 * delta / abs(self.base)

    @property
    def worse(self) -> bool:
        """The candidate moved in the bad direction for this metric."""
        delta = self.delta
        if delta is None or delta == 0:
            return False
        return (delta < 0) if self.higher_is_better else (delta > 0)


@dataclass(frozen=True)
class LevelDiff:
    """All rows of one target QPS present in both runs."""

    qps_target: float
    base_state: str
    candidate_state: str
    rows: tuple[Row, ...]
    session_rows: tuple[tuple[str, float | None, float | None], ...] = ()

    @property
    def client_limited(self) -> bool:
        """Either run's generator fell behind at this level."""
        return "client_limited" in (self.base_state, self.candidate_state)

    @property
    def saturated(self) -> bool:
        """Either run saturated at this level (its latencies are not compared as evidence)."""
        return "saturated" in (self.base_state, self.candidate_state)

    @property
    def lost(self) -> bool:
        """The base sustained this level and the candidate saturated at it: a regression."""
        held = self.base_state in ("ok", "degraded")
        return held and self.candidate_state == "saturated" and not self.client_limited


@dataclass(frozen=True)
class RunDiff:
    """The whole comparison."""

    levels: tuple[LevelDiff, ...]
    only_base: tuple[float, ...]
    only_candidate: tuple[float, ...]
    verdict_rows: tuple[tuple[str, float | None, float | None], ...]
    alpha: float
    threshold_pct: float

    @property
    def regressions(self) -> list[tuple[float, Row]]:
        """``(qps_target, row)`` of every regression found, lost levels as ``state`` rows."""
        found = []
        for lv in self.levels:
            if lv.lost:
                found.append((lv.qps_target, _state_row(lv)))
            found += [(lv.qps_target, row) for row in lv.rows if row.regression]
        return found


def _state_row(lv: LevelDiff) -> Row:
    """The row that stands for a level the candidate could no longer sustain."""
    return Row(
        "state", f"{lv.base_state} -> {lv.candidate_state}", None, None, None, True, True, True
    )


def _samples(records: Sequence[RequestRecord]) -> dict[str, np.ndarray]:
    """Per-request samples of the tested metrics (successful requests only), in send order."""
    ok = sorted((r for r in records if r.ok), key=lambda r: r.sent_s)
    ttft = [r.first_token_s - r.sent_s for r in ok if r.first_token_s is not None]
    shown = [r.first_visible_s if r.first_reasoning_s is not None else r.first_token_s for r in ok]
    visible = [t - r.sent_s for r, t in zip(ok, shown, strict=True) if t is not None]
    itl_mean = [
        (r.chunk_s[-1] - r.chunk_s[0]) / (len(r.chunk_s) - 1) for r in ok if len(r.chunk_s) > 1
    ]
    return {
        "ttft_s": np.array(ttft),
        "ttft_visible_s": np.array(visible),
        "e2e_s": np.array([r.done_s - r.sent_s for r in ok]),
        "itl_ms": 1000.0 * np.array(itl_mean),
        "tokens_per_sec": np.array(
            [r.output_tokens / (r.done_s - r.sent_s) for r in ok if r.done_s > r.sent_s]
        ),
    }


def block_medians(values: np.ndarray) -> np.ndarray:
    """The medians of ``k = min(MAX_BLOCKS, n // MIN_BLOCK_SIZE)`` consecutive, near-equal
    blocks of ``values`` (in send order); empty when ``n < MIN_BLOCK_SIZE``.

    Requests sent close together share the server's queue and the machine's state, so their
    latencies are not independent; the medians of blocks spread over the level are much
    closer to it (the batch-means method of simulation output analysis)."""
    k = min(MAX_BLOCKS, values.size // MIN_BLOCK_SIZE)
    if k == 0:
        return np.empty(0)
    return np.array([float(np.median(block)) for block in np.array_split(values, k)])


def _pooled_itl_ms(records: Sequence[RequestRecord]) -> np.ndarray:
    gaps = [np.diff(r.chunk_s) for r in records if r.ok and len(r.chunk_s) > 1]
    return np.concatenate(gaps) * 1000.0 if gaps else np.empty(0)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, int] | None:
    """Two-sided Mann-Whitney U p-value of base ``a`` vs candidate ``b``, and the shift: +1
    when ``b`` tends to be higher (``U_a < n_a n_b / 2``), -1 when lower, 0 when neither.
    ``None`` with fewer than ``MIN_SAMPLES`` in either."""
    if a.size < MIN_SAMPLES or b.size < MIN_SAMPLES:
        return None
    if a.min() == a.max() == b.min() == b.max():
        return 1.0, 0  # both constant and equal: no evidence of any difference
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    centre = a.size * b.size / 2.0
    return float(result.pvalue), int(np.sign(centre - float(result.statistic)))


def fisher(ok_a: int, n_a: int, ok_b: int, n_b: int) -> tuple[float, int] | None:
    """Two-sided Fisher exact p-value of two success counts, and the sign of the candidate's
    success-rate change; ``None`` without requests."""
    if n_a == 0 or n_b == 0:
        return None
    table = [[ok_a, n_a - ok_a], [ok_b, n_b - ok_b]]
    shift = int(np.sign(ok_b / n_b - ok_a / n_a))
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue), shift


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order: with the m p-values sorted ascending,
    ``adj_(k) = max_{j <= k} min(1, (m - j + 1) * p_(j))`` (k, j counted from 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _pct(values: np.ndarray, p: float) -> float | None:
    return float(np.percentile(values, p)) if values.size else None


@dataclass(frozen=True)
class _Measured:
    """One metric of one level before the correction: its rows' values and the raw p-value."""

    metric: str
    values: tuple[tuple[str, float | None, float | None], ...]
    test: tuple[float, int] | None

    @property
    def p_value(self) -> float | None:
        """The uncorrected p-value (``None`` when untestable)."""
        return None if self.test is None else self.test[0]


def measure_level(
    base: Sequence[RequestRecord], candidate: Sequence[RequestRecord]
) -> list[_Measured]:
    """Per metric: (stat, base, candidate) rows and the uncorrected p-value."""
    sa, sb = _samples(base), _samples(candidate)
    pooled = {"itl_ms": (_pooled_itl_ms(base), _pooled_itl_ms(candidate))}
    out: list[_Measured] = []
    reasoned = any(r.first_reasoning_s is not None for r in (*base, *candidate))
    visible = ("ttft_visible_s",) if reasoned else ()
    for metric in ("ttft_s", *visible, "itl_ms", "e2e_s", "tokens_per_sec"):
        a, b = pooled.get(metric, (sa[metric], sb[metric]))
        values = tuple((f"p{p:g}", _pct(a, p), _pct(b, p)) for p in PERCENTILES)
        test = mann_whitney(block_medians(sa[metric]), block_medians(sb[metric]))
        out.append(_Measured(metric, values, test))
    ok_a, ok_b = sum(r.ok for r in base), sum(r.ok for r in candidate)
    rate_a = 100.0 * ok_a / len(base) if base else None
    rate_b = 100.0 * ok_b / len(candidate) if candidate else None
    test = fisher(ok_a, len(base), ok_b, len(candidate))
    out.append(_Measured("success_pct", (("rate", rate_a, rate_b),), test))
    share_a, share_b = _cached_pct(base), _cached_pct(candidate)
    if share_a is not None or share_b is not None:
        out.append(_Measured("cached_pct", (("rate", share_a, share_b),), None))
    return out


def _cached_pct(records: Sequence[RequestRecord]) -> float | None:
    """100 x the cached share of prompt tokens of the successes that reported both counts."""
    both = [
        (r.cached_tokens, r.input_tokens)
        for r in records
        if r.ok and r.cached_tokens is not None and r.input_tokens
    ]
    total = sum(n for _, n in both)
    return 100.0 * sum(c for c, _ in both) / total if total else None


def _rows(measured: _Measured, p_value: float | None, gate: tuple[float, float, bool]) -> list[Row]:
    """The rows of one metric with its corrected p-value; ``gate`` = (alpha, threshold_pct,
    whether the level may count as a regression)."""
    alpha, threshold_pct, countable = gate
    higher_is_better = measured.metric in HIGHER_IS_BETTER
    significant = p_value is not None and p_value < alpha
    shift = 0 if measured.test is None else measured.test[1]
    test_worse = shift < 0 if higher_is_better else shift > 0
    rows = []
    for stat, a, b in measured.values:
        row = Row(measured.metric, stat, a, b, p_value, higher_is_better, significant, False)
        change = row.change_pct
        beyond = change is not None and abs(change) > threshold_pct
        regression = countable and significant and test_worse and row.worse and beyond
        rows.append(replace(row, regression=regression, test_worse=test_worse))
    return rows


def _cost_rows(base: Cost | None, candidate: Cost | None) -> list[Row]:
    """A level's cost rows: plain numbers, untested (``p_value`` ``None``), never a
    regression."""
    return [
        Row(metric, "level", x, y, None, False, False, False)
        for metric, x, y in zip(COST_METRICS, _usd(base), _usd(candidate), strict=True)
    ]


def _usd(cost: Cost | None) -> tuple[float | None, float | None]:
    """``(USD per 1M output tokens, USD per 1k requests)``, ``None`` each when unknown."""
    if cost is None:
        return None, None
    return cost.per_1m_output_tokens_usd, cost.per_1k_requests_usd


def _pick(run: RunData) -> dict[float, tuple[int, str]]:
    """Target QPS -> (level index, state): the last valid level at each target."""
    states = {st.index: st.state for st in run.verdict.levels}
    chosen: dict[float, tuple[int, str]] = {}
    for s in sorted(run.summaries, key=lambda s: s.index):
        key = round(s.qps_target, 6)
        state = states.get(s.index, "")
        held = chosen.get(key)
        if held is None or held[1] == "client_limited" or state != "client_limited":
            chosen[key] = (s.index, state)
    return chosen


def _multiple_rows(
    base: RunData, candidate: RunData
) -> tuple[tuple[str, float | None, float | None], ...]:
    """With a replayed trace on either side: the verdict's saturation, max sustainable and
    recommended QPS as multiples of that side's trace mean rate (``x`` = QPS / mean rate),
    so two runs of different traces compare in "today's traffic"."""
    if base.trace_rate_qps is None and candidate.trace_rate_qps is None:
        return ()

    def x(run: RunData, qps: float | None) -> float | None:
        rate = run.trace_rate_qps
        return None if qps is None or not rate else qps / rate

    va, vb = base.verdict, candidate.verdict
    return (
        ("saturation_x_trace", x(base, va.saturation_qps), x(candidate, vb.saturation_qps)),
        (
            "max_sustainable_x_trace",
            x(base, va.max_sustainable_qps),
            x(candidate, vb.max_sustainable_qps),
        ),
        ("recommended_x_trace", x(base, va.recommended_qps), x(candidate, vb.recommended_qps)),
    )


def compare(base: RunData, candidate: RunData, alpha: float, threshold_pct: float) -> RunDiff:
    """Compare ``candidate`` with ``base``; see the module docstring for every definition."""
    pick_a, pick_b = _pick(base), _pick(candidate)
    by_level_a: dict[int, list[RequestRecord]] = {}
    by_level_b: dict[int, list[RequestRecord]] = {}
    for r in base.records:
        by_level_a.setdefault(r.level, []).append(r)
    for r in candidate.records:
        by_level_b.setdefault(r.level, []).append(r)
    common = sorted(set(pick_a) & set(pick_b))
    by_index_a = {s.index: s for s in base.summaries}
    by_index_b = {s.index: s for s in candidate.summaries}
    measured = [
        measure_level(by_level_a.get(pick_a[q][0], []), by_level_b.get(pick_b[q][0], []))
        for q in common
    ]
    raw = [m.p_value for level in measured for m in level if m.p_value is not None]
    adjusted = iter(holm(raw))
    levels = []
    for qps, level in zip(common, measured, strict=True):
        state_a, state_b = pick_a[qps][1], pick_b[qps][1]
        judged = not {"client_limited", "saturated"} & {state_a, state_b}
        gate = (alpha, threshold_pct, judged)
        rows = [
            row
            for m in level
            for row in _rows(m, None if m.p_value is None else next(adjusted), gate)
        ]
        if base.cost is not None and candidate.cost is not None:
            rows += _cost_rows(
                base.cost.level(pick_a[qps][0]), candidate.cost.level(pick_b[qps][0])
            )
        sessions = session_rows(by_index_a.get(pick_a[qps][0]), by_index_b.get(pick_b[qps][0]))
        levels.append(LevelDiff(qps, state_a, state_b, tuple(rows), sessions))
    va, vb = base.verdict, candidate.verdict
    verdict_rows: tuple[tuple[str, float | None, float | None], ...] = (
        ("saturation_qps", va.saturation_qps, vb.saturation_qps),
        ("capacity_qps", _capacity(va), _capacity(vb)),
        ("knee_qps", va.knee.qps if va.knee else None, vb.knee.qps if vb.knee else None),
        ("max_sustainable_qps", va.max_sustainable_qps, vb.max_sustainable_qps),
        ("recommended_qps", va.recommended_qps, vb.recommended_qps),
        ("certified_qps", va.certified_qps, vb.certified_qps),
    )
    verdict_rows += _multiple_rows(base, candidate)
    if base.cost is not None or candidate.cost is not None:
        at_a = _usd(base.cost.recommended if base.cost else None)
        at_b = _usd(candidate.cost.recommended if candidate.cost else None)
        verdict_rows += tuple(
            (f"{metric}@recommended", a, b)
            for metric, a, b in zip(COST_METRICS, at_a, at_b, strict=True)
        )
    return RunDiff(
        levels=tuple(levels),
        only_base=tuple(sorted(set(pick_a) - set(pick_b))),
        only_candidate=tuple(sorted(set(pick_b) - set(pick_a))),
        verdict_rows=verdict_rows,
        alpha=alpha,
        threshold_pct=threshold_pct,
    )


SESSION_ROWS: tuple[tuple[str, Callable[[SessionSummary], float | None]], ...] = (
    ("sessions/s started", lambda ss: ss.started_qps),
    ("requests/session", lambda ss: ss.requests_per_session),
    ("history tokens mean", lambda ss: ss.history_tokens_mean),
    ("history tokens p95", lambda ss: ss.history_tokens_p95),
    ("TTFT turn 1 p50 (s)", lambda ss: ss.ttft_first_turn_s.get(50.0)),
    ("TTFT turns 2+ p50 (s)", lambda ss: ss.ttft_later_turns_s.get(50.0)),
    ("turns not sent", lambda ss: float(ss.n_not_sent)),
)


def session_rows(
    base: LevelSummary | None, candidate: LevelSummary | None
) -> tuple[tuple[str, float | None, float | None], ...]:
    """``(name, base, candidate)`` of the session figures (``SESSION_ROWS``); none when
    neither level ran sessions."""
    a = base.sessions if base is not None else None
    b = candidate.sessions if candidate is not None else None
    if a is None and b is None:
        return ()
    return tuple((name, get(a) if a else None, get(b) if b else None) for name, get in SESSION_ROWS)


def _capacity(v: Verdict) -> float | None:
    """The verdict's capacity estimate (``None`` where only a lower bound is known)."""
    return v.capacity.value if v.capacity is not None else None
