"""``qpsweep merge DIR...``: the result directories of ``--shard I/N`` runs joined into one run.

The shards must be parts of one run: the same ``N`` and ``--start-at``, the same levels,
duration, seed, arrival process, endpoint, model, dataset and (``--arrival trace``) the trace
file's bytes; otherwise nothing is merged
(``ConfigError``).  Their ``requests.jsonl`` files are joined (``parts.merge_files``) into a
new run directory, whose levels add up the shards' counts, and which is then analyzed like any
run (``output.rebuild``).

What makes the merged numbers less than whole is found and reported, never hidden
(``problems``, also in ``metadata.json`` as ``merge_problems``):

* a shard index with no directory (its arrivals are missing from every level);
* a level that a shard did not run or did not finish (stopped early, interrupted, killed);
* a shard whose records are fewer than the requests it sent (records lost);
* shards whose clocks were more than ``SKEW_LIMIT_S`` apart, each measured against the
  server's ``Date`` header (``qpsweep.load.clock``; the server's own error cancels out); or a
  shard whose clock could not be measured;
* a shard that fell behind its schedule at a level, by the rule that makes a level
  ``client_limited`` (``verdict.too_many_late``: more than 5% of its sends, and at least
  2, over ``summary.LATE_SEND_MS`` late): it started late or could not keep up.  A brief stall
  of a few sends is not a merge problem; the merged report notes it like any run's.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qpsweep.analysis.summary import LATE_SEND_MS
from qpsweep.analysis.verdict import too_many_late
from qpsweep.config.thresholds import Thresholds
from qpsweep.errors import ConfigError
from qpsweep.output.rebuild import rebuild
from qpsweep.records.metadata import (
    LevelEntry,
    RunMetadata,
    ShardInfo,
    read_metadata,
    write_metadata,
)
from qpsweep.records.parts import merge_files
from qpsweep.records.record import RequestRecord
from qpsweep.records.run_files import (
    REQUESTS_FILE,
    create_run_dir,
    load_records,
    record_files,
)
from qpsweep.records.server_metrics import METRICS_FILE

SKEW_LIMIT_S = 0.25
SAME = (
    "qps_levels",
    "duration",
    "seed",
    "arrival",
    "burstiness",
    "endpoint",
    "model",
    "dataset_sha256",
)


@dataclass(frozen=True)
class ShardDir:
    """One shard's result directory read back."""

    path: Path
    index: int
    count: int
    metadata: RunMetadata
    shard: ShardInfo
    records: list[RequestRecord]


@dataclass(frozen=True)
class MergeResult:
    """The merged run directory, the problems found, and the console table."""

    run_dir: Path
    problems: list[str]
    table: str


def _read(path: Path) -> ShardDir:
    metadata = read_metadata(path)
    shard = metadata.shard
    if not shard:
        raise ConfigError(f"{path}: not a shard (its run was made without --shard I/N)")
    return ShardDir(path, shard.index, shard.count, metadata, shard, load_records(path))


def _check_same(shards: list[ShardDir]) -> None:
    first = shards[0]
    for shard in shards[1:]:
        for key in ("count", "start_at"):
            if getattr(shard.shard, key) != getattr(first.shard, key):
                raise ConfigError(
                    f"{shard.path}: shard {key} {getattr(shard.shard, key)} differs from "
                    f"{first.path}'s {getattr(first.shard, key)}: not shards of one run"
                )
        mine, theirs = shard.metadata.to_json(), first.metadata.to_json()
        for key in SAME:
            if mine[key] != theirs[key]:
                raise ConfigError(
                    f"{shard.path}: {key} {mine[key]!r} differs from "
                    f"{first.path}'s {theirs[key]!r}: not shards of one run"
                )
        ours, others = shard.metadata.trace, first.metadata.trace
        if (ours and ours.sha256) != (others and others.sha256):  # --arrival trace: its bytes
            raise ConfigError(
                f"{shard.path}: replayed another trace than {first.path} (sha256 "
                f"{ours.sha256 if ours else None} vs {others.sha256 if others else None}): "
                "not shards of one run"
            )
    seen: dict[int, Path] = {}
    for shard in shards:
        if shard.index in seen:
            raise ConfigError(f"{shard.path}: shard {shard.index} is also {seen[shard.index]}")
        seen[shard.index] = shard.path


def find_problems(shards: list[ShardDir]) -> list[str]:
    """Everything that makes the merged run less than whole (see the module docstring)."""
    count = shards[0].count
    problems = [
        f"shard {i}/{count} is missing: every level lacks 1/{count} of its arrivals"
        for i in sorted(set(range(count)) - {s.index for s in shards})
    ]
    levels = {lv.index: lv.qps_target for s in shards for lv in s.metadata.levels}
    for s in shards:
        name = f"shard {s.index}/{count} ({s.path})"
        ran = {lv.index: lv for lv in s.metadata.levels}
        recorded = Counter(r.level for r in s.records)
        for index, qps in sorted(levels.items()):
            lv = ran.get(index)
            level = f"level {index + 1} (QPS {qps:g})"
            if lv is None:
                why = s.metadata.stopped_early or s.metadata.status
                problems.append(f"{name}: did not run {level} ({why})")
            elif not lv.completed:
                problems.append(f"{name}: did not finish {level} (run {s.metadata.status})")
            elif recorded[index] < (lv.n_sent or 0):
                problems.append(
                    f"{name}: {level}: {lv.n_sent} requests sent but {recorded[index]} recorded"
                )
        problems += _lag_problems(name, s.records)
    return problems + _clock_problems(shards)


