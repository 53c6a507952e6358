"""``qpsweep diff BASE CANDIDATE``: read two result directories, compare, write the diff.

``diff_dirs`` reads both runs back with ``rebuild.analyze_run`` (so the comparison rests on
``metadata.json`` + ``requests.jsonl`` alone), compares them with ``diff.compare`` and writes
``diff.json``, ``diff.txt`` and ``diff.png`` into a new ``diff_YYYY-MM-DD_HH-MM-SS``
directory under ``results_dir`` (or into ``output_dir`` when given).

When either side is the directory of a ``--repeat`` run, the repeats are the evidence instead:
each side's complete repeats (a single run is one) are summarized
(``analysis.repeats``) and compared figure by figure (``analysis.repeat_diff``); ``diff.png``
then shows each side's means with their intervals (``plot_repeats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qpsweep.analysis.cost import run_cost
from qpsweep.analysis.diff import RunData, RunDiff, compare
from qpsweep.analysis.repeat_diff import RepeatDiff, compare_repeats
from qpsweep.errors import RunDirError, WriteFailed
from qpsweep.output.diff_text import diff_json, format_diff
from qpsweep.output.rebuild import analyze_run
from qpsweep.output.repeat_diff_text import format_repeat_diff, repeat_diff_json
from qpsweep.output.repeats import is_repeats_dir, load_side
from qpsweep.records.run_files import write_json, write_text

DIFF_JSON = "diff.json"
DIFF_TEXT = "diff.txt"
DIFF_PNG = "diff.png"


@dataclass(frozen=True)
class DiffResult:
    """Where the diff went, what it found, and its console text."""

    out_dir: Path
    diff: RunDiff | RepeatDiff
    text: str


def _load(run_dir: Path, cost_per_hour: float | None) -> RunData:
    """The run, priced at ``cost_per_hour`` when given, else at its own recorded price."""
    analysis = analyze_run(run_dir)
    cost = analysis.cost
    if cost_per_hour is not None:
        cost = run_cost(analysis.summaries, analysis.verdict, cost_per_hour)
    trace = analysis.metadata.trace
    return RunData(
        str(run_dir),
        analysis.summaries,
        analysis.verdict,
        analysis.records,
        cost,
        None if trace is None else trace.mean_rate_qps,
    )


def _out_dir(results_dir: Path, output_dir: Path | None) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path = output_dir or results_dir / f"diff_{stamp}"
    try:
        path.mkdir(parents=True, exist_ok=output_dir is not None)
    except FileExistsError:
        path = results_dir / f"diff_{stamp}_{datetime.now().microsecond}"
        path.mkdir(parents=True)
    except OSError as err:
        raise RunDirError(f"{path}: cannot create the diff directory ({err.strerror})") from None
    return path


def diff_dirs(
    base_dir: Path,
    candidate_dir: Path,
    *,
    alpha: float,
    threshold_pct: float,
    results_dir: Path,
    output_dir: Path | None = None,
    plot: bool = True,
    cost_per_hour: float | None = None,
) -> DiffResult:
    """Compare two result directories; ``RunDirError`` when either is not one.  Each run is
    priced at its own ``cost_per_hour``, or both at ``cost_per_hour`` when given (not yet for
    directories of ``--repeat``)."""
    if is_repeats_dir(base_dir) or is_repeats_dir(candidate_dir):
        where = (results_dir, output_dir)
        return _diff_repeats(base_dir, candidate_dir, alpha, threshold_pct, where, plot)
    base, candidate = _load(base_dir, cost_per_hour), _load(candidate_dir, cost_per_hour)
    diff = compare(base, candidate, alpha, threshold_pct)
    out_dir = _out_dir(results_dir, output_dir)
    text = format_diff(diff, str(base_dir), str(candidate_dir))
    try:
        write_json(out_dir / DIFF_JSON, diff_json(diff, str(base_dir), str(candidate_dir)))
        write_text(out_dir / DIFF_TEXT, text)
        if plot:
            from qpsweep.output.plot_diff import build_diff_figure  # matplotlib loads slowly

            figure = build_diff_figure(
                (base.summaries, base.verdict),
                (candidate.summaries, candidate.verdict),
                (base_dir.name, candidate_dir.name),
            )
            figure.savefig(out_dir / DIFF_PNG, format="png")
    except OSError as err:
        raise WriteFailed(f"{out_dir}: cannot write the diff ({err.strerror})") from None
    return DiffResult(out_dir, diff, text)


def _diff_repeats(
    base_dir: Path,
    candidate_dir: Path,
    alpha: float,
    threshold_pct: float,
    where: tuple[Path, Path | None],
    plot: bool,
) -> DiffResult:
    """``diff_dirs`` when a side is a ``--repeat`` directory (``where``: the results and
    output directories)."""
    (base, _), (candidate, _) = load_side(base_dir), load_side(candidate_dir)
    diff = compare_repeats(base, candidate, alpha, threshold_pct)
    out_dir = _out_dir(*where)
    text = format_repeat_diff(diff, str(base_dir), str(candidate_dir))
    try:
        write_json(out_dir / DIFF_JSON, repeat_diff_json(diff, str(base_dir), str(candidate_dir)))
        write_text(out_dir / DIFF_TEXT, text)
        if plot:
            from qpsweep.output.plot_repeats import build_repeats_figure  # matplotlib: slow

            figure = build_repeats_figure(diff, (base_dir.name, candidate_dir.name))
            figure.savefig(out_dir / DIFF_PNG, format="png")
    except OSError as err:
        raise WriteFailed(f"{out_dir}: cannot write the diff ({err.strerror})") from None
    return DiffResult(out_dir, diff, text)
