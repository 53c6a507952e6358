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

from qpsweep.analysis.cost import Cost, RunCost
from qpsweep.analysis.estimate import Estimate
from qpsweep.analysis.percentiles import Percentiles, percentile_key
from qpsweep.analysis.sessions import SessionSummary
from qpsweep.analysis.summary import LATE_SEND_MS, LevelSummary
from qpsweep.analysis.verdict import BOOTSTRAP, Knee, LevelState, Verdict, stalled
from qpsweep.config.slo import describe
from qpsweep.config.thresholds import Thresholds
from qpsweep.records.run_files import SCHEMA_VERSION

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
    trace_rate_qps: float | None = None,
    cost: RunCost | None = None,
) -> str:
    """The seed-style results table, a detail table with each level's state, the cost of each
    level when priced (``cost``), the error lines per level, loud warnings for client-limited
    levels, and the verdict.  With
    ``trace_rate_qps`` (``--arrival trace``) each QPS also reads as a multiple of the trace's
    mean rate (``0.674 (2x)``), and the verdict says how much of today's traffic it takes."""

    def target(qps: float) -> str:
        return f"{qps:g}" + (f" ({qps / trace_rate_qps:.3g}x)" if trace_rate_qps else "")

    tags = [percentile_key(p).upper() for p in percentiles]
    head = ["QPS Target", "Actual QPS", "Success%"]
    head += [f"TTFT {t}(s)" for t in tags] + [f"E2E {t}(s)" for t in tags]
    head += [f"Tok/s {t}" for t in tags]
    lines = [RULE, "QPS BENCHMARK RESULTS", RULE, _row(head)]
    for s in summaries:
        cells = [target(s.qps_target), f"{s.offered_qps:.2f}", f"{s.success_pct:.1f}"]
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
                    target(s.qps_target),
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
    lines += session_lines(summaries)
    workload = workload_table(summaries)
    if workload is not None:
        lines += ["", WORKLOAD_TITLE, _row(WORKLOAD_HEAD)]
        lines += [_row(cells) for cells in workload]
    if cost is not None:
        lines += ["", *cost_lines(summaries, cost)]
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
    return "\n".join([*lines, "", *format_verdict(verdict, trace_rate_qps, cost)]) + "\n"


def money(value: float | None) -> str:
    """A price in USD to 4 significant digits (``-`` when unknown)."""
    return "-" if value is None else f"${value:.4g}"


def cost_lines(summaries: Sequence[LevelSummary], cost: RunCost) -> list[str]:
    """The cost table: each level priced at its achieved rates (``qpsweep.analysis.cost``)."""
    lines = [
        f"Cost at {money(cost.cost_per_hour_usd)}/hour (--cost-per-hour), at each level's "
        "achieved rates:",
        _row(["QPS Target", "Done QPS", "Out tok/s", "$/1M out tok", "$/1k req"]),
    ]
    for s in summaries:
        c = cost.level(s.index)
        if c is None:
            continue
        lines.append(
            _row(
                [
                    f"{s.qps_target:g}",
                    f"{c.qps:.2f}",
                    f"{c.output_tok_per_s:.1f}",
                    money(c.per_1m_output_tokens_usd),
                    money(c.per_1k_requests_usd),
                ]
            )
        )
    return lines


def recommended_cost_text(cost: RunCost) -> str:
    """The verdict's cost line: the price at the recommended QPS, or why there is none."""
    c = cost.recommended
    if c is None:
        return "- (no recommended QPS)"
    return (
        f"{money(c.per_1m_output_tokens_usd)} per 1M output tokens, "
        f"{money(c.per_1k_requests_usd)} per 1k requests ({c.qps:.3g} QPS, "
        f"~{c.output_tok_per_s:.0f} out tok/s, {money(cost.cost_per_hour_usd)}/hour)"
    )


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


SESSION_HEAD = [
    "QPS Target",
    "Req/s",
    "Sessions/s",
    "Sessions",
    "Req/session",
    "Hist tok",
    "Hist P95",
    "TTFT1 P50(s)",
    "TTFT2+ P50",
    "TTFT1 P95",
    "TTFT2+ P95",
    "Not sent",
]


