"""Level summaries -> the console table, ``report.txt`` and the results JSON (pure).

The table and the JSON entries keep the seed tool's shape: TTFT and E2E in seconds,
``success_rate`` in percent, ``actual_qps`` the offered (sent) rate.  qpsweep's additions
carry their unit in the name (``itl_ms``, ``tpot_ms``, ``send_lag_ms``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

from qpsweep.analysis.estimate import Estimate
from qpsweep.analysis.percentiles import Percentiles, percentile_key
from qpsweep.analysis.summary import LATE_SEND_MS, LevelSummary
from qpsweep.analysis.verdict import BOOTSTRAP, Knee, LevelState, Verdict, stalled
from qpsweep.config.slo import describe
from qpsweep.config.thresholds import Thresholds

DEFAULT_THRESHOLDS = Thresholds()

RULE = "=" * 80


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(cells: Sequence[str]) -> str:
    return "".join(f"{cell:<13}" for cell in cells).rstrip()


def format_table(
    summaries: Sequence[LevelSummary],
    percentiles: Sequence[float],
    verdict: Verdict,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> str:
    """The seed-style results table, a detail table with each level's state, the error lines
    per level, loud warnings for client-limited levels, and the verdict."""
    tags = [percentile_key(p).upper() for p in percentiles]
    head = ["QPS Target", "Actual QPS", "Success%"]
    head += [f"TTFT {t}(s)" for t in tags] + [f"E2E {t}(s)" for t in tags]
    head += [f"Tok/s {t}" for t in tags]
    lines = [RULE, "QPS BENCHMARK RESULTS", RULE, _row(head)]
    for s in summaries:
        cells = [f"{s.qps_target:g}", f"{s.offered_qps:.2f}", f"{s.success_pct:.1f}"]
        cells += [_cell(s.ttft_s.get(p), ".3f") for p in percentiles]
        cells += [_cell(s.e2e_s.get(p), ".3f") for p in percentiles]
        cells += [_cell(s.tokens_per_sec.get(p), ".1f") for p in percentiles]
        lines.append(_row(cells))
    states = {st.index: st for st in verdict.levels}
    lines += ["", _row(DETAIL_HEAD)]
    for s in summaries:
        lines.append(
            _row(
                [
                    f"{s.qps_target:g}",
                    str(s.n_sent),
                    str(s.n_ok),
                    f"{s.achieved_qps:.2f}",
                    _cell(None if s.completion_ratio is None else 100 * s.completion_ratio, ".0f"),
                    _cell(None if s.queue_growth is None else 100 * s.queue_growth, "+.0f"),
                    _cell(s.ttft_from_schedule_s.get(95.0), ".3f"),
                    _cell(s.itl_ms.get(50.0), ".1f"),
                    _cell(s.tpot_ms.get(50.0), ".1f"),
                    _cell(s.send_lag_ms.get(50.0), ".2f"),
                    _cell(s.send_lag_ms.get(99.0), ".2f"),
                    states[s.index].state,
                ]
            )
        )
    if thresholds.slos:
        lines += ["", f"SLO: {describe(thresholds.slos)}", _row(["QPS Target", "SLO", "Goodput"])]
        for s in summaries:
            met = {True: "met", False: "missed", None: "-"}[s.slo_met]
            lines.append(_row([f"{s.qps_target:g}", met, _cell(s.goodput_rps, ".2f")]))
    workload = workload_table(summaries)
    if workload is not None:
        lines += ["", WORKLOAD_TITLE, _row(WORKLOAD_HEAD)]
        lines += [_row(cells) for cells in workload]
    for s in summaries:
        if s.errors:
            lines += ["", f"QPS {s.qps_target:g} - Errors ({s.n_failed} total):"]
            lines += [f"  - {label}: {count} occurrences" for label, count in s.errors]
    retried = [s for s in summaries if s.n_retried]
    if retried:
        lines += ["", "Retries (--retries; the verdict counts a retried request as failed):"]
        lines += [retry_line(s) for s in retried]
    for s in summaries:
        if states[s.index].state == "client_limited":
            lines += ["", client_warning(s)]
        elif stalled(s, thresholds):
            lines += ["", stall_note(s)]
    return "\n".join([*lines, "", *format_verdict(verdict)]) + "\n"


DETAIL_HEAD = [
    "QPS Target",
    "Sent",
    "OK",
    "Done QPS",
    "Compl%",
    "Queue%",
    "TTFT P95*(s)",
    "ITL P50(ms)",
    "TPOT P50(ms)",
    "Lag P50(ms)",
    "Lag P99(ms)",
    "State",
]
LEGEND = (
    "Compl% = completions in the level's second half / sends one median E2E earlier; Queue% = "
    "growth of requests in "
    "flight per second, as % of the offered rate; TTFT P95* = measured from the scheduled send."
)


WORKLOAD_TITLE = (
    "Reasoning and prefix cache (TTFT = first token of either kind, TTFV = first visible "
    "token; Cached% = cached share of prompt tokens):"
)
WORKLOAD_HEAD = [
    "QPS Target",
    "Reasoning",
    "TTFT P50(s)",
    "TTFV P50(s)",
    "TTFT P95(s)",
    "TTFV P95(s)",
    "Reason tok",
    "Cached%",
]


def workload_table(summaries: Sequence[LevelSummary]) -> list[list[str]] | None:
    """Per level: requests that streamed reasoning (of the successes), TTFT and time to the
    first visible token (p50, p95), mean reasoning tokens and the cached share of prompt
    tokens; ``None`` when no level has any of these to show (no reasoning, no cache
    reported)."""
    if not any(
        s.n_reasoning or s.reasoning_tokens_mean is not None or s.cached_share is not None
        for s in summaries
    ):
        return None
    rows = []
    for s in summaries:
        visible = s.ttft_visible_s if s.n_reasoning else s.ttft_s
        rows.append(
            [
                f"{s.qps_target:g}",
                f"{s.n_reasoning}/{s.n_ok}",
                _cell(s.ttft_s.get(50.0), ".3f"),
                _cell(visible.get(50.0), ".3f"),
                _cell(s.ttft_s.get(95.0), ".3f"),
                _cell(visible.get(95.0), ".3f"),
                _cell(s.reasoning_tokens_mean, ".1f"),
                _cell(None if s.cached_share is None else 100 * s.cached_share, ".1f"),
            ]
        )
    return rows


def stall_note(summary: LevelSummary) -> str:
    """The note for a brief stall of the generator that delayed only a few sends."""
    lag95, lag_max = summary.send_lag_ms.get(95.0), summary.send_lag_ms.max
    return (
        f"note: at QPS {summary.qps_target:g} the load generator stalled briefly (send lag "
        f"max {_cell(lag_max, '.0f')} ms, p95 {_cell(lag95, '.1f')} ms): a few requests went "
        "out late; their latency is measured from their actual send."
    )


def retry_line(s: LevelSummary) -> str:
    """One level's retries: how many requests needed them, and the error rates with and
    without them."""
    return (
        f"  QPS {s.qps_target:g}: {s.n_retried} of {s.n_sent} requests retried "
        f"({s.n_retries} extra tries); failed at the first try {s.first_try_error_rate:.1%}, "
        f"in the end {s.error_rate:.1%}"
    )


def client_warning(summary: LevelSummary) -> str:
    """The loud line for a level where the load generator, not the server, fell behind."""
    lag50, lag95 = summary.send_lag_ms.get(50.0), summary.send_lag_ms.get(95.0)
    return (
        f"WARNING: at QPS {summary.qps_target:g} the load generator fell behind its schedule "
        f"({summary.n_late_sends} of {summary.n_sent} sends over {LATE_SEND_MS:g} ms late; send "
        f"lag p50 {_cell(lag50, '.1f')} ms, p95 {_cell(lag95, '.1f')} ms; offered "
        f"{summary.offered_qps:.2f} of {summary.scheduled_qps:.2f} QPS scheduled). Latencies at "
        "this level describe the client, not the server, and the verdict ignores it. Remedy: "
        "close other programs, give qpsweep a free core, or lower the level."
    )


def format_verdict(v: Verdict) -> list[str]:
    """The verdict block: the four numbers, then the reason wrapped at 80 columns."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    knee = "-"
    if v.knee is not None:
        check = "" if v.knee.kneedle_qps is None else f"; Kneedle {num(v.knee.kneedle_qps)}"
        knee = (
            f"{num(v.knee.qps)} [{num(v.knee.low)} - {num(v.knee.high)}] "
            f"(p95 {v.knee.metric.upper()}, two-segment fit{check})"
        )

    def interval(e: Estimate | None) -> str:
        if e is None:
            return ""
        high = "inf" if not math.isfinite(e.high) else num(e.high)
        return f" [{num(e.low)} - {high}] ({e.method})"

    pct = f"{v.confidence:.0%}"
    ttft, e2e = v.expected_at_recommended
    there = "" if ttft is None or e2e is None else f", p95 TTFT {ttft:.3g} s, E2E {e2e:.3g} s"
    lines = [
        RULE,
        "SATURATION VERDICT",
        RULE,
        f"  saturation QPS:       {num(v.saturation_qps)}{interval(v.saturation)}",
        f"  capacity QPS:         {num(v.capacity.value if v.capacity else None)}"
        f"{interval(v.capacity)}",
        f"  proved interval:      sustained {num(v.proved[0])}, saturated {num(v.proved[1])}"
        f" ({pct} confidence)",
        *([f"  to narrow it:         {v.to_narrow}"] if v.to_narrow else []),
        f"  knee QPS:             {knee}",
        f"  max sustainable QPS:  {num(v.max_sustainable_qps)}",
        f"  recommended QPS:      {num(v.recommended_qps)} (headroom {v.headroom:g}{there})",
    ]
    if any(st.certified is not None for st in v.levels):
        lines.append(f"  SLO-certified QPS:    {num(v.certified_qps)} (early stopping, {pct})")
    for st in v.levels:
        if st.needs:
            lines.append(f"  inconclusive at {st.qps_target:g} QPS: needs {st.needs}")
    return [
        *lines,
        "",
        *textwrap.wrap(v.reason, 80),
        "",
        *textwrap.wrap(LEGEND, 80),
    ]


