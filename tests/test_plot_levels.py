"""Per-level detail figures: the pure computations, a real run's PNGs, and empty input."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from qpsweep.analysis.summary import LevelInfo, summarize_level
from qpsweep.output.plot_levels import (
    EMPTY_TEXT,
    LEVEL_GID,
    LEVEL_PLOTS,
    completions_per_s,
    downsample_steps,
    ecdf,
    in_flight_steps,
    level_figures,
    save_level_plots,
)
from qpsweep.output.rebuild import analyze_run
from qpsweep.records.record import RequestRecord
from qpsweep.records.run_files import load_records

from conftest import Run
from servers import ServerThread

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = {
    "ttft_distribution.png": (1400, 700),
    "itl_distribution.png": (1400, 700),
    "in_flight.png": (1400, 900),
}


def test_ecdf_sorts_and_steps_by_one_over_n() -> None:
    x, y = ecdf([3.0, 1.0, 2.0])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert y == pytest.approx([1 / 3, 2 / 3, 1.0])
    x, y = ecdf([])
    assert x.size == 0 and y.size == 0


def _count_at(t: np.ndarray, count: np.ndarray, at: float) -> float:
    """The step function's value at ``at`` (0 before the first event)."""
    i = int(np.searchsorted(t, at, "right")) - 1
    return 0.0 if i < 0 else float(count[i])


def test_in_flight_steps_counts_overlapping_intervals() -> None:
    t, count = in_flight_steps([0.0, 1.0], [2.0, 3.0])
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert count.tolist() == [1.0, 2.0, 1.0, 0.0]
    values = {at: _count_at(t, count, at) for at in (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 9)}
    assert values == {-0.5: 0, 0.0: 1, 0.5: 1, 1.0: 2, 1.5: 2, 2.0: 1, 2.5: 1, 3.0: 0, 9: 0}
    assert count.max() == 2


def test_in_flight_steps_merges_simultaneous_events() -> None:
    # one ends exactly when the next is sent: never 2 in flight (sent_s <= t < done_s)
    t, count = in_flight_steps([0.0, 1.0, 1.0], [1.0, 2.0, 1.0])
    assert t.tolist() == [0.0, 1.0, 2.0]
    assert count.tolist() == [1.0, 1.0, 0.0]


def test_downsample_steps_keeps_peaks_and_bounds_points() -> None:
    rng = np.random.default_rng(1)
    sent = np.sort(rng.uniform(0, 100, 50_000))
    done = sent + rng.exponential(0.5, sent.size)
    done[123] = sent[123] + 1e-6  # a request that overlaps nothing much
    t, count = in_flight_steps(sent, done)
    dt, dcount = downsample_steps(t, count, max_points=2000)
    assert dt.size <= 2001
    assert dcount.max() == count.max()
    assert dt[0] == t[0] and dt[-1] == t[-1] and dcount[-1] == 0


def test_completions_per_s_counts_one_second_bins() -> None:
    edges, rate = completions_per_s([0.1, 0.5, 1.2, 2.9, 2.0])
    assert edges.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert rate.tolist() == [2.0, 1.0, 2.0]
    edges, rate = completions_per_s([0.1, 0.2, 0.7], bin_s=0.5)
    assert edges.tolist() == [0.0, 0.5, 1.0]
    assert rate.tolist() == [4.0, 2.0]  # 2 and 1 completions per half second
    edges, rate = completions_per_s([])
    assert rate.size == 0


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _lines(fig: Figure, axis: int = 0) -> list[Line2D]:
    return [line for line in fig.axes[axis].get_lines() if line.get_gid() == LEVEL_GID]


def _level_lines(fig: Figure, axis: int = 0) -> list[str]:
    return [str(line.get_label()) for line in _lines(fig, axis)]


def _xdata(fig: Figure) -> np.ndarray:
    return np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in _lines(fig)])


def _texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


