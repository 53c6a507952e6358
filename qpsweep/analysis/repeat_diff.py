"""Comparing two sets of repeats, with the repeats as the unit of evidence (pure).

``compare_repeats(base, candidate, alpha, threshold_pct)`` takes the ``RepeatSummary`` of each
side (a single run is one repeat) and, per target QPS that every repeat of both sides ran and
for the verdict, tests each key figure (``repeats.LEVEL_FIGURES``, ``repeats.VERDICT_FIGURES``)
on the repeats' values, one value per repeat, instead of on requests: the sweep as a whole
is the thing repeated, so its noise between identical runs (the server's state, the machine's,
the arrival draw) is in the evidence.  ``delta = mean_candidate - mean_base``:

* both sides with 2 or more repeats: Welch's t test,
  ``se = sqrt(s_b^2 / n_b + s_c^2 / n_c)``, Welch-Satterthwaite degrees of freedom
  ``se^4 / ((s_b^2/n_b)^2/(n_b-1) + (s_c^2/n_c)^2/(n_c-1))``;
* one side a single run, the other ``m >= 2`` repeats: the single run is taken as one more
  draw with the other side's spread, ``se = s x sqrt(1 + 1/m)``, ``m - 1`` degrees of freedom
  (a prediction-interval test; it assumes the single run is as noisy as the repeats);
* a single run on both sides, or no spread at all with a non-zero delta: cannot tell
  (``p_value`` None); equal constant values are no difference (p = 1).

``p = 2 P(T_dof > |delta| / se)``; the interval of the difference is
``delta +- t(confidence, dof) x se`` (95%).  The p-values of one diff are adjusted together
(Holm-Bonferroni, as in ``diff``).  A row is a ``regression`` when its adjusted p-value is
below ``alpha``, it moved the bad way (latency up; QPS, success, tokens/s or a verdict figure
down) by more than ``threshold_pct`` percent, and, for a level's figures, no repeat of either
side was ``client_limited`` or ``saturated`` there (as ``diff``: those numbers describe the
client, or the length of the overload).  A level that every base repeat sustained (``ok`` or
``degraded``) and every candidate repeat saturated at is a regression itself (``lost``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from qpsweep.analysis.diff import holm
from qpsweep.analysis.repeats import CONFIDENCE, HIGHER_IS_BETTER, RepeatSummary, Spread, t_quantile

NOT_JUDGED = frozenset({"client_limited", "saturated"})
SUSTAINED = frozenset({"ok", "degraded"})


@dataclass(frozen=True)
class Test:
    """A difference of means and its evidence: ``delta`` with its interval, the raw p-value,
    the degrees of freedom and the method (``welch`` or ``one run vs repeats``)."""

    delta: float
    low: float
    high: float
    p_value: float
    dof: float
    method: str


def _p_two_sided(t_score: float, dof: float) -> float:
    from scipy.stats import t as student_t  # scipy loads slowly: only when asked

    return float(2.0 * student_t.sf(abs(t_score), dof))


def mean_difference(base: Spread, candidate: Spread, confidence: float = CONFIDENCE) -> Test | None:
    """The test of ``candidate.mean - base.mean`` described in the module docstring; ``None``
    when the repeats cannot tell."""
    if base.mean is None or candidate.mean is None:
        return None
    delta = candidate.mean - base.mean
    nb, nc = base.n, candidate.n
    if nb >= 2 and nc >= 2:
        assert base.sd is not None and candidate.sd is not None
        vb, vc = base.sd**2 / nb, candidate.sd**2 / nc
        se = math.sqrt(vb + vc)
        dof = (vb + vc) ** 2 / (vb**2 / (nb - 1) + vc**2 / (nc - 1)) if se > 0 else nb + nc - 2.0
        method = "welch"
    elif min(nb, nc) == 1 and max(nb, nc) >= 2:
        many = base if nb >= 2 else candidate
        assert many.sd is not None
        se = many.sd * math.sqrt(1.0 + 1.0 / many.n)
        dof = many.n - 1.0
        method = "one run vs repeats"
    else:
        return None
    if se == 0:
        return Test(0.0, 0.0, 0.0, 1.0, dof, method) if delta == 0 else None
    half = t_quantile(confidence, dof) * se
    return Test(delta, delta - half, delta + half, _p_two_sided(delta / se, dof), dof, method)


@dataclass(frozen=True)
class RepeatRow:
    """One figure (at one level, or of the verdict): both sides' spreads, the test, the
    Holm-adjusted p-value and what it amounts to."""

    figure: str
    base: Spread
    candidate: Spread
    test: Test | None
    p_value: float | None = None
    significant: bool = False
    regression: bool = False

    @property
    def higher_is_better(self) -> bool:
        """Whether a rise is an improvement (QPS, success, tokens/s, the verdict's rates)."""
        return self.figure in HIGHER_IS_BETTER

    @property
    def delta(self) -> float | None:
        """``mean_candidate - mean_base`` (``None`` when a side has no value)."""
        if self.base.mean is None or self.candidate.mean is None:
            return None
        return self.candidate.mean - self.base.mean

    @property
    def change_pct(self) -> float | None:
        """``100 x delta / |mean_base|`` (``None`` when undefined)."""
        delta = self.delta
        if delta is None or not self.base.mean:
            return None
        return 100.0 * delta / abs(self.base.mean)

    @property
    def worse(self) -> bool:
        """The candidate's mean moved the bad way."""
        delta = self.delta
        if not delta:
            return False
        return delta < 0 if self.higher_is_better else delta > 0


@dataclass(frozen=True)
class RepeatLevelDiff:
    """One target QPS run by every repeat of both sides."""

    qps_target: float
    base_states: tuple[str, ...]
    candidate_states: tuple[str, ...]
    rows: tuple[RepeatRow, ...]

    @property
    def judged(self) -> bool:
        """No repeat of either side was ``client_limited`` or ``saturated`` here."""
        return not NOT_JUDGED & {*self.base_states, *self.candidate_states}

    @property
    def lost(self) -> bool:
        """Every base repeat sustained this level and every candidate repeat saturated."""
        held = all(s in SUSTAINED for s in self.base_states)
        return held and all(s == "saturated" for s in self.candidate_states)


@dataclass(frozen=True)
class RepeatDiff:
    """The whole comparison of two sets of repeats."""

    n_base: int
    n_candidate: int
    levels: tuple[RepeatLevelDiff, ...]
    only_base: tuple[float, ...]
    only_candidate: tuple[float, ...]
    verdict_rows: tuple[RepeatRow, ...]
    alpha: float
    threshold_pct: float

    @property
    def regressions(self) -> list[tuple[float | None, str]]:
        """``(qps_target or None for the verdict, figure)`` of every regression; a lost level
        is ``(qps, "state")``."""
        found: list[tuple[float | None, str]] = []
        for lv in self.levels:
            if lv.lost:
                found.append((lv.qps_target, "state"))
            found += [(lv.qps_target, row.figure) for row in lv.rows if row.regression]
        return found + [(None, row.figure) for row in self.verdict_rows if row.regression]


def _judge(row: RepeatRow, p_value: float | None, gate: tuple[float, float, bool]) -> RepeatRow:
    alpha, threshold_pct, countable = gate
    significant = p_value is not None and p_value < alpha
    change = row.change_pct
    beyond = change is not None and abs(change) > threshold_pct
    regression = countable and significant and row.worse and beyond
    return replace(row, p_value=p_value, significant=significant, regression=regression)


def compare_repeats(
    base: RepeatSummary, candidate: RepeatSummary, alpha: float, threshold_pct: float
) -> RepeatDiff:
    """Compare ``candidate``'s repeats with ``base``'s; see the module docstring."""
    by_a = {lv.qps_target: lv for lv in base.levels}
    by_b = {lv.qps_target: lv for lv in candidate.levels}
    common = sorted(set(by_a) & set(by_b))
    confidence = base.confidence
    raw_levels = [
        [
            RepeatRow(name, sa, sb, mean_difference(sa, sb, confidence))
            for (name, sa), (_, sb) in zip(by_a[q].figures, by_b[q].figures, strict=True)
        ]
        for q in common
    ]
    raw_verdict = [
        RepeatRow(name, sa, sb, mean_difference(sa, sb, confidence))
        for (name, sa), (_, sb) in zip(base.verdict, candidate.verdict, strict=True)
    ]
    every: Sequence[RepeatRow] = [row for rows in raw_levels for row in rows] + raw_verdict
    adjusted = iter(holm([row.test.p_value for row in every if row.test is not None]))

    def judged(row: RepeatRow, countable: bool) -> RepeatRow:
        p_value = next(adjusted) if row.test is not None else None
        return _judge(row, p_value, (alpha, threshold_pct, countable))

    levels = []
    for q, rows in zip(common, raw_levels, strict=True):
        lv = RepeatLevelDiff(q, by_a[q].states, by_b[q].states, ())
        levels.append(replace(lv, rows=tuple(judged(row, lv.judged) for row in rows)))
    verdict_rows = tuple(judged(row, True) for row in raw_verdict)
    return RepeatDiff(
        n_base=base.n,
        n_candidate=candidate.n,
        levels=tuple(levels),
        only_base=tuple(sorted(set(by_a) - set(by_b))),
        only_candidate=tuple(sorted(set(by_b) - set(by_a))),
        verdict_rows=verdict_rows,
        alpha=alpha,
        threshold_pct=threshold_pct,
    )
