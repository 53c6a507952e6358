"""The result directory contract: ``results/YYYY-MM-DD_HH-MM-SS[_N]/``.

Files: ``metadata.json`` (settings, environment, per-level windows, ``interrupted``),
``requests.jsonl`` (one ``RequestRecord`` per line, appended as requests finish),
``benchmark_qps_results.json`` (or ``--output``), ``saturation.json``, ``report.txt``,
``report.html``, and unless ``--no-plot``: ``benchmark_qps.png`` (or ``--plot-output``) and
``plots/`` (TTFT and ITL distributions, requests in flight).  Everything but ``requests.jsonl``
can be rebuilt from ``metadata.json`` + ``requests.jsonl`` alone (``qpsweep report DIR``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from qpsweep import __version__
from qpsweep.analyze import (
    LevelInfo,
    LevelSummary,
    Records,
    as_table,
    latency_samples,
    summarize_levels,
)
from qpsweep.config import Scenario, Target
from qpsweep.errors import RunDirError
from qpsweep.metrics import METRICS_FILE, read_samples, summarize_metrics
from qpsweep.parts import part_files
from qpsweep.record import RequestRecord, read_records
from qpsweep.record_table import RecordTable
from qpsweep.redact import MASK, is_secret_header, redact_argv
from qpsweep.report import format_table, results_json, verdict_json
from qpsweep.saturation import Thresholds, Verdict, assess
from qpsweep.slo import Slo
from qpsweep.table_reader import read_table

METADATA_FILE = "metadata.json"
REQUESTS_FILE = "requests.jsonl"
REPORT_FILE = "report.txt"
SATURATION_FILE = "saturation.json"
DEFAULT_RESULTS_FILE = "benchmark_qps_results.json"
DEFAULT_PLOT_FILE = "benchmark_qps.png"
HTML_FILE = "report.html"
PLOTS_DIR = "plots"

METRIC_FORMULAS = {
    "ttft_s": "first content chunk arrival - actual send",
    "e2e_s": "end of response - actual send",
    "itl_ms": "gap between consecutive content chunks",
    "tpot_ms": "(e2e - ttft) / (output_tokens - 1)",
    "tokens_per_sec": "output_tokens / e2e, per request",
    "send_lag_ms": "actual send - scheduled send",
    "actual_qps": "requests sent / arrival window",
    "achieved_qps": "successful requests / (level start to last response)",
    "output_tokens": "usage.completion_tokens when the server sends usage, else content chunks",
}


@dataclass(frozen=True)
class RunFiles:
    """Names of the files inside one run directory, and whether to draw the plot."""

    results: str = DEFAULT_RESULTS_FILE
    plot: str = DEFAULT_PLOT_FILE
    want_plot: bool = True
    csv: bool = False


RECORD_BYTES = 2048  # a generous size of one requests.jsonl line (chunk times included)
MIN_FREE_BYTES = 16 * 2**20  # the plots, the HTML and the JSON files, with room to spare
PROBE_BYTES = 64 * 1024


def bytes_needed(expected_requests: float) -> int:
    """Disk space a run needs: ``MIN_FREE_BYTES + RECORD_BYTES x expected_requests``."""
    return int(MIN_FREE_BYTES + RECORD_BYTES * max(expected_requests, 0.0))


def check_space(run_dir: Path, expected_requests: float) -> None:
    """Before any traffic: ``RunDirError`` when ``run_dir`` cannot take the run's files (too
    little free space for ``bytes_needed``, or a probe write of ``PROBE_BYTES`` fails)."""
    needed = bytes_needed(expected_requests)
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise RunDirError(
            f"--results-dir: only {free / 2**20:.1f} MiB free under {run_dir.parent}; this run "
            f"needs about {needed / 2**20:.0f} MiB ({expected_requests:.0f} requests)"
        )
    probe = run_dir / ".write-probe"
    try:
        with probe.open("wb") as out:
            out.write(b"\0" * PROBE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        raise RunDirError(f"--results-dir: cannot write to {run_dir} ({err.strerror})") from None
    finally:
        probe.unlink(missing_ok=True)


def create_run_dir(results_dir: Path, name: str | None = None) -> Path:
    """Make a new, empty directory under ``results_dir`` named ``name``, or by default
    timestamped (``YYYY-MM-DD_HH-MM-SS``); a ``_2``, ``_3``... suffix if taken."""
    stamp = name or datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = results_dir / (stamp if n == 1 else f"{stamp}_{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as err:
        message = f"--results-dir: cannot write to {results_dir} ({err.strerror})"
        raise RunDirError(message) from None
    raise RunDirError(f"--results-dir: too many runs named {stamp} in {results_dir}")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _shard_json(scenario: Scenario) -> dict[str, Any] | None:
    shard = scenario.shard
    if shard is None:
        return None
    return {"index": shard.index, "count": shard.count, "start_at": shard.start_at_epoch}


def new_metadata(
    target: Target,
    scenario: Scenario,
    dataset: str,
    dataset_sha256: str,
    n_samples: int,
    argv: list[str],
    files: RunFiles,
) -> dict[str, Any]:
    """The initial ``metadata.json``: the seed's fields first, then qpsweep's."""
    return {
        "timestamp": datetime.now().isoformat(),
        "endpoint": _public_url(target.url),
        "model": target.model,
        "dataset": dataset,
        "qps_levels": "auto" if scenario.auto else list(scenario.qps),
        "duration": scenario.duration_s,
        "max_tokens": scenario.max_tokens,
        "temperature": scenario.temperature,
        "percentiles": list(scenario.percentiles),
        "show_tokens": True,
        "qpsweep_version": __version__,
        "argv": redact_argv(argv),
        "dataset_sha256": dataset_sha256,
        "dataset_samples": n_samples,
        "seed": scenario.seed,
        "arrival": scenario.arrival,
        "burstiness": scenario.burstiness,
        "timeout_s": scenario.timeout_s,
        "connect_timeout_s": scenario.connect_timeout_s,
        "retries": scenario.retries,
        "workers": scenario.workers,
        "shard": _shard_json(scenario),
        "warmup_requests": scenario.warmup,
        "headers": {k: (MASK if is_secret_header(k) else v) for k, v in target.headers},
        "api_key_used": target.api_key is not None,
        "verify_tls": target.verify_tls,
        "results_file": files.results,
        "plot_file": files.plot,
        "plot": files.want_plot,
        "html": True,
        "csv": files.csv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "metric_formulas": METRIC_FORMULAS,
        "thresholds": asdict(scenario.thresholds),
        "adaptive": asdict(scenario.auto) if scenario.auto else None,
        "status": "running",
        "interrupted": False,
        "levels": [],
    }


def read_metadata(run_dir: Path) -> dict[str, Any]:
    """``metadata.json`` of ``run_dir``; ``RunDirError`` when it is not a qpsweep run."""
    path = run_dir / METADATA_FILE
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = f"{run_dir}: not a qpsweep result directory (no {METADATA_FILE})"
        raise RunDirError(message) from None
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, dict) or "qps_levels" not in data:
        raise RunDirError(f"{path}: not qpsweep metadata (no qps_levels)")
    return data


def record_files(run_dir: Path) -> list[Path]:
    """Where the run's records are: ``requests.jsonl``, or, while a run with ``--workers`` is
    going (or was killed before joining them), its worker parts; empty when neither exists."""
    path = run_dir / REQUESTS_FILE
    return [path] if path.exists() else part_files(run_dir)


def load_records(run_dir: Path) -> list[RequestRecord]:
    """Every record of the run (an empty list when no request finished): ``requests.jsonl``,
    or, while a run with ``--workers`` is going (or was killed), its worker parts."""
    try:
        return [record for p in record_files(run_dir) for record in read_records(p)]
    except ValueError as err:
        raise RunDirError(str(err)) from None


def load_table(run_dir: Path) -> RecordTable:
    """``load_records`` as columns (``read_table``: far faster than the records themselves);
    the same files: ``requests.jsonl``, or the worker parts of a run that has not joined them."""
    paths = record_files(run_dir)
    if not paths:
        return RecordTable.from_records(())
    try:
        tables = [read_table(p) for p in paths]
    except ValueError as err:
        raise RunDirError(str(err)) from None
    return tables[0] if len(tables) == 1 else RecordTable.concat(tables)


def level_infos(metadata: dict[str, Any], records: Records) -> list[LevelInfo]:
    """Levels from metadata, plus any level that only the records mention (a killed run)."""
    table = as_table(records)
    infos = {
        int(lv["index"]): LevelInfo(
            index=int(lv["index"]),
            qps_target=float(lv["qps_target"]),
            arrival_window_s=float(lv.get("arrival_window_s") or 0.0),
            n_scheduled=int(lv.get("n_scheduled") or 0),
            duration_s=float(lv.get("duration_s") or 0.0),
        )
        for lv in metadata.get("levels", [])
    }
    for level, rows in table.levels.items():  # the first record's rate, as the records say
        if level not in infos:
            infos[level] = LevelInfo(level, float(rows.level_qps[0]), 0.0, 0)
    return [infos[i] for i in sorted(infos)]


def _status_note(metadata: dict[str, Any]) -> str:
    shard = metadata.get("shard")
    if shard:
        return (
            f"NOTE: this is shard {shard['index']}/{shard['count']} of a run: it sent every "
            f"{shard['count']}th arrival of each level; qpsweep merge joins the shards.\n"
        )
    if metadata.get("merge_problems"):
        return "".join(f"NOTE: {problem}\n" for problem in metadata["merge_problems"])
    if metadata.get("interrupted"):
        return "NOTE: this run was interrupted; its last level may be cut short.\n"
    if metadata.get("status") == "running":
        return "NOTE: this run did not finish (killed?); results cover what was recorded.\n"
    return ""


def thresholds_of(metadata: dict[str, Any]) -> Thresholds:
    """The verdict's thresholds as the run recorded them (defaults for older runs)."""
    known = {f.name for f in fields(Thresholds)}
    values = {k: v for k, v in (metadata.get("thresholds") or {}).items() if k in known}
    values["slos"] = tuple(Slo(**slo) for slo in values.get("slos") or ())
    return Thresholds(**values)