def session_lines(summaries: Sequence[LevelSummary]) -> list[str]:
    """The ``--multi-turn`` table (none without sessions): per level the request rate and
    the session start rate, requests per session, history tokens per turn (mean, p95), TTFT
    of turn 1 and of later turns, and the turns not sent, with their reasons below."""
    levels = [(s, s.sessions) for s in summaries if s.sessions is not None]
    if not levels:
        return []
    lines = [
        "",
        "Sessions (--multi-turn; a turn is a request, released when the answer before it ends "
        "+ think time):",
        _row(SESSION_HEAD),
    ]
    for s, ss in levels:
        lines.append(
            _row(
                [
                    f"{s.qps_target:g}",
                    f"{s.offered_qps:.2f}",
                    f"{ss.started_qps:.2f}",
                    str(ss.n_sessions),
                    _cell(ss.requests_per_session, ".2f"),
                    _cell(ss.history_tokens_mean, ".0f"),
                    _cell(ss.history_tokens_p95, ".0f"),
                    _cell(ss.ttft_first_turn_s.get(50.0), ".3f"),
                    _cell(ss.ttft_later_turns_s.get(50.0), ".3f"),
                    _cell(ss.ttft_first_turn_s.get(95.0), ".3f"),
                    _cell(ss.ttft_later_turns_s.get(95.0), ".3f"),
                    str(ss.n_not_sent),
                ]
            )
        )
    for s, ss in levels:
        if ss.not_sent:
            reasons = ", ".join(f"{reason} {n}" for reason, n in ss.not_sent)
            lines.append(f"  QPS {s.qps_target:g}: turns not sent: {reasons}")
    return lines


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


def trace_multiples(v: Verdict, trace_rate_qps: float) -> dict[str, float | None]:
    """The verdict's rates as multiples of a trace's mean rate (``today's traffic``)."""

    def x(qps: float | None) -> float | None:
        return None if qps is None else round(qps / trace_rate_qps, 3)

    return {
        "saturation": x(v.saturation_qps),
        "capacity_low": x(v.capacity.low if v.capacity else None),
        "max_sustainable": x(v.max_sustainable_qps),
        "recommended": x(v.recommended_qps),
    }


def traffic_words(v: Verdict, trace_rate_qps: float) -> tuple[str, str]:
    """The verdict line and sentence in multiples of the trace's mean rate."""
    m = trace_multiples(v, trace_rate_qps)

    def x(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}x"

    line = (
        f"  trace multiples:      saturation {x(m['saturation'])}, max sustainable "
        f"{x(m['max_sustainable'])}, recommended {x(m['recommended'])} "
        f"(1x = the trace's mean, {trace_rate_qps:.4g} req/s)"
    )
    if m["saturation"] is not None:
        took = f"This endpoint saturates at {x(m['saturation'])} today's traffic"
    elif m["capacity_low"]:
        took = f"This endpoint took at least {x(m['capacity_low'])} today's traffic unsaturated"
    else:
        took = "This endpoint's capacity is not known in multiples of today's traffic"
    if m["recommended"] is not None:
        took += f"; it can be run at up to {x(m['recommended'])} today's traffic"
    return line, took + f" (the trace's mean rate, {trace_rate_qps:.4g} req/s)."


def format_verdict(
    v: Verdict, trace_rate_qps: float | None = None, cost: RunCost | None = None
) -> list[str]:
    """The verdict block: the four numbers, then the reason wrapped at 80 columns; with
    ``trace_rate_qps``, the rates as multiples of the trace's mean rate too; with ``cost``, the
    price at the recommended QPS."""

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
    if cost is not None:
        lines.append(f"  cost at recommended:  {recommended_cost_text(cost)}")
    if any(st.certified is not None for st in v.levels):
        lines.append(f"  SLO-certified QPS:    {num(v.certified_qps)} (early stopping, {pct})")
    for st in v.levels:
        if st.needs:
            lines.append(f"  inconclusive at {st.qps_target:g} QPS: needs {st.needs}")
    reason = v.reason
    if trace_rate_qps:
        line, sentence = traffic_words(v, trace_rate_qps)
        lines.append(line)
        reason = f"{sentence} {reason}"
    return [
        *lines,
        "",
        *textwrap.wrap(reason, 80),
        "",
        *textwrap.wrap(LEGEND, 80),
    ]


def _dist(p: Percentiles, digits: int) -> dict[str, float | int | None]:
    return p.to_dict(digits)