def _dist(p: Percentiles, digits: int) -> dict[str, float | int | None]:
    return p.to_dict(digits)


def level_json(s: LevelSummary, state: LevelState) -> dict[str, Any]:
    """One entry of ``benchmark_qps_results.json`` (the seed's keys first)."""
    return {
        "qps_target": s.qps_target,
        "actual_qps": round(s.offered_qps, 4),
        "success_rate": round(s.success_pct, 3),
        "ttft": _dist(s.ttft_s, 6),
        "e2e_latency": _dist(s.e2e_s, 6),
        "tokens_per_sec": _dist(s.tokens_per_sec, 3),
        "errors": dict(s.errors),
        "state": state.state,
        "signals": list(state.signals),
        "achieved_qps": round(s.achieved_qps, 4),
        "scheduled_qps": round(s.scheduled_qps, 4),
        "itl_ms": _dist(s.itl_ms, 3),
        "tpot_ms": _dist(s.tpot_ms, 3),
        "send_lag_ms": _dist(s.send_lag_ms, 3),
        "n_late_sends": s.n_late_sends,
        "ttft_from_schedule": _dist(s.ttft_from_schedule_s, 6),
        "e2e_from_schedule": _dist(s.e2e_from_schedule_s, 6),
        "slo_met": s.slo_met,
        "goodput_rps": None if s.goodput_rps is None else round(s.goodput_rps, 4),
        "completion_ratio": None if s.completion_ratio is None else round(s.completion_ratio, 4),
        "queue_growth": None if s.queue_growth is None else round(s.queue_growth, 4),
        "error_rate": round(s.error_rate, 4),
        "first_try_error_rate": round(s.first_try_error_rate, 4),
        "n_retried": s.n_retried,
        "n_retries": s.n_retries,
        "n_scheduled": s.n_scheduled,
        "n_sent": s.n_sent,
        "n_ok": s.n_ok,
        "n_failed": s.n_failed,
        "errors_by_kind": dict(s.errors_by_kind),
        "duration_s": s.duration_s,
        "arrival_window_s": round(s.arrival_window_s, 3),
        "output_tok_per_s": round(s.output_tok_per_s, 3),
        "input_tokens_mean": s.input_tokens_mean,
        "output_tokens_mean": s.output_tokens_mean,
        "token_counted_by": dict(s.token_counted_by),
        "n_reasoning": s.n_reasoning,
        "ttft_visible": _dist(s.ttft_visible_s if s.n_reasoning else s.ttft_s, 6),
        "reasoning_tokens_mean": s.reasoning_tokens_mean,
        "cached_share": None if s.cached_share is None else round(s.cached_share, 4),
    }