@pytest.mark.slow
def test_real_run_draws_one_line_per_level(
    qpsweep: Callable[..., Run], server: ServerThread, tmp_path: Path
) -> None:
    url = server.url("ok", ttft_ms=20, itl_ms=5, tokens=8)
    # 4 s: about 20 and 40 sends, so one stalled send cannot lift the send lag p95 (with 8,
    # as at 2 s, p95 is nearly the maximum: a single late send can make a level client-limited)
    run = qpsweep("--endpoint", url, "--model", "m", "--qps", "5,10", "--duration", "4")
    assert run.code == 0, run.err
    assert run.run_dir is not None
    analysis = analyze_run(run.run_dir)
    states = {st.index: st.state for st in analysis.verdict.levels}
    figures = level_figures(load_records(run.run_dir), analysis.summaries, states)
    assert list(figures) == list(LEVEL_PLOTS)

    paths = save_level_plots(figures, tmp_path / "plots")
    assert [p.name for p in paths] == list(LEVEL_PLOTS)
    for path in paths:
        assert path.parent == tmp_path / "plots"
        assert _png_size(path) == SIZES[path.name]

    ttft, itl, in_flight = (figures[name] for name in LEVEL_PLOTS)
    assert len(ttft.axes) == 1 and len(itl.axes) == 1 and len(in_flight.axes) == 2
    assert _level_lines(ttft) == ["5 QPS", "10 QPS"]
    assert _level_lines(itl) == ["5 QPS", "10 QPS"]
    assert _level_lines(in_flight, 0) == ["5 QPS", "10 QPS"]
    assert _level_lines(in_flight, 1) == ["5 QPS", "10 QPS"]
    assert EMPTY_TEXT not in _texts(ttft)
    # TTFT (scripted 20 ms) lies on the TTFT axis; ITL gaps (scripted 5 ms) in milliseconds
    assert 0.015 < np.median(_xdata(ttft)) < 1.0
    assert 1.0 < np.median(_xdata(itl)) < 100.0


def test_empty_input_says_so_instead_of_failing(tmp_path: Path) -> None:
    figures = level_figures([], [], {})
    assert list(figures) == list(LEVEL_PLOTS)
    for name, fig in figures.items():
        assert EMPTY_TEXT in _texts(fig), name
        assert not _level_lines(fig)
    paths = save_level_plots(figures, tmp_path / "nested" / "plots")
    assert all(_png_size(p) == SIZES[p.name] for p in paths)


def test_failed_level_is_left_out_of_distributions_but_in_flight() -> None:
    failed = [
        RequestRecord(0, 5.0, i, 0, 0.2 * i, 0.2 * i, 0.2 * i + 0.1, error_kind="http_503")
        for i in range(5)
    ]
    good = [
        RequestRecord(
            1,
            9.0,
            i,
            0,
            0.1 * i,
            0.1 * i,
            0.1 * i + 0.5,
            0.1 * i + 0.2,
            chunk_s=(0.1 * i + 0.2, 0.1 * i + 0.3),
        )
        for i in range(9)
    ]
    summaries = [
        summarize_level(LevelInfo(0, 5.0, 1.0, 5), failed, ()),
        summarize_level(LevelInfo(1, 9.0, 1.0, 9), good, ()),
    ]
    figures = level_figures([*failed, *good], summaries, {1: "client_limited"})
    ttft, itl, in_flight = (figures[name] for name in LEVEL_PLOTS)
    assert _level_lines(ttft) == _level_lines(itl) == ["9 QPS (client-limited)"]
    assert all(line.get_linestyle() == "--" for line in _lines(ttft))
    assert _level_lines(in_flight, 0) == ["5 QPS", "9 QPS (client-limited)"]
    assert _level_lines(in_flight, 1) == ["9 QPS (client-limited)"]  # successful completions
    assert np.median(_xdata(ttft)) == pytest.approx(0.2)
    assert np.median(_xdata(itl)) == pytest.approx(100.0)
