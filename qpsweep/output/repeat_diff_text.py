"""``qpsweep diff`` of repeats: the console table and ``diff.json`` of a ``RepeatDiff``, pure."""

from __future__ import annotations

from typing import Any

from qpsweep.analysis.repeat_diff import RepeatDiff, RepeatLevelDiff, RepeatRow
from qpsweep.output.repeats_text import LABELS, spread_json, state_counts

TEST_TEXT = (
    "per figure, one value per repeat: Welch's t test on the repeats' means (one run against "
    "repeats: a prediction-interval t test with the repeats' spread); 95% interval of the "
    "difference; p-values Holm-adjusted over the diff"
)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _signed(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:+.3g}{suffix}"


def row_verdict(row: RepeatRow, diff: RepeatDiff, level: RepeatLevelDiff | None) -> str:
    """``REGRESSION``, ``worse <T%``, ``improved``, ``~`` (not significant), ``cannot tell``
    (too few repeats or no spread), or ``not judged`` (a client-limited or saturated level)."""
    if row.p_value is None:
        return "cannot tell"
    if not row.significant or not row.delta:
        return "~"
    if level is not None and not level.judged:
        return "not judged"
    if row.regression:
        return "REGRESSION"
    return f"worse <{diff.threshold_pct:g}%" if row.worse else "improved"


def _line(label: str, row: RepeatRow, verdict: str) -> str:
    test = row.test
    interval = "-" if test is None else f"[{_signed(test.low)}, {_signed(test.high)}]"
    b, c = row.base, row.candidate
    some = (
        f" (in {b.n} of {b.n + b.n_missing} and {c.n} of {c.n + c.n_missing} repeats)"
        if b.n_missing or c.n_missing
        else ""
    )
    return (
        f"{label}{LABELS.get(row.figure, row.figure):<20} {_num(b.mean):>9} "
        f"{_num(c.mean):>9} {_signed(row.delta):>9} {_signed(row.change_pct, '%'):>8} "
        f"{interval:<22} {_num(row.p_value, 2):>8}  {verdict}{some}"
    )


def describe(qps: float | None, figure: str) -> str:
    """One regression in a few words."""
    if figure == "state":
        return f"{qps:g} QPS no longer sustained"
    where = "of the verdict" if qps is None else f"at {qps:g} QPS"
    return f"{LABELS.get(figure, figure)} {where}"


def format_repeat_diff(diff: RepeatDiff, base: str, candidate: str) -> str:
    """The console report: the verdict's figures, then per level, each with means, delta,
    the interval of the difference, the adjusted p-value and a verdict."""
    header = (
        f"{'':<9}{'figure':<20} {'base':>9} {'cand.':>9} {'delta':>9} {'change':>8} "
        f"{'95% interval of delta':<22} {'p (Holm)':>8}  verdict"
    )
    out = [
        f"base:      {base} ({diff.n_base} repeat(s))",
        f"candidate: {candidate} ({diff.n_candidate} repeat(s))",
        f"test: {TEST_TEXT}, alpha {diff.alpha:g}; regression = significant, worse, and beyond "
        f"{diff.threshold_pct:g}%",
        "",
        header,
    ]
    out += [
        _line(f"{'verdict':<9}", row, row_verdict(row, diff, None)) for row in diff.verdict_rows
    ]
    out.append("")
    for lv in diff.levels:
        out.append(
            f"{lv.qps_target:>7g}  states: base {state_counts(lv.base_states)}; candidate "
            f"{state_counts(lv.candidate_states)}"
            + ("  REGRESSION: the candidate no longer sustains this level" if lv.lost else "")
        )
        out += [_line(" " * 9, row, row_verdict(row, diff, lv)) for row in lv.rows]
        if not lv.judged:
            out.append(f"{'':>9}(a repeat was client_limited or saturated here: shown, not judged)")
    for side, only in (("base", diff.only_base), ("candidate", diff.only_candidate)):
        if only:
            out.append(
                f"levels only in the {side} (not compared): {', '.join(f'{q:g}' for q in only)}"
            )
    if max(diff.n_base, diff.n_candidate) < 2:
        out.append("one run on each side: the repeats cannot tell; use --repeat 2 or more")
    found = diff.regressions
    out.append("")
    if found:
        worst = ", ".join(describe(q, f) for q, f in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        out.append(f"REGRESSION: {len(found)} significant regression(s): {worst}{more}")
    else:
        out.append(
            f"no significant regression beyond {diff.threshold_pct:g}% "
            f"in {len(diff.levels)} common level(s) and the verdict"
        )
    return "\n".join(out) + "\n"


def _row_json(row: RepeatRow, diff: RepeatDiff, level: RepeatLevelDiff | None) -> dict[str, Any]:
    def rnd(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    test = row.test
    return {
        "figure": row.figure,
        "base": spread_json(row.base),
        "candidate": spread_json(row.candidate),
        "delta": rnd(row.delta),
        "change_pct": rnd(row.change_pct),
        "delta_low": None if test is None else rnd(test.low),
        "delta_high": None if test is None else rnd(test.high),
        "dof": None if test is None else rnd(test.dof),
        "method": None if test is None else test.method,
        "p_value": row.p_value,
        "significant": row.significant,
        "worse": row.worse,
        "regression": row.regression,
        "verdict": row_verdict(row, diff, level),
    }


def repeat_diff_json(diff: RepeatDiff, base: str, candidate: str) -> dict[str, Any]:
    """``diff.json`` of a comparison of repeats."""
    return {
        "base": base,
        "candidate": candidate,
        "base_repeats": diff.n_base,
        "candidate_repeats": diff.n_candidate,
        "alpha": diff.alpha,
        "fail_on_regression_pct": diff.threshold_pct,
        "test": TEST_TEXT,
        "verdict": [_row_json(row, diff, None) for row in diff.verdict_rows],
        "levels": [
            {
                "qps_target": lv.qps_target,
                "base_states": list(lv.base_states),
                "candidate_states": list(lv.candidate_states),
                "judged": lv.judged,
                "lost": lv.lost,
                "figures": [_row_json(row, diff, lv) for row in lv.rows],
            }
            for lv in diff.levels
        ],
        "only_in_base": list(diff.only_base),
        "only_in_candidate": list(diff.only_candidate),
        "regressions": len(diff.regressions),
        "regression_list": [describe(q, f) for q, f in diff.regressions],
        "result": "regression" if diff.regressions else "ok",
    }
