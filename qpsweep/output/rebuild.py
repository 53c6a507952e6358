"""The result directory contract: ``results/YYYY-MM-DD_HH-MM-SS[_N]/``.

Files: ``metadata.json`` (settings, environment, per-level windows, ``interrupted``),
``requests.jsonl`` (one ``RequestRecord`` per line, appended as requests finish),
``benchmark_qps_results.json`` (or ``--output``), ``saturation.json``, ``report.txt``,
``report.html``, and unless ``--no-plot``: ``benchmark_qps.png`` (or ``--plot-output``) and
``plots/`` (TTFT and ITL distributions, requests in flight).  Everything but ``requests.jsonl``
can be rebuilt from ``metadata.json`` + ``requests.jsonl`` alone (``qpsweep report DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from qpsweep.analysis.cost import RunCost, run_cost
from qpsweep.analysis.server_view import ServerView, server_view
from qpsweep.analysis.summary import (
    LevelInfo,
    LevelSummary,
    Records,
    as_table,
    latency_samples,
    summarize_levels,
)
from qpsweep.analysis.verdict import Verdict, assess
from qpsweep.errors import RunDirError, WriteFailed
from qpsweep.output.text import format_table, results_json, verdict_json
from qpsweep.records.metadata import RunMetadata, read_metadata
from qpsweep.records.record import RequestRecord
from qpsweep.records.run_files import (
    DEFAULT_PLOT_FILE,
    DEFAULT_RESULTS_FILE,
    HTML_FILE,
    PLOTS_DIR,
    REPORT_FILE,
    SATURATION_FILE,
    keep_columns,
    load_table,
    records_stamp,
    write_json,
    write_text,
)
from qpsweep.records.server_metrics import METRICS_FILE, read_samples, summarize_metrics
from qpsweep.records.table import RecordTable


def level_infos(metadata: RunMetadata, records: Records) -> list[LevelInfo]:
    """Levels from metadata, plus any level that only the records mention (a killed run)."""
    table = as_table(records)
    infos = {
        lv.index: LevelInfo(
            index=lv.index,
            qps_target=lv.qps_target,
            arrival_window_s=lv.arrival_window_s or 0.0,
            n_scheduled=lv.n_scheduled,
            duration_s=lv.duration_s,
            sessions=lv.sessions,
        )
        for lv in metadata.levels
    }
    for level, rows in table.levels.items():  # the first record's rate, as the records say
        if level not in infos:
            infos[level] = LevelInfo(level, float(rows.level_qps[0]), 0.0, 0)
    return [infos[i] for i in sorted(infos)]


def _status_note(metadata: RunMetadata) -> str:
    shard = metadata.shard
    if shard:
        return (
            f"NOTE: this is shard {shard.index}/{shard.count} of a run: it sent every "
            f"{shard.count}th arrival of each level; qpsweep merge joins the shards.\n"
        )
    if metadata.merge_problems:
        return "".join(f"NOTE: {problem}\n" for problem in metadata.merge_problems)
    if metadata.interrupted:
        return "NOTE: this run was interrupted; its last level may be cut short.\n"
    if metadata.status == "running":
        return "NOTE: this run did not finish (killed?); results cover what was recorded.\n"
    return ""


@dataclass(frozen=True)
class Analysis:
    """A run directory read back and judged: what ``report`` and the sweep's planner use.
    ``table`` holds the records as columns; ``records`` makes the objects on first use."""

    metadata: RunMetadata
    percentiles: tuple[float, ...]
    summaries: list[LevelSummary]
    verdict: Verdict
    table: RecordTable

    @cached_property
    def records(self) -> list[RequestRecord]:
        """Every record of the run, in file order."""
        return self.table.records()

    @cached_property
    def cost(self) -> RunCost | None:
        """The run priced at its ``cost_per_hour`` (``None`` when the run has no price)."""
        return run_cost(self.summaries, self.verdict, self.metadata.cost_per_hour)


def analyze_run(run_dir: Path) -> Analysis:
    """Summaries (sorted by target QPS) and the verdict from the run directory alone."""
    metadata = read_metadata(run_dir)
    table = load_table(run_dir)
    percentiles = metadata.percentiles or (50.0, 95.0, 99.0)
    thresholds = metadata.thresholds
    summaries = sorted(
        summarize_levels(level_infos(metadata, table), table, percentiles, thresholds.slos),
        key=lambda s: (s.qps_target, s.index),
    )
    verdict = assess(summaries, latency_samples(table), thresholds)
    return Analysis(metadata, percentiles, summaries, verdict, table)


_CAPTIONS = {
    "ttft_distribution.png": "TTFT distribution per level (CDF)",
    "itl_distribution.png": "inter-token latency distribution per level (CDF)",
    "in_flight.png": "requests in flight and completions per second over each level",
    "server_metrics.png": "server metrics from --metrics-url beside the requests in flight",
}


def _samples(run_dir: Path) -> list[dict[str, Any]] | None:
    """The scraped samples; ``None`` when the run scraped nothing."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return None
    try:
        return read_samples(path)
    except ValueError as err:
        raise RunDirError(f"{path}: {err}") from None