@dataclass(frozen=True)
class Analysis:
    """A run directory read back and judged: what ``report`` and the sweep's planner use.
    ``table`` holds the records as columns; ``records`` makes the objects on first use."""

    metadata: dict[str, Any]
    percentiles: tuple[float, ...]
    summaries: list[LevelSummary]
    verdict: Verdict
    table: RecordTable

    @cached_property
    def records(self) -> list[RequestRecord]:
        """Every record of the run, in file order."""
        return self.table.records()


def analyze_run(run_dir: Path) -> Analysis:
    """Summaries (sorted by target QPS) and the verdict from the run directory alone."""
    metadata = read_metadata(run_dir)
    table = load_table(run_dir)
    percentiles = tuple(float(p) for p in metadata.get("percentiles") or (50, 95, 99))
    thresholds = thresholds_of(metadata)
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
    "server_metrics.png": "server gauges scraped from --metrics-url",
}


def _server_metrics(run_dir: Path) -> dict[int, dict[str, dict[str, float]]] | None:
    """Per level, the scraped gauges' summary; ``None`` when the run scraped nothing."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return None
    try:
        return summarize_metrics(read_samples(path))
    except ValueError as err:
        raise RunDirError(f"{path}: {err}") from None


def _draw(run_dir: Path, analysis: Analysis) -> list[tuple[str, bytes]]:
    """Write the overview PNG and ``plots/``; returns (title, PNG bytes) in display order."""
    from qpsweep.plot import build_figure, save_figure  # matplotlib loads slowly
    from qpsweep.plot_levels import level_figures, save_level_plots

    metadata, summaries, verdict = analysis.metadata, analysis.summaries, analysis.verdict
    overview = run_dir / Path(str(metadata.get("plot_file") or DEFAULT_PLOT_FILE)).name
    save_figure(build_figure(summaries, metadata, verdict), overview)
    states = {st.index: st.state for st in verdict.levels}
    figures = level_figures(analysis.table, summaries, states)
    if (run_dir / METRICS_FILE).exists():
        from qpsweep.plot_metrics import metrics_figure

        gauges = metadata.get("metrics_gauges") or []
        samples = read_samples(run_dir / METRICS_FILE)
        figures["server_metrics.png"] = metrics_figure(samples, gauges)
    paths = [overview, *save_level_plots(figures, run_dir / PLOTS_DIR)]
    captions = {overview.name: "overview", **_CAPTIONS}
    return [(captions.get(path.name, path.stem), path.read_bytes()) for path in paths]


def rebuild(
    run_dir: Path, plot: bool | None = None, html: bool | None = None
) -> tuple[Analysis, str]:
    """Recompute the results JSON, ``saturation.json`` and ``report.txt`` from
    ``metadata.json`` + ``requests.jsonl``; draw the plots when ``plot`` is true and write
    ``report.html`` when ``html`` is true (``None``: as the run asked).  Returns the analysis
    and the console table."""
    analysis = analyze_run(run_dir)
    metadata, summaries, verdict = analysis.metadata, analysis.summaries, analysis.verdict
    thresholds = thresholds_of(metadata)
    table = _status_note(metadata) + format_table(
        summaries, analysis.percentiles, verdict, thresholds
    )
    results_name = Path(str(metadata.get("results_file") or DEFAULT_RESULTS_FILE)).name
    try:
        scraped = _server_metrics(run_dir)
        write_json(run_dir / results_name, results_json(summaries, verdict, scraped))
        write_json(run_dir / SATURATION_FILE, verdict_json(verdict))
        (run_dir / REPORT_FILE).write_text(table, encoding="utf-8")
        images = (
            _draw(run_dir, analysis) if (metadata.get("plot") if plot is None else plot) else []
        )
        if metadata.get("csv"):
            from qpsweep.export import write_csvs

            write_csvs(run_dir, analysis)
        if metadata.get("html", True) if html is None else html:
            from qpsweep.html_report import render_html

            page = render_html(metadata, summaries, verdict, table, analysis.table, images)
            (run_dir / HTML_FILE).write_text(page, encoding="utf-8")
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot write results ({err.strerror})") from None
    return analysis, table
