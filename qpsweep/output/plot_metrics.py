"""``plots/server_metrics.png``: the server's view of the run beside qpsweep's (object API, pure).

One row per panel, two columns: on the left the value against seconds since the scraper
started, each level's samples in its own colour (viridis by level index), samples between
levels grey; on the right one point per level (its mean) against the level's target QPS.

Rows, top down: when a detected preset has a queue (``ServerView.queue_preset``), "queue":
the server's running + waiting beside qpsweep's own in-flight count (black; on the right its
mean at the scrape instants), levels whose queue check disagrees marked with a red cross;
then every gauge of every detected preset that has a value (titled ``"vLLM: KV cache usage"``
with the metric's name), every counter hit rate (left: Δhits / Δqueries between consecutive
samples; right: the level's rate), and the ``extra`` names (``--metrics-gauge``).
``PANEL_GID`` is the gid of each left axis (its title names the row), for tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qpsweep.analysis.server_view import LevelView, ServerView, gauge_value
from qpsweep.config.metrics_presets import PRESETS, Preset
from qpsweep.output.plot_levels import downsample_steps, in_flight_steps
from qpsweep.records.table import RecordTable

DPI = 100
PANEL_GID = "server-panel"
Value = Callable[[Mapping[str, float]], "float | None"]


@dataclass(frozen=True)
class _Row:
    """One row: its ``title``; per sample either ``value`` or, for a hit rate, Δhits /
    Δqueries of consecutive samples (``pairs``); ``right``: level -> its per-level value."""

    title: str
    value: Value | None
    right: Callable[[int], float | None]
    pairs: tuple[tuple[str, str], ...] = ()


def _rows(view: ServerView, extra: Sequence[str]) -> list[_Row]:
    def level_of(level: int) -> LevelView | None:
        return view.levels.get(level)

    rows: list[_Row] = []
    queue = view.queue_preset
    if queue is not None and queue.running and queue.waiting:
        run_key, wait_key = queue.running, queue.waiting

        def queue_value(values: Mapping[str, float]) -> float | None:
            running = gauge_value(queue, run_key, values)
            waiting = gauge_value(queue, wait_key, values)
            return None if running is None or waiting is None else running + waiting

        def queue_mean(level: int) -> float | None:
            lv = level_of(level)
            return None if lv is None or lv.queue is None else lv.queue.server_mean

        title = f"{queue.server}: running + waiting vs qpsweep in flight"
        rows.append(_Row(title, queue_value, queue_mean))
    for name in view.presets:
        preset = PRESETS[name]
        for gauge in preset.gauges:
            key = f"{name}.{gauge.key}"

            def mean(level: int, key: str = key) -> float | None:
                lv = level_of(level)
                got = None if lv is None else lv.gauges.get(key)
                return None if got is None else float(got["mean"])

            def value(values: Mapping[str, float], p: Preset = preset, k: str = gauge.key) -> Any:
                return gauge_value(p, k, values)

            unit = f" ({gauge.unit})" if gauge.unit else ""
            title = f"{preset.server}: {gauge.title}{unit}  [{' | '.join(gauge.names)}]"
            rows.append(_Row(title, value, mean))
        for rate in preset.hit_rates:
            key = f"{name}.{rate.key}"

            def level_rate(level: int, key: str = key) -> float | None:
                lv = level_of(level)
                return None if lv is None else lv.hit_rates.get(key)

            title = f"{preset.server}: {rate.title}  [{rate.names[0][0]} / ..queries_total]"
            rows.append(_Row(title, None, level_rate, rate.names))
    for name in extra:

        def raw(values: Mapping[str, float], n: str = name) -> float | None:
            return values.get(n)

        rows.append(_Row(name, raw, lambda level: None))
    return rows


def _rate_points(
    samples: Sequence[Mapping[str, Any]], pairs: tuple[tuple[str, str], ...], level: int | None
) -> list[tuple[float, float]]:
    """Δhits / Δqueries between consecutive samples of ``level`` (where Δqueries > 0)."""
    for hits, queries in pairs:
        group = [
            s for s in samples
            if s.get("level") == level and hits in s["values"] and queries in s["values"]
        ]  # fmt: skip
        if group:
            out = []
            for a, b in itertools.pairwise(group):
                dq = b["values"][queries] - a["values"][queries]
                if dq > 0:
                    out.append((float(b["t_s"]), (b["values"][hits] - a["values"][hits]) / dq))
            return out
    return []


def _points(
    samples: Sequence[Mapping[str, Any]], row: _Row, level: int | None
) -> list[tuple[float, float]]:
    if row.value is None:
        return _rate_points(samples, row.pairs, level)
    out = []
    for s in samples:
        if s.get("level") == level:
            v = row.value(s["values"])
            if v is not None:
                out.append((float(s["t_s"]), float(v)))
    return out


def metrics_figure(
    samples: Sequence[dict[str, Any]],
    extra: Sequence[str],
    view: ServerView,
    table: RecordTable | None = None,
    qps: Mapping[int, float] | None = None,
) -> Figure:
    """The figure (see the module doc); 16 in wide, 2.6 in per row."""
    qps = qps or {}
    levels = sorted({s["level"] for s in samples if s.get("level") is not None})
    groups: list[int | None] = [None, *levels]
    rows = [
        r for r in _rows(view, extra)
        if any(_points(samples, r, lv) for lv in groups) or any(
            r.right(lv) is not None for lv in levels)
    ]  # fmt: skip
    cmap = colormaps["viridis"]
    colors = {lv: cmap(0.9 * i / max(len(levels) - 1, 1)) for i, lv in enumerate(levels)}
    with matplotlib.rc_context({"font.size": 11, "axes.titlesize": 12, "axes.titleweight": "bold"}):
        fig = Figure(figsize=(16.0, 1.6 + 2.6 * max(len(rows), 1)), dpi=DPI, layout="tight")
        if not rows:
            ax = fig.subplots()
            ax.axis("off")
            ax.text(0.5, 0.5, "no server metrics were scraped", ha="center", va="center")
            return fig
        axes = fig.subplots(len(rows), 2, squeeze=False, width_ratios=(3, 1))
        for k, row in enumerate(rows):
            left, per_level = axes[k]
            left.set_gid(PANEL_GID)
            if k:
                left.sharex(axes[0][0])
            for level in groups:
                pts = _points(samples, row, level)
                if pts:
                    color = "#9e9e9e" if level is None else colors[level]
                    label = "between levels" if level is None else f"level {level + 1}"
                    left.plot(*zip(*pts, strict=True), ".-", color=color, label=label,
                              markersize=4)  # fmt: skip
            if k == 0 and view.queue_preset is not None and table is not None:
                _client_in_flight(left, view, table)
            left.set_title(row.title, loc="left")
            left.grid(True, alpha=0.3)
            _per_level(per_level, k, levels, row.right, view, qps, colors)
        axes[0][0].legend(loc="upper left", ncol=5, fontsize=8)
        axes[-1][0].set_xlabel("seconds since the sweep started")
        axes[-1][1].set_xlabel("target QPS")
    return fig


def _client_in_flight(ax: Axes, view: ServerView, table: RecordTable) -> None:
    """qpsweep's own in-flight count, each level shifted to its start on the scraper's clock."""
    drawn = False
    for level, rows in table.levels.items():
        if level not in view.levels or not len(rows):
            continue
        t, count = in_flight_steps(rows.sent_s, rows.done_s)
        t, count = downsample_steps(np.append(min(0.0, float(t[0])), t), np.append(0.0, count))
        ax.plot(t + view.levels[level].t0_s, count, color="black", linewidth=1.0,
                drawstyle="steps-post", label=None if drawn else "qpsweep in flight")  # fmt: skip
        drawn = True


def _per_level(
    ax: Axes,
    row: int,
    levels: Sequence[int],
    right: Callable[[int], float | None],
    view: ServerView,
    qps: Mapping[int, float],
    colors: Mapping[int, Any],
) -> None:
    """The right column: one point per level (x = its target QPS, else its number)."""
    xs = {lv: qps.get(lv, float(lv + 1)) for lv in levels}
    pts = [(xs[lv], v, lv) for lv in levels if (v := right(lv)) is not None]
    for x, v, lv in pts:
        ax.plot([x], [v], "o", color=colors[lv])
    if pts:
        label = "server (mean)" if row == 0 and view.queue_preset is not None else None
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color="#9e9e9e", linewidth=0.8,
                label=label)  # fmt: skip
    if row == 0 and view.queue_preset is not None:
        client, bad = [], []
        for lv in levels:
            check = view.levels[lv].queue if lv in view.levels else None
            if check is not None:
                client.append((xs[lv], check.client_at_mean))
                if check.disagrees:
                    bad.append((xs[lv], check.server_mean))
        if client:
            ax.plot(*zip(*client, strict=True), "s--", color="black", markersize=4,
                    label="qpsweep in flight")  # fmt: skip
        if bad:
            ax.plot(*zip(*bad, strict=True), "x", color="red", markersize=12,
                    markeredgewidth=2.5, label="queue check disagrees")  # fmt: skip
        if client:
            ax.legend(loc="upper left", fontsize=8)
    if row == 0:
        ax.set_title("per level (mean)", loc="left")
    ax.grid(True, alpha=0.3)
