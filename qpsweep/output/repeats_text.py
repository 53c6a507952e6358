"""``--repeat N`` output: the repeats' summary as text and as ``repeats.json``'s figures, pure."""

from __future__ import annotations

from typing import Any

from qpsweep.analysis.repeats import RepeatSummary, Spread

LABELS = {
    "achieved_qps": "achieved QPS",
    "success_pct": "success %",
    "ttft_p50_s": "TTFT p50 (s)",
    "ttft_p95_s": "TTFT p95 (s)",
    "ttft_p99_s": "TTFT p99 (s)",
    "e2e_p50_s": "E2E p50 (s)",
    "e2e_p95_s": "E2E p95 (s)",
    "itl_p50_ms": "ITL p50 (ms)",
    "tpot_p50_ms": "TPOT p50 (ms)",
    "output_tok_per_s": "output tok/s",
    "saturation_qps": "saturation QPS",
    "capacity_qps": "capacity QPS",
    "max_sustainable_qps": "max sustainable QPS",
    "recommended_qps": "recommended QPS",
}
CANNOT_TELL = "cannot tell (1 run)"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(sp: Spread) -> str:
    if sp.mean is None:
        return "-"
    if sp.low is None or sp.high is None:
        return CANNOT_TELL
    return f"{_num(sp.low)} - {_num(sp.high)}"


def _cv(sp: Spread) -> str:
    return "-" if sp.cv is None else f"{100.0 * sp.cv:.1f}%"


def _row(label: str, sp: Spread, indent: str) -> str:
    missing = f"  (missing in {sp.n_missing})" if sp.n_missing else ""
    return (
        f"{indent}{LABELS.get(label, label):<20} {_num(sp.mean):>9}  {_interval(sp):<21} "
        f"{_cv(sp):>6}{missing}"
    )


def state_counts(states: tuple[str, ...]) -> str:
    """``ok x4, degraded x1``: how many repeats were in each state, in order of appearance."""
    counts: dict[str, int] = {}
    for state in states:
        counts[state or "-"] = counts.get(state or "-", 0) + 1
    return ", ".join(f"{state} x{n}" for state, n in counts.items())


def format_repeats(summary: RepeatSummary, auto: bool, not_counted: tuple[str, ...] = ()) -> str:
    """The summary: the verdict's figures, then each level's, as mean, interval and cv."""
    seeds = ", ".join(str(s) for s in summary.seeds)
    conf = f"{summary.confidence:.0%}"
    lines = [
        f"Repeats: {summary.n} run(s) of the same sweep (seeds {seeds}): mean, {conf} interval "
        f"(Student t, n-1 dof) and cv = sd / mean across them",
        "",
        f"{'verdict':<20} {'mean':>9}  {conf + ' interval':<21} {'cv':>6}",
    ]
    lines += [_row(name, sp, "") for name, sp in summary.verdict]
    lines.append("")
    if summary.levels:
        lines.append(f"{'QPS':>7}  {'figure':<20} {'mean':>9}  {conf + ' interval':<21} {'cv':>6}")
    for lv in summary.levels:
        lines.append(f"{lv.qps_target:>7g}  states: {state_counts(lv.states)}")
        lines += [_row(name, sp, " " * 9) for name, sp in lv.figures]
    if auto:
        lines.append(
            "--qps auto: each repeat searched its own levels; per level, only the target QPS "
            "that every repeat ran are shown"
        )
    if summary.partial_levels:
        partial = ", ".join(f"{q:g}" for q in summary.partial_levels)
        lines.append(f"levels not run by every repeat (not summarized): {partial}")
    lines += [f"not counted: {why}" for why in not_counted]
    if summary.n < 2:
        lines.append("one run: the noise between runs cannot be told; use --repeat 2 or more")
    return "\n".join(lines) + "\n"


def spread_json(sp: Spread) -> dict[str, Any]:
    """One figure's spread as ``repeats.json`` holds it."""

    def rnd(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    return {
        "n": sp.n,
        "missing": sp.n_missing,
        "mean": rnd(sp.mean),
        "sd": rnd(sp.sd),
        "low": rnd(sp.low),
        "high": rnd(sp.high),
        "cv": rnd(sp.cv),
        "values": [rnd(v) for v in sp.values],
    }


def summary_json(summary: RepeatSummary) -> dict[str, Any]:
    """The statistics part of ``repeats.json``."""
    return {
        "confidence": summary.confidence,
        "interval": f"mean +- t({0.5 + summary.confidence / 2:g}, n-1) sd / sqrt(n) "
        "(Student t); cv = sd / |mean|; null where n < 2",
        "verdict": {name: spread_json(sp) for name, sp in summary.verdict},
        "levels": [
            {
                "qps_target": lv.qps_target,
                "states": list(lv.states),
                "figures": {name: spread_json(sp) for name, sp in lv.figures},
            }
            for lv in summary.levels
        ],
        "levels_not_in_every_repeat": list(summary.partial_levels),
    }