def cost_json(c: Cost | None) -> dict[str, float | None]:
    """A ``Cost`` as JSON: USD and rates rounded (``None`` values when not priced)."""

    def rnd(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    if c is None:
        return dict.fromkeys(COST_KEYS)
    return {
        "qps": rnd(c.qps, 4),
        "output_tok_per_s": rnd(c.output_tok_per_s, 3),
        "cost_per_1m_output_tokens_usd": rnd(c.per_1m_output_tokens_usd, 6),
        "cost_per_1k_requests_usd": rnd(c.per_1k_requests_usd, 6),
    }


COST_KEYS = ("qps", "output_tok_per_s", "cost_per_1m_output_tokens_usd", "cost_per_1k_requests_usd")


def level_json(s: LevelSummary, state: LevelState, cost: Cost | None = None) -> dict[str, Any]:
    """One entry of ``benchmark_qps_results.json`` (the seed's keys first); the two cost
    keys are ``None`` unless the run is priced."""
    priced = cost_json(cost)
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
        "cost_per_1m_output_tokens_usd": priced["cost_per_1m_output_tokens_usd"],
        "cost_per_1k_requests_usd": priced["cost_per_1k_requests_usd"],
        "n_reasoning": s.n_reasoning,
        "ttft_visible": _dist(s.ttft_visible_s if s.n_reasoning else s.ttft_s, 6),
        "reasoning_tokens_mean": s.reasoning_tokens_mean,
        "cached_share": None if s.cached_share is None else round(s.cached_share, 4),
        **({} if s.sessions is None else {"sessions": sessions_json(s.sessions)}),
    }


def sessions_json(ss: SessionSummary) -> dict[str, Any]:
    """A ``--multi-turn`` level's ``sessions`` entry of the results JSON."""

    def rnd(value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "session_qps": rnd(ss.session_qps),
        "started_qps": rnd(ss.started_qps),
        "n_sessions": ss.n_sessions,
        "n_completed": ss.n_completed,
        "n_failed": ss.n_failed,
        "requests_per_session": rnd(ss.requests_per_session),
        "history_tokens": {
            "mean": rnd(ss.history_tokens_mean, 1),
            "p95": rnd(ss.history_tokens_p95, 1),
        },
        "ttft_first_turn": _dist(ss.ttft_first_turn_s, 6),
        "ttft_later_turns": _dist(ss.ttft_later_turns_s, 6),
        "not_sent": dict(ss.not_sent),
    }


def results_json(
    summaries: Sequence[LevelSummary],
    verdict: Verdict,
    server_metrics: dict[int, dict[str, dict[str, float]]] | None = None,
    cost: RunCost | None = None,
) -> list[dict[str, Any]]:
    """The whole ``benchmark_qps_results.json``: a list with one entry per level, with the
    scraped server gauges per level (mean, max, last, n) when ``--metrics-url`` was used, each
    level's cost when priced, and each entry's ``schema_version`` (the file stays a list, as the
    seed tool wrote it)."""
    states = {st.index: st for st in verdict.levels}
    out = [level_json(s, states[s.index], cost.level(s.index) if cost else None) for s in summaries]
    if server_metrics is not None:
        for entry, s in zip(out, summaries, strict=True):
            entry["server_metrics"] = server_metrics.get(s.index, {})
    return [entry | {"schema_version": SCHEMA_VERSION} for entry in out]


def _span(e: Estimate | None) -> list[float | None] | None:
    """An estimate's interval as JSON (``None`` for an open upper end)."""
    if e is None:
        return None
    return [round(e.low, 4), round(e.high, 4) if math.isfinite(e.high) else None]


def verdict_json(
    v: Verdict, trace_rate_qps: float | None = None, cost: RunCost | None = None
) -> dict[str, Any]:
    """``saturation.json``: the verdict, every knee found, and each level's state; with
    ``trace_rate_qps`` (``--arrival trace``), ``trace_multiples``: the rates as multiples of
    the trace's mean rate; ``cost_per_hour_usd`` and ``cost_at_recommended`` (``None`` unless
    priced)."""

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
        "schema_version": SCHEMA_VERSION,
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
        "cost_per_hour_usd": cost.cost_per_hour_usd if cost else None,
        "cost_at_recommended": cost_json(cost.recommended) if cost and cost.recommended else None,
        "reason": v.reason,
        "suggestion": v.suggestion,
        "trace_mean_rate_qps": trace_rate_qps,
        "trace_multiples": None if not trace_rate_qps else trace_multiples(v, trace_rate_qps),
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