def _lag_problems(name: str, records: list[RequestRecord]) -> list[str]:
    lags_ms: dict[tuple[int, float], list[float]] = defaultdict(list)
    for r in records:
        lags_ms[(r.level, r.level_qps)].append((r.sent_s - r.scheduled_s) * 1000.0)
    out = []
    for (index, qps), lags in sorted(lags_ms.items()):
        late = sum(1 for lag in lags if lag > LATE_SEND_MS)
        if too_many_late(late, len(lags), Thresholds()):
            out.append(
                f"{name}: level {index + 1} (QPS {qps:g}) ran behind its schedule ({late} of "
                f"{len(lags)} sends over {LATE_SEND_MS:g} ms late, send lag p99 "
                f"{np.percentile(lags, 99):.0f} ms): the shard started late or could not keep up"
            )
    return out


def _clock_problems(shards: list[ShardDir]) -> list[str]:
    clocks = {s.index: s.metadata.clock for s in shards}
    known = {i: c for i, c in clocks.items() if c}
    out = [
        f"shard {i}: its clock could not be checked (the server sent no usable Date header)"
        for i, c in sorted(clocks.items())
        if not c
    ]
    if len(known) < 2:
        return out
    low_s = min(c.offset_s for c in known.values())
    spread_s = max(c.offset_s for c in known.values()) - low_s
    uncertainty_s = max(c.uncertainty_s for c in known.values())
    if spread_s > max(SKEW_LIMIT_S, 2 * uncertainty_s):
        each = ", ".join(f"shard {i} {c.offset_s - low_s:+.3f} s" for i, c in known.items())
        out.append(
            f"clock skew: the shards' clocks were {spread_s:.2f} s apart ({each}; each measured "
            f"against the server's Date header, ± {uncertainty_s:.3f} s), so their levels did "
            "not start together"
        )
    return out


def _levels(shards: list[ShardDir]) -> tuple[LevelEntry, ...]:
    """The shards' level entries added up, per level index: sends summed, the widest arrival
    window, the earliest start, completed only if every shard completed it."""
    merged: dict[int, LevelEntry] = {}
    for s in sorted(shards, key=lambda s: s.index):
        for lv in s.metadata.levels:
            into = merged.get(lv.index) or replace(lv, n_scheduled=0, n_sent=0)
            window_s = [w for w in (into.arrival_window_s, lv.arrival_window_s) if w]
            merged[lv.index] = replace(
                into,
                n_scheduled=into.n_scheduled + lv.n_scheduled,
                n_sent=(into.n_sent or 0) + (lv.n_sent or 0),
                completed=into.completed and lv.completed,
                arrival_window_s=max(window_s) if window_s else None,
                started_at=min(into.started_at, lv.started_at),
            )
    return tuple(merged[i] for i in sorted(merged))


def merge_shards(
    dirs: list[Path], results_dir: Path, name: str | None, argv: list[str]
) -> MergeResult:
    """Join the shard directories ``dirs`` into a new run directory under ``results_dir``."""
    shards = sorted((_read(d) for d in dirs), key=lambda s: s.index)
    _check_same(shards)
    problems = find_problems(shards)
    first = shards[0].metadata
    statuses = {s.metadata.status for s in shards}
    stopped = [s.metadata.stopped_early for s in shards if s.metadata.stopped_early]
    metadata = replace(
        first,
        argv=tuple(argv),
        shard=None,
        clock=None,
        levels=_levels(shards),
        status="complete" if statuses == {"complete"} else "interrupted",
        interrupted=statuses != {"complete"},
        workers=sum(s.metadata.workers for s in shards),
        merged_from=tuple(
            {
                "dir": str(s.path),
                "shard": f"{s.index}/{s.count}",
                "status": s.metadata.status,
                "records": len(s.records),
                "clock": s.metadata.clock and asdict(s.metadata.clock),
            }
            for s in shards
        ),
        merge_problems=tuple(problems),
        stopped_early=stopped[0] if stopped else None,
    )
    run_dir = create_run_dir(results_dir, name)
    write_metadata(run_dir, metadata)
    merge_files([p for s in shards for p in record_files(s.path)], run_dir / REQUESTS_FILE)
    scraped = next(
        (s.path / METRICS_FILE for s in shards if (s.path / METRICS_FILE).exists()), None
    )
    if scraped is not None:
        shutil.copyfile(scraped, run_dir / METRICS_FILE)
    _, table = rebuild(run_dir)
    return MergeResult(run_dir, problems, table)