def _server_json(
    entries: list[dict[str, Any]],
    summaries: list[LevelSummary],
    samples: list[dict[str, Any]],
    view: ServerView,
) -> None:
    """Add each level's scraped gauges (``server_metrics``) and the server's view
    (``server_view``, see ``qpsweep.analysis.server_view``) to its results entry."""
    scraped = summarize_metrics(samples)
    for entry, s in zip(entries, summaries, strict=True):
        entry["server_metrics"] = scraped.get(s.index, {})
        level = view.levels.get(s.index)
        entry["server_view"] = None if level is None else level.as_json(view.presets)


def _draw(
    run_dir: Path,
    analysis: Analysis,
    samples: list[dict[str, Any]] | None,
    view: ServerView | None,
) -> list[tuple[str, bytes]]:
    """Write the overview PNG and ``plots/``; returns (title, PNG bytes) in display order."""
    from qpsweep.output.plot import build_figure, save_figure  # matplotlib loads slowly
    from qpsweep.output.plot_levels import level_figures, save_level_plots

    metadata, summaries, verdict = analysis.metadata, analysis.summaries, analysis.verdict
    overview = run_dir / Path(metadata.plot_file or DEFAULT_PLOT_FILE).name
    save_figure(build_figure(summaries, metadata, verdict), overview)
    states = {st.index: st.state for st in verdict.levels}
    figures = level_figures(analysis.table, summaries, states)
    if samples is not None and view is not None:
        from qpsweep.output.plot_metrics import metrics_figure

        extra = [n for n in metadata.metrics_gauges or () if n not in view.preset_names]
        figures["server_metrics.png"] = metrics_figure(
            samples, extra, view, analysis.table, {s.index: s.qps_target for s in summaries}
        )
    paths = [overview, *save_level_plots(figures, run_dir / PLOTS_DIR)]
    captions = {overview.name: "overview", **_CAPTIONS}
    return [(captions.get(path.name, path.stem), path.read_bytes()) for path in paths]


def rebuild(
    run_dir: Path, plot: bool | None = None, html: bool | None = None
) -> tuple[Analysis, str]:
    """Recompute the results JSON, ``saturation.json`` and ``report.txt`` from
    ``metadata.json`` + ``requests.jsonl``; draw the plots when ``plot`` is true and write
    ``report.html`` when ``html`` is true (``None``: as the run asked).  Returns the analysis
    and the console table.  Keeps the records as columns in ``requests.npz`` for the next
    reader."""
    stamp = records_stamp(run_dir)
    analysis = analyze_run(run_dir)
    metadata, summaries, verdict = analysis.metadata, analysis.summaries, analysis.verdict
    thresholds = metadata.thresholds
    trace_rate = metadata.trace.mean_rate_qps if metadata.trace else None
    cost = analysis.cost
    table = _status_note(metadata) + format_table(
        summaries, analysis.percentiles, verdict, thresholds, trace_rate, cost
    )
    results_name = Path(metadata.results_file or DEFAULT_RESULTS_FILE).name
    samples = _samples(run_dir)
    view = None
    if samples is not None:
        view = server_view(samples, analysis.table, check_queue=metadata.shard is None)
        qps = {s.index: s.qps_target for s in summaries}
        lines = view.warnings(qps, expect_preset=metadata.metrics_preset != "none")
        table += "".join(line + "\n" for line in lines)
    try:
        entries = results_json(summaries, verdict, cost=cost)
        if samples is not None and view is not None:
            _server_json(entries, summaries, samples, view)
        write_json(run_dir / results_name, entries)
        write_json(run_dir / SATURATION_FILE, verdict_json(verdict, trace_rate, cost))
        write_text(run_dir / REPORT_FILE, table)
        drawn = metadata.plot if plot is None else plot
        images = _draw(run_dir, analysis, samples, view) if drawn else []
        if metadata.csv:
            from qpsweep.output.export import write_csvs

            write_csvs(run_dir, analysis)
        if metadata.html if html is None else html:
            from qpsweep.output.html import render_html

            page = render_html(metadata, summaries, verdict, table, analysis.table, images)
            write_text(run_dir / HTML_FILE, page)
        keep_columns(run_dir, analysis.table, stamp)
    except OSError as err:  # a plot: the others say which file in WriteFailed
        raise WriteFailed(f"{run_dir}: cannot write results ({err.strerror})") from None
    return analysis, table
