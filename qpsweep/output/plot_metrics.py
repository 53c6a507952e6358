"""``plots/server_metrics.png``: the scraped server gauges over the run (object API, pure).

One panel per gauge, value against seconds since the scraper started; each level's samples in
its own colour (viridis by level index, as in ``plot_levels``), samples between levels grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib import colormaps
from matplotlib.figure import Figure

DPI = 100


def metrics_figure(samples: Sequence[dict[str, Any]], names: Sequence[str]) -> Figure:
    """One row per gauge in ``names`` (those with at least one value); 14 in wide."""
    shown = [n for n in names if any(n in (s.get("values") or {}) for s in samples)]
    levels = sorted({s["level"] for s in samples if s.get("level") is not None})
    cmap = colormaps["viridis"]
    with matplotlib.rc_context({"font.size": 12, "axes.titlesize": 14, "axes.titleweight": "bold"}):
        fig = Figure(figsize=(14.0, 2.0 + 2.6 * max(len(shown), 1)), dpi=DPI, layout="tight")
        if not shown:
            ax = fig.subplots()
            ax.axis("off")
            ax.text(0.5, 0.5, "no server metrics were scraped", ha="center", va="center")
            return fig
        axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
        for ax, name in zip(axes, shown, strict=True):
            groups: list[tuple[int | None, Any]] = [(None, "#9e9e9e")]
            groups += [(lv, cmap(0.9 * i / max(len(levels) - 1, 1))) for i, lv in enumerate(levels)]
            for level, color in groups:
                pts = [
                    (s["t_s"], s["values"][name])
                    for s in samples
                    if s.get("level") == level and name in (s.get("values") or {})
                ]
                if pts:
                    label = "between levels" if level is None else f"level {level + 1}"
                    ax.plot(*zip(*pts, strict=True), ".-", color=color, label=label, markersize=4)
            ax.set_title(name)
            ax.grid(True, alpha=0.3)
        axes[0].legend(loc="upper left", ncol=4, fontsize=9)
        axes[-1].set_xlabel("seconds since the sweep started")
    return fig
