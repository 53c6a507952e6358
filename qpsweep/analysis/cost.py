"""The price of the answer: what a run's throughput costs at ``--cost-per-hour`` (pure).

Given the endpoint's hourly price ``C`` (USD per hour, e.g. a GPU node's), each level is
priced at what it actually delivered:

* ``per_1m_output_tokens_usd`` = C / (output_tok_per_s x 3600) x 1e6, with
  ``output_tok_per_s`` the level's achieved output token throughput (the sum of the
  successful requests' output tokens / the time from the level's start to its last response,
  ``LevelSummary.output_tok_per_s``);
* ``per_1k_requests_usd`` = C / (achieved_qps x 3600) x 1000, ``achieved_qps`` the level's
  successful completions per second.

Both are ``None`` where the rate is 0 (nothing succeeded).

At the verdict's ``recommended_qps`` R no level ran, so its rates are estimated: below
saturation the server keeps up, every request sent completes, so the request rate is R
itself, and the output token rate is R x T(R), where T(R) is the mean output tokens per
successful request interpolated linearly in offered QPS between the levels that bracket R
(clamped to the nearest level outside them), over the levels that have successes and are
neither ``client_limited`` nor ``no_requests``.  So
``per_1m_output_tokens_usd`` = C / (R x T(R) x 3600) x 1e6 and ``per_1k_requests_usd`` =
C / (R x 3600) x 1000.  ``None`` without a recommended QPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.analysis.summary import LevelSummary
from qpsweep.analysis.verdict import Verdict

SECONDS_PER_HOUR = 3600.0
_UNJUDGED = ("client_limited", "no_requests")


@dataclass(frozen=True)
class Cost:
    """The price of serving ``qps`` requests/s with ``output_tok_per_s`` output tokens/s."""

    qps: float
    output_tok_per_s: float
    per_1m_output_tokens_usd: float | None
    per_1k_requests_usd: float | None


@dataclass(frozen=True)
class RunCost:
    """A run priced at ``cost_per_hour_usd``: each level (by index) and the recommended QPS."""

    cost_per_hour_usd: float
    levels: tuple[tuple[int, Cost], ...]
    recommended: Cost | None

    def level(self, index: int) -> Cost | None:
        """The cost of level ``index`` (``None`` for a level not priced)."""
        return dict(self.levels).get(index)


def price(cost_per_hour_usd: float, qps: float, output_tok_per_s: float) -> Cost:
    """``Cost`` of a rate of work at an hourly price (module docstring's formulas)."""
    tokens_per_hour = output_tok_per_s * SECONDS_PER_HOUR
    requests_per_hour = qps * SECONDS_PER_HOUR
    return Cost(
        qps=qps,
        output_tok_per_s=output_tok_per_s,
        per_1m_output_tokens_usd=(
            cost_per_hour_usd / tokens_per_hour * 1e6 if tokens_per_hour > 0 else None
        ),
        per_1k_requests_usd=(
            cost_per_hour_usd / requests_per_hour * 1e3 if requests_per_hour > 0 else None
        ),
    )


def tokens_per_request_at(
    summaries: Sequence[LevelSummary], verdict: Verdict, qps: float
) -> float | None:
    """Mean output tokens per successful request at offered ``qps``: linear interpolation
    between the judged levels (clamped); ``None`` when no such level had a success."""
    states = {st.index: st.state for st in verdict.levels}
    points = sorted(
        (s.offered_qps, s.output_tokens_mean)
        for s in summaries
        if s.output_tokens_mean is not None and states.get(s.index) not in _UNJUDGED
    )
    if not points:
        return None
    xs, ys = zip(*points, strict=True)
    return float(np.interp(qps, xs, ys))


def run_cost(
    summaries: Sequence[LevelSummary], verdict: Verdict, cost_per_hour_usd: float | None
) -> RunCost | None:
    """Every level and the recommended QPS priced; ``None`` without a price."""
    if cost_per_hour_usd is None:
        return None
    levels = tuple(
        (s.index, price(cost_per_hour_usd, s.achieved_qps, s.output_tok_per_s)) for s in summaries
    )
    recommended = None
    qps = verdict.recommended_qps
    if qps is not None and qps > 0:
        per_request = tokens_per_request_at(summaries, verdict, qps)
        if per_request is not None:
            recommended = price(cost_per_hour_usd, qps, qps * per_request)
    return RunCost(cost_per_hour_usd, levels, recommended)
