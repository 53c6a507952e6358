"""Per-level detail figures for ``plots/`` (matplotlib's object API: no pyplot, no global state).

``level_figures(records, summaries, states)`` is pure (values in, figures out) and returns one
figure per name in ``LEVEL_PLOTS``; ``save_level_plots`` writes them as PNG.  One line per
level, coloured by target QPS (viridis), labelled ``"{qps_target:g} QPS"``; client-limited
levels are dashed.  Times in records are seconds since their level's start.

* ``ttft_distribution.png``: empirical CDF of TTFT = first_token_s - sent_s (ok requests);
* ``itl_distribution.png``: empirical CDF of ITL = diff(chunk_s) * 1000 ms, pooled over the
  level's ok requests (as in ``qpsweep.analysis.summary``);
* ``in_flight.png``: in flight(t) = #{requests: sent_s <= t < done_s} (every request), and
  below it successful completions per second in 1-s bins of done_s.

ECDF: x = sorted values, y = i / n for i = 1..n, drawn through at most ``MAX_POINTS`` of its
points, evenly spaced in rank (exact quantiles: every sample counts, however large the run);
the in-flight count through at most ``MAX_POINTS`` bins, each at its peak.  The x axis is
logarithmic when the values span more than a factor of 20; levels without a successful
request are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qpsweep.analysis.summary import LevelSummary, Records, as_table
from qpsweep.records.table import RecordTable

Array = npt.NDArray[np.float64]
LEVEL_PLOTS: tuple[str, ...] = ("ttft_distribution.png", "itl_distribution.png", "in_flight.png")
DPI = 100
MAX_POINTS = 2000
EMPTY_TEXT = "no successful requests"
LEVEL_GID = "level"  # gid of every per-level line (the p50/p95 gridlines have another)


def ecdf(values: Sequence[float] | Array) -> tuple[Array, Array]:
    """Empirical CDF: ``x`` = values sorted ascending, ``y[i]`` = (i + 1) / n."""
    x = np.sort(np.asarray(values, dtype=float))
    return x, np.arange(1, x.size + 1, dtype=float) / max(x.size, 1)


def in_flight_steps(
    sent_s: Sequence[float] | Array, done_s: Sequence[float] | Array
) -> tuple[Array, Array]:
    """Step function count(t) = #{i: sent_s[i] <= t < done_s[i]}, holding from ``t[k]`` until
    ``t[k + 1]``: +1 events at sends, -1 at ends, sorted and cumulated; one point per distinct
    event time (the count after all its events)."""
    sent, done = np.asarray(sent_s, dtype=float), np.asarray(done_s, dtype=float)
    times = np.concatenate([sent, done])
    order = np.argsort(times, kind="stable")
    t = times[order]
    count = np.cumsum(np.concatenate([np.ones(sent.size), -np.ones(done.size)])[order])
    last = np.append(t[1:] != t[:-1], True) if t.size else np.zeros(0, dtype=bool)
    return t[last], count[last]


def downsample_steps(t: Array, count: Array, max_points: int = MAX_POINTS) -> tuple[Array, Array]:
    """At most ``max_points`` equal bins over [t[0], t[-1]] (then the last point), each with
    the highest count held in it (entering the bin or reached inside): short peaks survive."""
    if t.size <= max_points:
        return t, count
    edges = np.linspace(t[0], t[-1], max_points + 1)[:-1]
    peak = count[np.searchsorted(t, edges, "right") - 1].copy()
    np.maximum.at(peak, np.searchsorted(edges, t, "right") - 1, count)
    return np.append(edges, t[-1]), np.append(peak, count[-1])


def completions_per_s(done_s: Sequence[float] | Array, bin_s: float = 1.0) -> tuple[Array, Array]:
    """``(edges, rate)``: rate[k] = #{done_s in [k * bin_s, (k + 1) * bin_s)} / bin_s, for bins
    from 0 to the last completion; ``edges`` has one more element than ``rate``."""
    done = np.asarray(done_s, dtype=float)
    if done.size == 0:
        return np.zeros(0), np.zeros(0)
    rate = np.bincount(np.floor(np.maximum(done, 0.0) / bin_s).astype(int)) / bin_s
    return np.arange(rate.size + 1, dtype=np.float64) * bin_s, rate.astype(np.float64)


def ecdf_points(ordered: Array, max_points: int = MAX_POINTS) -> tuple[Array, Array]:
    """``ecdf`` of values already sorted, at most ``max_points`` of its points: evenly spaced
    in rank, first and last kept (a dense grid of exact quantiles)."""
    keep = np.arange(ordered.size)
    if ordered.size > max_points:
        keep = np.unique(np.linspace(0, ordered.size - 1, max_points).astype(int))
    return ordered[keep], (keep + 1) / max(ordered.size, 1)


Style = tuple[int, str, tuple[float, float, float, float], str]  # index, label, colour, line


def _styles(summaries: Sequence[LevelSummary], states: Mapping[int, str]) -> list[Style]:
    """Per level in ``summaries`` (QPS) order: viridis colour by rank, dashed if client-limited."""
    cmap, n, out = matplotlib.colormaps["viridis"], len(summaries), []
    for i, s in enumerate(summaries):
        limited = states.get(s.index) == "client_limited"
        label = f"{s.qps_target:g} QPS" + (" (client-limited)" if limited else "")
        color = cmap(0.9 * i / max(n - 1, 1))  # 0.9: viridis' yellow end is unreadable on white
        out.append((s.index, label, color, "--" if limited else "-"))
    return out


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str, drawn: int) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(loc="best", ncol=2 if drawn > 6 else 1)
    else:
        ax.text(0.5, 0.5, EMPTY_TEXT, ha="center", va="center", transform=ax.transAxes)


def _cdf_figure(
    styles: list[Style], samples: Mapping[int, Array], title: str, xlabel: str, ylabel: str
) -> Figure:
    """One ECDF per level of ``samples`` (each sorted)."""
    fig = Figure(figsize=(14.0, 7.0), dpi=DPI, layout="tight")
    ax = fig.subplots()
    drawn, positive = 0, []
    for index, label, color, style in styles:
        ordered = samples[index]
        if ordered.size:
            first = int(np.searchsorted(ordered, 0.0, "right"))  # the smallest positive value
            positive += [float(ordered[first]), float(ordered[-1])] if first < ordered.size else []
            x, y = ecdf_points(ordered)  # below: a point at 0 so that the first step is drawn
            x, y = np.append(x[0], x), np.append(0.0, y)
            ax.plot(x, y, style, drawstyle="steps-post", color=color, label=label, gid=LEVEL_GID)
            drawn += 1
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        ax.axhline(q, color="grey", linewidth=1, alpha=0.5, linestyle=":", gid="percentile")
        ax.text(1.005, q, name, color="grey", va="center", transform=ax.get_yaxis_transform())
    ax.set_ylim(0.0, 1.02)
    _finish(ax, title, xlabel, ylabel, drawn)
    return fig


def _in_flight_figure(styles: list[Style], by_level: Mapping[int, RecordTable]) -> Figure:
    fig = Figure(figsize=(14.0, 9.0), dpi=DPI, layout="tight")
    top, bottom = fig.subplots(2, 1, sharex=True)
    drawn = done_drawn = 0
    for index, label, color, style in styles:
        recs = by_level[index]
        if len(recs):
            t, count = in_flight_steps(recs.sent_s, recs.done_s)
            start = min(0.0, float(t[0]))  # the count is 0 before the first send
            t, count = downsample_steps(np.append(start, t), np.append(0.0, count))
            top.plot(
                t, count, style, drawstyle="steps-post", color=color, label=label, gid=LEVEL_GID
            )
            drawn += 1
        edges, rate = completions_per_s(recs.done_s[recs.ok])
        if rate.size:
            y = np.append(rate, rate[-1])
            bottom.plot(
                edges, y, style, drawstyle="steps-post", color=color, label=label, gid=LEVEL_GID
            )
            done_drawn += 1
    _finish(top, "requests in flight", "", "requests (sent, not finished)", drawn)
    _finish(
        bottom,
        "successful completions per second (1-s bins)",
        "seconds since level start",
        "completions/s",
        done_drawn,
    )
    return fig


def level_figures(
    records: Records,
    summaries: Sequence[LevelSummary],
    states: Mapping[int, str],
) -> dict[str, Figure]:
    """``LEVEL_PLOTS`` name -> figure; ``states`` maps level index to its verdict state."""
    levels = as_table(records).levels
    none = RecordTable.from_records(())
    by_level = {s.index: levels.get(s.index, none) for s in summaries}
    ttft: dict[int, Array] = {}
    itl: dict[int, Array] = {}
    for index, recs in by_level.items():
        first = recs.ok & ~np.isnan(recs.first_token_s)
        ttft[index] = np.sort(recs.first_token_s[first] - recs.sent_s[first])
        itl[index] = recs.itl_ms_sorted[0]
    styles = _styles(summaries, states)
    ttft_title = "TTFT distribution per level (successful requests)"
    itl_title = "inter-token latency distribution per level (successful requests, pooled)"
    with matplotlib.rc_context({"font.size": 13, "axes.titlesize": 16, "axes.titleweight": "bold"}):
        return {
            LEVEL_PLOTS[0]: _cdf_figure(
                styles, ttft, ttft_title, "TTFT (seconds)", "fraction of requests with TTFT <= x"
            ),
            LEVEL_PLOTS[1]: _cdf_figure(
                styles, itl, itl_title, "inter-token latency (ms)", "fraction of gaps <= x"
            ),
            LEVEL_PLOTS[2]: _in_flight_figure(styles, by_level),
        }


def save_level_plots(figures: Mapping[str, Figure], directory: Path) -> list[Path]:
    """Create ``directory`` and write each figure as PNG under its name; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = directory / name
        fig.savefig(path, format="png")
        paths.append(path)
    return paths
