"""``qpsweep diff`` output: the console table and ``diff.json`` of a ``RunDiff``, pure."""

from __future__ import annotations

from typing import Any

from qpsweep.analysis.diff import COST_METRICS, LevelDiff, Row, RunDiff

_NAMES = {
    "ttft_s": ("TTFT", "s"),
    "ttft_visible_s": ("TTFV", "s"),
    "cached_pct": ("cached", "%"),
    "itl_ms": ("ITL", "ms"),
    "e2e_s": ("E2E", "s"),
    "tokens_per_sec": ("tok/s", ""),
    "success_pct": ("success", "%"),
    "state": ("state", ""),
    "cost_1m_out_usd": ("$/1M out", ""),
    "cost_1k_req_usd": ("$/1k req", ""),
}


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _signed(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:+.3g}{suffix}"


def row_verdict(row: Row, diff: RunDiff, level: LevelDiff) -> str:
    """``REGRESSION``, ``worse <T%``, ``improved``, ``mixed`` (the row moved against the
    test's direction), ``~`` (not significant), ``n/a`` (too few samples), ``untested`` (a
    cost row: a plain number), or why the level is not judged (``client-limited``,
    ``saturated``)."""
    if row.metric in COST_METRICS:
        return "untested"
    if row.p_value is None:
        return "n/a"
    if not row.significant or row.delta == 0:
        return "~"
    if level.client_limited:
        return "client-limited"
    if level.saturated:
        return "saturated"
    if row.regression:
        return "REGRESSION"
    if row.worse != row.test_worse:
        return "mixed"
    return f"worse <{diff.threshold_pct:g}%" if row.worse else "improved"


def describe(qps: float, row: Row) -> str:
    """One regression in a few words."""
    if row.metric == "state":
        return f"{qps:g} QPS no longer sustained ({row.stat})"
    return f"{_NAMES[row.metric][0]} {row.stat} at {qps:g} QPS ({_signed(row.change_pct, '%')})"


def format_diff(diff: RunDiff, base: str, candidate: str) -> str:
    """The console report: per level and metric, then the verdict's numbers."""
    out = [
        f"base:      {base}",
        f"candidate: {candidate}",
        "test: Mann-Whitney U on block medians per level and metric (Fisher exact for "
        f"success), p-values Holm-adjusted, alpha {diff.alpha:g}; regression = significant, "
        f"worse, and beyond {diff.threshold_pct:g}%",
        "",
        f"{'QPS':>8}  {'metric':<12} {'base':>10} {'candidate':>10} {'delta':>10} "
        f"{'change':>8} {'p (Holm)':>8}  verdict",
    ]
    for lv in diff.levels:
        for row in lv.rows:
            name, unit = _NAMES[row.metric]
            label = f"{name} {row.stat}" if row.stat not in ("rate", "level") else name
            out.append(
                f"{lv.qps_target:>8g}  {label + (f' ({unit})' if unit else ''):<12} "
                f"{_num(row.base):>10} {_num(row.candidate):>10} {_signed(row.delta):>10} "
                f"{_signed(row.change_pct, '%'):>8} {_num(row.p_value, 2):>8}  "
                f"{row_verdict(row, diff, lv)}"
            )
        if lv.base_state != lv.candidate_state:
            flag = "  REGRESSION: the candidate no longer sustains this level" if lv.lost else ""
            out.append(
                f"{lv.qps_target:>8g}  state: {lv.base_state or '-'} (base) -> "
                f"{lv.candidate_state or '-'} (candidate){flag}"
            )
        for name, a, b in lv.session_rows:
            delta = None if a is None or b is None else b - a
            change = None if delta is None or not a else 100.0 * delta / a
            out.append(
                f"{lv.qps_target:>8g}  {'session: ' + name:<32} {_num(a):>10} {_num(b):>10} "
                f"{_signed(delta):>10} {_signed(change, '%'):>8}  (not tested)"
            )
        if lv.saturated and not lv.client_limited:
            out.append(
                f"{'':>8}  (saturated: latency there grows with the queue, so it is shown, "
                "not judged)"
            )
        out.append("")
    for side, only in (("base", diff.only_base), ("candidate", diff.only_candidate)):
        if only:
            qps = ", ".join(f"{q:g}" for q in only)
            out.append(f"levels only in the {side} run (not compared): {qps}")
    out.append("")
    width = max(22, *(len(name) for name, _, _ in diff.verdict_rows))
    out.append(f"{'verdict':<{width}} {'base':>10} {'candidate':>10} {'delta':>10} {'change':>8}")
    for name, a, b in diff.verdict_rows:
        delta = None if a is None or b is None else b - a
        change = None if delta is None or not a else 100.0 * delta / a
        out.append(
            f"{name:<{width}} {_num(a):>10} {_num(b):>10} {_signed(delta):>10} "
            f"{_signed(change, '%'):>8}"
        )
    found = diff.regressions
    out.append("")
    if found:
        worst = ", ".join(describe(q, r) for q, r in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        out.append(f"REGRESSION: {len(found)} significant regression(s): {worst}{more}")
    else:
        out.append(
            f"no significant regression beyond {diff.threshold_pct:g}% "
            f"in {len(diff.levels)} common level(s)"
        )
    return "\n".join(out) + "\n"


def diff_json(diff: RunDiff, base: str, candidate: str) -> dict[str, Any]:
    """``diff.json``: every row with its numbers, plus the verdict shift and the summary."""

    def rnd(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    return {
        "base": base,
        "candidate": candidate,
        "alpha": diff.alpha,
        "fail_on_regression_pct": diff.threshold_pct,
        "test": "Mann-Whitney U two-sided on block medians (up to 10 consecutive blocks of at "
        "least 3 requests, in send order) of TTFT, mean ITL, E2E and tokens/s; "
        "Fisher exact on success counts; p_value is Holm-Bonferroni adjusted over the diff",
        "levels": [
            {
                "qps_target": lv.qps_target,
                "base_state": lv.base_state,
                "candidate_state": lv.candidate_state,
                "judged": not (lv.client_limited or lv.saturated),
                "lost": lv.lost,
                "metrics": [
                    {
                        "metric": row.metric,
                        "stat": row.stat,
                        "base": rnd(row.base),
                        "candidate": rnd(row.candidate),
                        "delta": rnd(row.delta),
                        "change_pct": rnd(row.change_pct),
                        "p_value": row.p_value,
                        "significant": row.significant,
                        "worse": row.worse,
                        "test_direction_worse": row.test_worse,
                        "regression": row.regression,
                        "verdict": row_verdict(row, diff, lv),
                    }
                    for row in lv.rows
                ],
                **(
                    {"sessions": {n: {"base": rnd(a), "candidate": rnd(b)} for n, a, b in ss}}
                    if (ss := lv.session_rows)
                    else {}
                ),
            }
            for lv in diff.levels
        ],
        "only_in_base": list(diff.only_base),
        "only_in_candidate": list(diff.only_candidate),
        "verdict": {
            name: {
                "base": rnd(a),
                "candidate": rnd(b),
                "delta": None if a is None or b is None else rnd(b - a),
            }
            for name, a, b in diff.verdict_rows
        },
        "regressions": len(diff.regressions),
        "regression_list": [describe(q, r) for q, r in diff.regressions],
        "result": "regression" if diff.regressions else "ok",
    }
