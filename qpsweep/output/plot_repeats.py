"""``diff.png`` of two sets of repeats: each side's mean per level with its 95% interval
(object API, pure).

Panels: (1) TTFT p50 and p95, (2) E2E p50 and p95, (3) achieved QPS and (4) output tokens/s,
each against target QPS, for the levels that every repeat of both sides ran.  Base is drawn
solid in blue, candidate dashed in orange; an error bar is the interval of the mean across that
side's repeats (none with one repeat); the verdict's mean saturation QPS is a dotted vertical
line in each side's colour.
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from qpsweep.analysis.repeat_diff import RepeatDiff
from qpsweep.analysis.repeats import Spread

FIGSIZE_IN = (16.0, 10.0)
DPI = 100
_STYLE = {"base": ("#1f77b4", "-"), "candidate": ("#ff7f0e", "--")}
# per panel: title, unit, (figure, its tag in the legend, marker)
PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("TTFT", "seconds", (("ttft_p50_s", " p50", "o"), ("ttft_p95_s", " p95", "s"))),
    ("end-to-end latency", "seconds", (("e2e_p50_s", " p50", "o"), ("e2e_p95_s", " p95", "s"))),
    ("achieved QPS (ok/s)", "requests/s", (("achieved_qps", "", "o"),)),
    ("output tokens/s", "tokens/s", (("output_tok_per_s", "", "o"),)),
)


def _bar(sp: Spread) -> tuple[float, float]:
    """The error bar below and above the mean (0, 0 without an interval)."""
    if sp.mean is None or sp.low is None or sp.high is None:
        return 0.0, 0.0
    return sp.mean - sp.low, sp.high - sp.mean


def build_repeats_figure(diff: RepeatDiff, titles: tuple[str, str]) -> Figure:
    """The 2x2 comparison figure of ``diff`` (``FIGSIZE_IN`` at ``DPI``)."""
    with matplotlib.rc_context({"font.size": 12, "axes.titlesize": 15, "axes.titleweight": "bold"}):
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="tight")
        axes = fig.subplots(2, 2).ravel()
        saturation = {row.figure: row for row in diff.verdict_rows}.get("saturation_qps")
        for ax, (title, unit, series) in zip(axes, PANELS, strict=True):
            for side in ("base", "candidate"):
                color, style = _STYLE[side]
                for name, tag, marker in series:
                    rows = [
                        (lv.qps_target, row.base if side == "base" else row.candidate)
                        for lv in diff.levels
                        for row in lv.rows
                        if row.figure == name
                    ]
                    pts = [(q, sp) for q, sp in rows if sp.mean is not None]
                    if not pts:
                        continue
                    bars = [_bar(sp) for _, sp in pts]
                    ax.errorbar(
                        [q for q, _ in pts],
                        [sp.mean for _, sp in pts],
                        yerr=[[b[0] for b in bars], [b[1] for b in bars]],
                        fmt=marker + style,
                        color=color,
                        capsize=4,
                        label=side + tag,
                    )
                sat = None
                if saturation is not None:
                    sat = (saturation.base if side == "base" else saturation.candidate).mean
                if sat is not None:
                    ax.axvline(sat, color=color, linestyle=":", alpha=0.8)
            ax.set_title(title)
            ax.set_xlabel("target QPS")
            ax.set_ylabel(unit)
            ax.grid(True, alpha=0.3)
            if ax.get_lines():
                ax.legend(loc="best", fontsize=10)
        fig.suptitle(
            f"qpsweep diff of repeats: base {titles[0]} ({diff.n_base})  vs  candidate "
            f"{titles[1]} ({diff.n_candidate}); bars: 95% interval of the mean",
            fontsize=14,
            fontweight="bold",
        )
    return fig
