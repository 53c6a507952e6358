"""Level summaries -> the console table, ``report.txt`` and the results JSON (pure).

The table and the JSON entries keep the seed tool's shape: TTFT and E2E in seconds,
``success_rate`` in percent, ``actual_qps`` the offered (sent) rate.  qpsweep's additions
carry their unit in the name (``itl_ms``, ``tpot_ms``, ``send_lag_ms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qpsweep.analyze import LAG_P99_LIMIT_MS, LevelSummary, Percentiles, percentile_key

RULE = "=" * 80


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(cells: Sequence[str]) -> str:
    return "".join(f"{cell:<13}" for cell in cells).rstrip()


def format_table(summaries: Sequence[LevelSummary], percentiles: Sequence[float]) -> str:
    """The seed-style results table, a latency-detail table, and per-level error lines."""
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
    lines += [
        "",
        _row(
            [
                "QPS Target",
                "Sent",
                "OK",
                "Done QPS",
                "ITL P50(ms)",
                "TPOT P50(ms)",
                "Out tok/s",
                "Lag P50(ms)",
                "Lag P99(ms)",
            ]
        ),
    ]
    for s in summaries:
        lines.append(
            _row(
                [
                    f"{s.qps_target:g}",
                    str(s.n_sent),
                    str(s.n_ok),
                    f"{s.achieved_qps:.2f}",
                    _cell(s.itl_ms.get(50.0), ".1f"),
                    _cell(s.tpot_ms.get(50.0), ".1f"),
                    f"{s.output_tok_per_s:.1f}",
                    _cell(s.send_lag_ms.get(50.0), ".2f"),
                    _cell(s.send_lag_ms.get(99.0), ".2f"),
                ]
            )
        )
    for s in summaries:
        if s.errors:
            lines += ["", f"QPS {s.qps_target:g} - Errors ({s.n_failed} total):"]
            lines += [f"  - {label}: {count} occurrences" for label, count in s.errors]
    lines += [warning for s in summaries if (warning := generator_warning(s))]
    return "\n".join(lines) + "\n"


def generator_warning(summary: LevelSummary) -> str | None:
    """A loud line when the load generator, not the server, fell behind at this level."""
    lag = summary.send_lag_ms.get(99.0)
    if not summary.generator_behind or lag is None:
        return None
    return (
        f"\nWARNING: at QPS {summary.qps_target:g} the load generator fell behind its schedule "
        f"(send lag p99 {lag:.1f} ms > {LAG_P99_LIMIT_MS:g} ms): latencies at this level "
        "describe the client, not the server. Close other programs, lower the level, or run "
        "qpsweep on a machine with a free core."
    )


def _dist(p: Percentiles, digits: int) -> dict[str, float | int | None]:
    return p.to_dict(digits)


def level_json(s: LevelSummary) -> dict[str, Any]:
    """One entry of ``benchmark_qps_results.json`` (the seed's keys first)."""
    return {
        "qps_target": s.qps_target,
        "actual_qps": round(s.offered_qps, 4),
        "success_rate": round(s.success_pct, 3),
        "ttft": _dist(s.ttft_s, 6),
        "e2e_latency": _dist(s.e2e_s, 6),
        "tokens_per_sec": _dist(s.tokens_per_sec, 3),
        "errors": dict(s.errors),
        "achieved_qps": round(s.achieved_qps, 4),
        "itl_ms": _dist(s.itl_ms, 3),
        "tpot_ms": _dist(s.tpot_ms, 3),
        "send_lag_ms": _dist(s.send_lag_ms, 3),
        "n_scheduled": s.n_scheduled,
        "n_sent": s.n_sent,
        "n_ok": s.n_ok,
        "n_failed": s.n_failed,
        "errors_by_kind": dict(s.errors_by_kind),
        "arrival_window_s": round(s.arrival_window_s, 3),
        "output_tok_per_s": round(s.output_tok_per_s, 3),
        "input_tokens_mean": s.input_tokens_mean,
        "output_tokens_mean": s.output_tokens_mean,
        "token_counted_by": dict(s.token_counted_by),
        "generator_behind": s.generator_behind,
    }


def results_json(summaries: Sequence[LevelSummary]) -> list[dict[str, Any]]:
    """The whole ``benchmark_qps_results.json``: a list with one entry per level."""
    return [level_json(s) for s in summaries]
