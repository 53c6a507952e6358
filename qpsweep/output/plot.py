"""The 3x2 overview figure of a run (matplotlib's object API: no pyplot, no global state).

``build_figure(summaries, metadata)`` is pure (values in, figure out); ``save_figure`` writes
it.  Panels: (1) target vs offered and achieved QPS, success rate on a second axis;
(2) TTFT, (3) E2E and (4) per-request tokens/s percentiles against offered QPS; (5) failures
by kind per level, stacked; (6) the verdict (saturation, knee, max sustainable, recommended
QPS, the reason) and the run's key settings as text.  Saturation and recommended QPS are
vertical lines on the latency panels; client-limited levels are crossed out in grey.
Latency panels use a log scale when the values span more than a factor of 20.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qpsweep.analysis.percentiles import Percentiles, percentile_key
from qpsweep.analysis.summary import LevelSummary
from qpsweep.analysis.verdict import Verdict
from qpsweep.records.metadata import RunMetadata

FIGSIZE_IN = (20.0, 12.0)
DPI = 100
_PCTS = (50.0, 90.0, 95.0, 99.0)
_COLORS = {50.0: "#1b9e77", 90.0: "#7570b3", 95.0: "#d95f02", 99.0: "#e7298a"}


def _mark_limited(ax: Axes, points: list[tuple[float, float]]) -> None:
    """Cross out levels where the load generator fell behind (their values describe it)."""
    if points:
        ax.scatter(
            [x for x, _ in points],
            [y for _, y in points],
            marker="X",
            s=160,
            color="#7f7f7f",
            zorder=4,
            label="client-limited (ignored)",
        )


def _percentile_panel(
    ax: Axes,
    x: list[float],
    dists: list[Percentiles],
    title: str,
    ylabel: str,
    limited: list[bool],
) -> None:
    values = []
    crossed = [
        (xi, y)
        for xi, d, lim in zip(x, dists, limited, strict=True)
        if lim and (y := d.get(95.0)) is not None
    ]
    _mark_limited(ax, crossed)
    for p in _PCTS:
        ys = [d.get(p) for d in dists]
        pts = [(xi, yi) for xi, yi in zip(x, ys, strict=True) if yi is not None]
        if pts:
            ax.plot(
                *zip(*pts, strict=True),
                marker="o",
                label=percentile_key(p).upper(),
                color=_COLORS[p],
                linewidth=2,
            )
            values += [yi for _, yi in pts]
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("offered QPS")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if values:
        ax.legend(loc="upper left")


def _qps_panel(ax: Axes, summaries: Sequence[LevelSummary]) -> None:
    targets = [s.qps_target for s in summaries]
    ax.plot(targets, targets, "--", color="grey", label="target")
    ax.plot(targets, [s.offered_qps for s in summaries], "o-", label="offered (sent)", linewidth=2)
    ax.plot(
        targets, [s.achieved_qps for s in summaries], "s-", label="achieved (ok/s)", linewidth=2
    )
    ax.set_title("QPS: target, offered, achieved")
    ax.set_xlabel("target QPS")
    ax.set_ylabel("requests/s")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    twin = ax.twinx()
    twin.plot(targets, [s.success_pct for s in summaries], "d:", color="#c0392b", label="success %")
    twin.set_ylim(0, 105)
    twin.set_ylabel("success %", color="#c0392b")


def _error_panel(ax: Axes, summaries: Sequence[LevelSummary]) -> None:
    labels = [f"{s.qps_target:g}" for s in summaries]
    kinds = sorted({kind for s in summaries for kind, _ in s.errors_by_kind})
    bottom = [0] * len(summaries)
    for kind in kinds:
        counts = [dict(s.errors_by_kind).get(kind, 0) for s in summaries]
        ax.bar(labels, counts, bottom=bottom, label=kind)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_title("failures by kind")
    ax.set_xlabel("target QPS")
    ax.set_ylabel("requests")
    if kinds:
        ax.legend(loc="upper left")
    else:
        ax.bar(labels, bottom)  # zero-height bars: the levels still label the axis
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no failures", ha="center", va="center", transform=ax.transAxes)


def _text_panel(
    ax: Axes, summaries: Sequence[LevelSummary], metadata: RunMetadata, verdict: Verdict
) -> None:
    ax.axis("off")

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    knee = verdict.knee
    signals = ", ".join(verdict.saturation_signals)
    lines = [
        f"saturation QPS:       {num(verdict.saturation_qps)}"
        + (
            f" [{num(verdict.saturation.low)} - {num(verdict.saturation.high)}]"
            if verdict.saturation
            else ""
        )
        + (f" ({signals})" if signals else ""),
        f"knee QPS:             {num(knee.qps)} [{num(knee.low)} - {num(knee.high)}]"
        if knee
        else "knee QPS:             -",
        f"max sustainable QPS:  {num(verdict.max_sustainable_qps)}",
        f"recommended QPS:      {num(verdict.recommended_qps)} (headroom {verdict.headroom:g})",
        "",
        *textwrap.wrap(verdict.reason, 88)[:6],
        "",
        f"model {metadata.model}  at  {metadata.endpoint}"[:88],
        f"dataset {metadata.dataset}"[:88],
        f"{metadata.arrival} arrivals, {metadata.duration} s per level, "
        f"seed {metadata.seed}, max_tokens {metadata.max_tokens}, "
        f"{sum(s.n_sent for s in summaries)} requests",
        f"started {metadata.timestamp}, status {metadata.status}",
    ]
    ax.text(
        0.0,
        1.0,
        "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=12,
        transform=ax.transAxes,
    )
    ax.set_title("verdict and settings")


def _mark(ax: Axes, verdict: Verdict) -> None:
    """Vertical lines at the saturation and recommended QPS."""
    if verdict.saturation_qps is not None:
        ax.axvline(verdict.saturation_qps, color="#c0392b", linestyle="--", label="saturation")
    if verdict.recommended_qps is not None:
        ax.axvline(verdict.recommended_qps, color="#27ae60", linestyle="--", label="recommended")


def build_figure(
    summaries: Sequence[LevelSummary], metadata: RunMetadata, verdict: Verdict
) -> Figure:
    """The overview figure (``FIGSIZE_IN`` at ``DPI``); one point per level."""
    with matplotlib.rc_context({"font.size": 13, "axes.titlesize": 16, "axes.titleweight": "bold"}):
        fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="tight")
        axes = fig.subplots(3, 2)
        x = [s.offered_qps for s in summaries]
        states = {st.index: st.state for st in verdict.levels}
        limited = [states.get(s.index) == "client_limited" for s in summaries]
        _qps_panel(axes[0][0], summaries)
        _percentile_panel(axes[0][1], x, [s.ttft_s for s in summaries], "TTFT", "seconds", limited)
        _percentile_panel(
            axes[1][0], x, [s.e2e_s for s in summaries], "end-to-end latency", "seconds", limited
        )
        _percentile_panel(
            axes[1][1],
            x,
            [s.tokens_per_sec for s in summaries],
            "tokens/s per request",
            "tokens/s",
            limited,
        )
        _error_panel(axes[2][0], summaries)
        _text_panel(axes[2][1], summaries, metadata, verdict)
        for ax in (axes[0][1], axes[1][0]):
            _mark(ax, verdict)
            if ax.get_legend_handles_labels()[0]:  # nothing to name when every request failed
                ax.legend(loc="upper left")
        fig.suptitle(f"qpsweep: {metadata.model}", fontsize=18, fontweight="bold")
    return fig


def save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` as PNG to ``path``."""
    fig.savefig(path, format="png")
