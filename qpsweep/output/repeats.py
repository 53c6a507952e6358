"""``--repeat N``: the same sweep N times, each with its own schedule seed, in one directory.

Layout: ``RESULTS_DIR/YYYY-MM-DD_HH-MM-SS/`` (or ``--name``) holds one ordinary run directory
per repeat, ``repeat_1`` .. ``repeat_N`` (zero-padded when N >= 10), each readable by
``qpsweep report`` and ``diff`` on its own.  Repeat ``i`` (from 1) uses the schedule and prompt
seed ``--seed + i - 1`` (``repeat_seeds``): repeat 1 is the run ``--seed`` alone would make, and
any repeat can be made again alone with its seed.  Its ``metadata.json`` has that ``seed`` and a
``repeat`` note (``index``, ``count``, ``seed``).  Beside them:

* ``repeats.json``: ``count`` (asked), ``seed``, ``auto`` (``--qps auto``), per repeat
  ``index``, ``seed``, ``dir``, ``status`` (``complete``, ``interrupted``, ``not_run``),
  ``reason``; then the statistics of the complete repeats (``repeats_text.summary_json``);
* ``report.txt``: the same as text (also printed).

An interrupted repeat ends the series and is left out of the statistics, as is one that was
not run.  ``qpsweep report DIR`` rebuilds each repeat and the summary; ``qpsweep diff`` takes
the directory on either side (``load_side``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qpsweep.analysis.repeats import Repeat, RepeatSummary, summarize_repeats
from qpsweep.errors import RunDirError
from qpsweep.output.rebuild import Analysis, analyze_run
from qpsweep.output.repeats_text import format_repeats, summary_json
from qpsweep.records.run_files import REPORT_FILE, create_run_dir, write_json, write_text

REPEATS_FILE = "repeats.json"


def repeat_seeds(seed: int, count: int) -> tuple[int, ...]:
    """The schedule seed of each repeat: ``seed, seed + 1, ..., seed + count - 1``."""
    return tuple(seed + i for i in range(count))


def repeat_dir_name(index: int, count: int) -> str:
    """``repeat_3``; ``repeat_03`` when there are 10 or more (so they sort)."""
    return f"repeat_{index:0{len(str(count))}d}"


@dataclass(frozen=True)
class RepeatRun:
    """One repeat as run: its index (from 1), seed, directory and analysis, or why not."""

    index: int
    seed: int
    run_dir: Path | None
    analysis: Analysis | None
    interrupted: bool = False
    reason: str | None = None

    @property
    def status(self) -> str:
        """``complete``, ``interrupted`` or ``not_run``."""
        if self.analysis is None:
            return "not_run"
        return "interrupted" if self.interrupted else "complete"


def _entry(run: RepeatRun, parent: Path) -> dict[str, Any]:
    return {
        "index": run.index,
        "seed": run.seed,
        "dir": None if run.run_dir is None else str(run.run_dir.relative_to(parent)),
        "status": run.status,
        "reason": run.reason,
    }


def summarize(runs: Sequence[RepeatRun]) -> RepeatSummary:
    """The statistics over the complete repeats of ``runs``."""
    done = [r for r in runs if r.status == "complete" and r.analysis is not None]
    return summarize_repeats(
        [
            Repeat(str(r.run_dir), r.seed, r.analysis.summaries, r.analysis.verdict)
            for r in done
            if r.analysis is not None
        ]
    )


def write_summary(parent: Path, runs: Sequence[RepeatRun], count: int, seed: int) -> str:
    """Write ``repeats.json`` and ``report.txt`` into ``parent``; returns the text."""
    auto = any(r.analysis is not None and r.analysis.metadata.adaptive for r in runs)
    summary = summarize(runs)
    left_out = tuple(
        f"repeat {r.index} (seed {r.seed}): {r.status}" + (f" ({r.reason})" if r.reason else "")
        for r in runs
        if r.status != "complete"
    )
    text = format_repeats(summary, auto, left_out)
    data = {
        "count": count,
        "seed": seed,
        "seeds": "seed + i for repeat i = 0 .. count - 1",
        "auto": auto,
        "repeats": [_entry(r, parent) for r in runs],
    }
    write_json(parent / REPEATS_FILE, data | summary_json(summary))  # WriteFailed, one line
    write_text(parent / REPORT_FILE, text)
    return text


SweepOnce = Callable[[int, int, Path, str], RepeatRun]


def sweep_repeats(
    count: int, seed: int, results_dir: Path, name: str | None, sweep_once: SweepOnce
) -> tuple[Path, list[RepeatRun], str]:
    """Run ``sweep_once(index, seed, parent, dir_name)`` for each repeat into one new
    directory; stops after a repeat that was interrupted or not run.  Returns the directory,
    the runs and the summary text."""
    parent = create_run_dir(results_dir, name)
    runs: list[RepeatRun] = []
    for index, one_seed in enumerate(repeat_seeds(seed, count), start=1):
        run = sweep_once(index, one_seed, parent, repeat_dir_name(index, count))
        runs.append(run)
        if run.status != "complete":
            break
    return parent, runs, write_summary(parent, runs, count, seed)


def is_repeats_dir(path: Path) -> bool:
    """Whether ``path`` is the parent directory of a ``--repeat`` run."""
    return (path / REPEATS_FILE).is_file()


def read_repeats(parent: Path) -> dict[str, Any]:
    """``repeats.json`` of ``parent``; ``RunDirError`` (one line naming it) when it cannot be
    read or lists no repeat."""
    path = parent / REPEATS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable ({err})") from None
    entries = data.get("repeats") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RunDirError(f"{path}: not a qpsweep repeats file (no list of repeats)")
    return dict(data)


def rebuild_repeats(parent: Path, rebuild_one: Callable[[Path], Analysis]) -> str:
    """``qpsweep report`` of a repeats directory: ``rebuild_one`` each repeat that has a
    directory, then the summary again; returns its text."""
    data = read_repeats(parent)
    runs = []
    try:
        count, seed = int(data.get("count", 0)), int(data.get("seed", 0))
        for e in data["repeats"]:
            index, one_seed, reason = int(e["index"]), int(e["seed"]), e.get("reason")
            child = parent / str(e["dir"]) if e.get("dir") else None
            analysis = rebuild_one(child) if child is not None else None
            interrupted = e.get("status") == "interrupted"
            runs.append(RepeatRun(index, one_seed, child, analysis, interrupted, reason))
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{parent / REPEATS_FILE}: a field has the wrong shape ({err})") from None
    return write_summary(parent, runs, count or len(runs), seed)


def load_side(path: Path) -> tuple[RepeatSummary, list[Analysis]]:
    """One side of ``diff``: a repeats directory (its complete repeats) or a single run
    directory (one repeat).  ``RunDirError`` naming the directory when it holds no complete
    run."""
    if not is_repeats_dir(path):
        analysis = analyze_run(path)
        one = Repeat(str(path), analysis.metadata.seed, analysis.summaries, analysis.verdict)
        return summarize_repeats([one]), [analysis]
    entries = read_repeats(path)["repeats"]
    complete = [e for e in entries if e.get("status") == "complete" and e.get("dir")]
    if not complete:
        raise RunDirError(f"{path}: a repeats directory with no complete run in it")
    analyses = [analyze_run(path / str(e["dir"])) for e in complete]
    try:
        repeats = [
            Repeat(str(path / str(e["dir"])), int(e["seed"]), a.summaries, a.verdict)
            for e, a in zip(complete, analyses, strict=True)
        ]
    except (KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{path / REPEATS_FILE}: a field has the wrong shape ({err})") from None
    return summarize_repeats(repeats), analyses
