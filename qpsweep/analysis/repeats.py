"""Repeats of one sweep: the mean, a 95% interval and the spread of each key figure (pure).

A repeat is one whole sweep of the same settings with its own schedule seed, so repeats are
independent draws of the sweep's figures.  Of the ``n`` repeats that have a figure
(``x_1 .. x_n``):

* ``mean = sum x_i / n``;
* ``sd = sqrt(sum (x_i - mean)^2 / (n - 1))``, the sample standard deviation;
* the interval ``mean +- t(confidence, n - 1) x sd / sqrt(n)``, Student t with ``n - 1``
  degrees of freedom (two-sided, 95% by default): where the mean of many more repeats would
  lie, if a repeat's figure is roughly normal;
* ``cv = sd / |mean|``, the coefficient of variation: the noise between identical runs.

With ``n = 1`` none of sd, interval or cv exists ("cannot tell").

Per level: levels are matched by target QPS; when a repeat ran one target more than once (the
rerun of a ``client_limited`` level, ``--qps auto``), the last level there that is not
``client_limited`` stands for it, as in ``diff``.  A target is summarized only when every
repeat ran it (with ``--qps auto`` the searched levels differ between repeats: usually only the
verdict's figures are comparable); the others are listed.  Key figures per level:
``LEVEL_FIGURES`` (none from a level that sent nothing); of the verdict: ``VERDICT_FIGURES``
(a repeat whose verdict has no such figure, e.g. no saturation found, is left out of that
figure's ``n`` and counted missing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.analysis.summary import LevelSummary
from qpsweep.analysis.verdict import Verdict

CONFIDENCE = 0.95

Figure = Callable[[LevelSummary], float | None]
LEVEL_FIGURES: tuple[tuple[str, Figure], ...] = (
    ("achieved_qps", lambda s: s.achieved_qps),
    ("success_pct", lambda s: s.success_pct),
    ("ttft_p50_s", lambda s: s.ttft_s.get(50.0)),
    ("ttft_p95_s", lambda s: s.ttft_s.get(95.0)),
    ("ttft_p99_s", lambda s: s.ttft_s.get(99.0)),
    ("e2e_p50_s", lambda s: s.e2e_s.get(50.0)),
    ("e2e_p95_s", lambda s: s.e2e_s.get(95.0)),
    ("itl_p50_ms", lambda s: s.itl_ms.get(50.0)),
    ("tpot_p50_ms", lambda s: s.tpot_ms.get(50.0)),
    ("output_tok_per_s", lambda s: s.output_tok_per_s),
)
VERDICT_FIGURES: tuple[tuple[str, Callable[[Verdict], float | None]], ...] = (
    ("saturation_qps", lambda v: v.saturation_qps),
    ("capacity_qps", lambda v: v.capacity.value if v.capacity is not None else None),
    ("max_sustainable_qps", lambda v: v.max_sustainable_qps),
    ("recommended_qps", lambda v: v.recommended_qps),
)
HIGHER_IS_BETTER = frozenset(
    {"achieved_qps", "success_pct", "output_tok_per_s", *(name for name, _ in VERDICT_FIGURES)}
)


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided Student t critical value: ``P(|T_dof| <= t) = confidence``."""
    from scipy.stats import t as student_t  # scipy loads slowly: only when asked

    return float(student_t.ppf(0.5 + confidence / 2.0, dof))


@dataclass(frozen=True)
class Spread:
    """One figure across repeats: the values that exist, and their mean, sd, interval and cv
    (``None`` where undefined; see the module docstring)."""

    values: tuple[float, ...]
    n_missing: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None

    @property
    def n(self) -> int:
        """How many repeats have the figure."""
        return len(self.values)

    @property
    def cv(self) -> float | None:
        """``sd / |mean|`` (``None`` with fewer than 2 values or a zero mean)."""
        if self.sd is None or self.mean is None or self.mean == 0:
            return None
        return self.sd / abs(self.mean)


def spread(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Spread:
    """The ``Spread`` of ``values`` (``None`` entries: repeats without the figure)."""
    have = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    missing = len(values) - len(have)
    if not have:
        return Spread((), missing, None, None, None, None)
    mean = float(np.mean(have))
    if len(have) < 2:
        return Spread(have, missing, mean, None, None, None)
    sd = float(np.std(have, ddof=1))
    half = t_quantile(confidence, len(have) - 1) * sd / math.sqrt(len(have))
    return Spread(have, missing, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Repeat:
    """What the statistics need of one repeat: its name, seed, summaries and verdict."""

    name: str
    seed: int
    summaries: Sequence[LevelSummary]
    verdict: Verdict


def pick_levels(
    summaries: Sequence[LevelSummary], verdict: Verdict
) -> dict[float, tuple[LevelSummary, str]]:
    """Target QPS (rounded to 6 digits) -> (the level standing for it, its state): the last
    level run at the target that is not ``client_limited`` (else the last one)."""
    states = {st.index: st.state for st in verdict.levels}
    chosen: dict[float, tuple[LevelSummary, str]] = {}
    for s in sorted(summaries, key=lambda s: s.index):
        key = round(s.qps_target, 6)
        state = states.get(s.index, "")
        held = chosen.get(key)
        if held is None or held[1] == "client_limited" or state != "client_limited":
            chosen[key] = (s, state)
    return chosen


@dataclass(frozen=True)
class LevelSpread:
    """One target QPS across repeats: each repeat's state there and every key figure."""

    qps_target: float
    states: tuple[str, ...]
    figures: tuple[tuple[str, Spread], ...]

    def figure(self, name: str) -> Spread:
        """The spread of figure ``name`` (``KeyError`` if unknown)."""
        return dict(self.figures)[name]


@dataclass(frozen=True)
class RepeatSummary:
    """The repeats of one sweep summarized (see the module docstring)."""

    n: int
    seeds: tuple[int, ...]
    levels: tuple[LevelSpread, ...]
    partial_levels: tuple[float, ...]
    verdict: tuple[tuple[str, Spread], ...]
    confidence: float

    def verdict_figure(self, name: str) -> Spread:
        """The spread of the verdict's figure ``name``."""
        return dict(self.verdict)[name]


def summarize_repeats(repeats: Sequence[Repeat], confidence: float = CONFIDENCE) -> RepeatSummary:
    """Per target QPS that every repeat ran, and for the verdict, each figure's ``Spread``."""
    picked = [pick_levels(r.summaries, r.verdict) for r in repeats]
    every = set.intersection(*(set(p) for p in picked)) if picked else set()
    some = set().union(*(set(p) for p in picked)) if picked else set()
    levels = []
    for qps in sorted(every):
        rows = [p[qps] for p in picked]
        figures = tuple(
            (name, spread([get(s) if s.n_sent else None for s, _ in rows], confidence))
            for name, get in LEVEL_FIGURES
        )
        levels.append(LevelSpread(qps, tuple(state for _, state in rows), figures))
    verdict = tuple(
        (name, spread([get(r.verdict) for r in repeats], confidence))
        for name, get in VERDICT_FIGURES
    )
    return RepeatSummary(
        n=len(repeats),
        seeds=tuple(r.seed for r in repeats),
        levels=tuple(levels),
        partial_levels=tuple(sorted(some - every)),
        verdict=verdict,
        confidence=confidence,
    )