def results_json(
    summaries: Sequence[LevelSummary],
    verdict: Verdict,
    server_metrics: dict[int, dict[str, dict[str, float]]] | None = None,
) -> list[dict[str, Any]]:
    """The whole ``benchmark_qps_results.json``: a list with one entry per level, with the
    scraped server gauges per level (mean, max, last, n) when ``--metrics-url`` was used."""
    states = {st.index: st for st in verdict.levels}
    out = [level_json(s, states[s.index]) for s in summaries]
    if server_metrics is not None:
        for entry, s in zip(out, summaries, strict=True):
            entry["server_metrics"] = server_metrics.get(s.index, {})
    return out


def _span(e: Estimate | None) -> list[float | None] | None:
    """An estimate's interval as JSON (``None`` for an open upper end)."""
    if e is None:
        return None
    return [round(e.low, 4), round(e.high, 4) if math.isfinite(e.high) else None]


def verdict_json(v: Verdict) -> dict[str, Any]:
    """``saturation.json``: the verdict, every knee found, and each level's state."""

    def rnd(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    def knee(k: Knee) -> dict[str, Any]:
        return {
            "metric": f"p95 {k.metric}",
            "qps": rnd(k.qps),
            "low": rnd(k.low),
            "high": rnd(k.high),
            "slope_before": rnd(k.slope_before),
            "slope_after": rnd(k.slope_after),
            "kneedle_qps": rnd(k.kneedle_qps),
        }

    def estimate(e: Estimate | None) -> dict[str, Any] | None:
        if e is None:
            return None
        return {"value": rnd(e.value), "interval": _span(e), "method": e.method}

    return {
        "saturation_qps": rnd(v.saturation_qps),
        "saturation_interval": _span(v.saturation),
        "capacity_qps": rnd(v.capacity.value) if v.capacity else None,
        "capacity_interval": _span(v.capacity),
        "confidence": v.confidence,
        "saturation": estimate(v.saturation),
        "capacity": estimate(v.capacity),
        "error_crossing": estimate(v.errors),
        "proved_interval": list(v.proved),
        "to_narrow": v.to_narrow,
        "certified_qps": rnd(v.certified_qps),
        "expected_at_recommended": {
            "ttft_p95_s": rnd(v.expected_at_recommended[0]),
            "e2e_p95_s": rnd(v.expected_at_recommended[1]),
        },
        "contradictions": list(v.contradictions),
        "saturation_signals": list(v.saturation_signals),
        "knee_qps": rnd(v.knee.qps) if v.knee else None,
        "knee_interval": [rnd(v.knee.low), rnd(v.knee.high)] if v.knee else None,
        "max_sustainable_qps": rnd(v.max_sustainable_qps),
        "recommended_qps": rnd(v.recommended_qps),
        "headroom": v.headroom,
        "reason": v.reason,
        "suggestion": v.suggestion,
        "knee_method": "two-segment piecewise-linear least squares on p95 vs offered QPS; "
        f"interval: 5th-95th percentile of {BOOTSTRAP} bootstrap refits; cross-check: Kneedle",
        "knees": [knee(k) for k in v.knees],
        "levels": [
            {
                "index": st.index,
                "qps_target": st.qps_target,
                "offered_qps": rnd(st.offered_qps),
                "state": st.state,
                "signals": list(st.signals),
                "growth_z": rnd(st.growth_z),
                "needs": st.needs,
                "certified": st.certified,
            }
            for st in v.levels
        ],
    }
