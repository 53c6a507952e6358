"""``qpsweep diff BASE CANDIDATE``: read two result directories, compare, write the diff.

``diff_dirs`` reads both runs back with ``rebuild.analyze_run`` (so the comparison rests on
``metadata.json`` + ``requests.jsonl`` alone), compares them with ``diff.compare`` and writes
``diff.json``, ``diff.txt`` and ``diff.png`` into a new ``diff_YYYY-MM-DD_HH-MM-SS``
directory under ``results_dir`` (or into ``output_dir`` when given).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qpsweep.analysis.diff import RunData, RunDiff, compare
from qpsweep.errors import RunDirError, WriteFailed
from qpsweep.output.diff_text import diff_json, format_diff
from qpsweep.output.rebuild import analyze_run
from qpsweep.records.run_files import write_json, write_text

DIFF_JSON = "diff.json"
DIFF_TEXT = "diff.txt"
DIFF_PNG = "diff.png"


@dataclass(frozen=True)
class DiffResult:
    """Where the diff went, what it found, and its console text."""

    out_dir: Path
    diff: RunDiff
    text: str


def _load(run_dir: Path) -> RunData:
    analysis = analyze_run(run_dir)
    return RunData(str(run_dir), analysis.summaries, analysis.verdict, analysis.records)


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
) -> DiffResult:
    """Compare two result directories; ``RunDirError`` when either is not one."""
    base, candidate = _load(base_dir), _load(candidate_dir)
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
