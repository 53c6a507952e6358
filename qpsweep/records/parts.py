"""Record files written in parts, and joining them into one ``requests.jsonl``.

With ``--workers N`` each worker process appends to its own ``parts/requests-<w>.jsonl``;
``qpsweep merge`` joins the ``requests.jsonl`` of several shards.  Either way the parts are
joined line by line, without decoding the records: each file is in the order its requests
finished, and ``merge_files`` interleaves them by ``(level, done_s)`` (a k-way merge, so memory
stays flat however many records there are), which is the order one process would have
written them in.  A last line without its newline (a process killed mid-write) is left out,
as ``read_records`` would skip it.

While a run with workers is going, its records are only in the parts; ``merge_parts``
writes ``requests.jsonl`` through a temporary file and an atomic rename, then deletes the
parts, so a run killed at any moment keeps every record exactly once: either in
``requests.jsonl`` (which, once there, is the whole truth: leftover parts are ignored) or
in the parts.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from qpsweep.errors import WriteFailed

PARTS_DIR = "parts"
_KEY = re.compile(r'^\{"level":(-?\d+),.*?"done_s":(-?[0-9.eE+-]+)')


def part_path(run_dir: Path, worker: int) -> Path:
    """Where worker ``worker`` appends its records."""
    return run_dir / PARTS_DIR / f"requests-{worker}.jsonl"


def part_files(run_dir: Path) -> list[Path]:
    """The run's part files, in worker order (empty when it has none)."""
    parts = run_dir / PARTS_DIR
    if not parts.is_dir():
        return []
    found = parts.glob("requests-*.jsonl")
    return sorted(found, key=lambda p: int(p.stem.rpartition("-")[2] or 0))


def _key(line: str) -> tuple[int, float]:
    """``(level, done_s)`` read from the front of a record line (``to_json`` writes ``level``
    first); a line of another shape sorts by where it is (``(-1, 0.0)`` keeps it first)."""
    match = _KEY.match(line)
    return (int(match.group(1)), float(match.group(2))) if match else (-1, 0.0)


def _lines(path: Path) -> Iterator[str]:
    """Complete lines of ``path`` (a last line without its newline is left out)."""
    with path.open(encoding="utf-8") as file:
        for line in file:
            if line.endswith("\n"):
                yield line


def merge_files(sources: list[Path], target: Path) -> int:
    """Write the complete lines of ``sources`` to ``target`` in ``(level, done_s)`` order,
    through ``target.tmp`` and a rename; returns the number of lines written.  When that
    cannot be written (a full disk), ``WriteFailed``: the temporary file is removed, and the
    sources are left as they are."""
    tmp = target.with_name(target.name + ".tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as out:
            for line in heapq.merge(*(_lines(p) for p in sources), key=_key):
                out.write(line)
                n += 1
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteFailed(f"{target} could not be written ({err.strerror or err})") from None
    return n


def merge_parts(run_dir: Path, target: Path) -> int:
    """Join the run's parts into ``target`` (its ``requests.jsonl``) and delete them; returns
    the number of records.  Without parts, nothing happens and 0 is returned.  When the join
    cannot be written, ``WriteFailed``, and the parts stay (``qpsweep report`` reads them)."""
    parts = part_files(run_dir)
    if not parts:
        return 0
    n = 0 if target.exists() else merge_files(parts, target)
    shutil.rmtree(run_dir / PARTS_DIR, ignore_errors=True)
    return n
