"""``diff.png``: two runs overlaid on the latency and throughput panels (object API, pure).

Panels: (1) TTFT p50 and p95, (2) E2E p50 and p95, (3) achieved QPS (successful requests/s)
and (4) per-request tokens/s p50, each against offered QPS.  Base is drawn solid in blue,
candidate dashed in orange; each run's saturation QPS is a vertical line in its colour, and
client-limited levels are hollow markers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qpsweep.analysis.summary import LevelSummary
from qpsweep.analysis.verdict import Verdict

FIGSIZE_IN = (16.0, 10.0)
DPI = 100
_STYLE = {"base": ("#1f77b4", "-"), "candidate": ("#ff7f0e", "--")}

Value = Callable[[LevelSummary], float | None]


def _series(
    ax: Axes, side: str, summaries: Sequence[LevelSummary], verdict: Verdict, value: Value, tag: str
) -> None:
    color, style = _STYLE[side]
    limited = {st.index for st in verdict.levels if st.state == "client_limited"}
    pts: list[tuple[float, float, bool]] = []
    for s in summaries:
        y = value(s)
        if y is not None:
            pts.append((s.offered_qps, y, s.index in limited))
    if not pts:
        return
    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=f"{side} {tag}")
    for hollow in (False, True):
        sel = [p for p in pts if p[2] == hollow]
        if sel:
            ax.scatter(
                [p[0] for p in sel],
                [p[1] for p in sel],
                color="white" if hollow else color,
                edgecolors=color,
                zorder=3,
                label=f"{side} client-limited" if hollow else None,
            )


def build_diff_figure(
    base: tuple[Sequence[LevelSummary], Verdict],
    candidate: tuple[Sequence[LevelSummary], Verdict],
    titles: tuple[str, str],
) -> Figure:
    """The 2x2 comparison figure (``FIGSIZE_IN`` at ``DPI``)."""
    panels: list[tuple[str, str, list[tuple[str, Value]]]] = [
        (
            "TTFT",
            "seconds",
            [("p50", lambda s: s.ttft_s.get(50.0)), ("p95", lambda s: s.ttft_s.get(95.0))],
        ),
        (
            "end-to-end latency",
            "seconds",
            [("p50", lambda s: s.e2e_s.get(50.0)), ("p95", lambda s: s.e2e_s.get(95.0))],
        ),
        ("achieved QPS (ok/s)", "requests/s", [("", lambda s: s.achieved_qps)]),
        ("tokens/s per request", "tokens/s", [("p50", lambda s: s.tokens_per_sec.get(50.0))]),
    ]
    with matplotlib.rc_context({"font.size": 12, "axes.titlesize": 15, "axes.titleweight": "bold"}):
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="tight")
        axes = fig.subplots(2, 2).ravel()
        for ax, (title, unit, values) in zip(axes, panels, strict=True):
            for side, (summaries, verdict) in (("base", base), ("candidate", candidate)):
                for tag, value in values:
                    _series(ax, side, summaries, verdict, value, tag)
                if verdict.saturation_qps is not None and title != "tokens/s per request":
                    color, _ = _STYLE[side]
                    ax.axvline(verdict.saturation_qps, color=color, linestyle=":", alpha=0.8)
            ax.set_title(title)
            ax.set_xlabel("offered QPS")
            ax.set_ylabel(unit)
            ax.grid(True, alpha=0.3)
            if ax.get_lines():
                ax.legend(loc="best", fontsize=10)
        fig.suptitle(
            f"qpsweep diff: base {titles[0]}  vs  candidate {titles[1]}  (dotted: saturation QPS)",
            fontsize=14,
            fontweight="bold",
        )
    return fig
