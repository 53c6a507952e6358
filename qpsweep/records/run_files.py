"""The result directory and its files: ``results/YYYY-MM-DD_HH-MM-SS[_N]/``.

Files: ``metadata.json`` (settings, environment, per-level windows, ``interrupted``: see
``qpsweep.records.metadata``), ``requests.jsonl`` (one ``RequestRecord`` per line, appended as
requests finish), ``benchmark_qps_results.json`` (or ``--output``), ``saturation.json``,
``report.txt``, ``report.html``, ``requests.npz`` (the records as columns: see
``qpsweep.records.columns``), and unless ``--no-plot``: ``benchmark_qps.png`` (or
``--plot-output``) and ``plots/`` (TTFT and ITL distributions, requests in flight).  Everything
but ``requests.jsonl`` can be rebuilt from ``metadata.json`` + ``requests.jsonl`` alone
(``qpsweep report DIR``, ``qpsweep.output.rebuild``).  The formats of the JSON files and of a
record have a ``SCHEMA_VERSION`` and a JSON Schema each (``SCHEMAS_DIR``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from qpsweep.errors import RunDirError, WriteFailed
from qpsweep.records.columns import (
    COLUMNS_FILE,
    Stamp,
    columns_current,
    load_columns,
    save_columns,
    stamp_of,
)
from qpsweep.records.parts import part_files
from qpsweep.records.record import RequestRecord, read_records
from qpsweep.records.table import RecordTable, read_table

SCHEMA_VERSION = 1
"""The version of the formats of ``metadata.json``, ``requests.jsonl``,
``benchmark_qps_results.json`` and ``saturation.json``, written into each JSON file as
``schema_version`` (the records' version is their ``metadata.json``'s: a line carries none).
A file without one is version 1.  Their JSON Schemas are ``qpsweep/records/schemas/*.json``."""
SCHEMAS_DIR = Path(__file__).parent / "schemas"

METADATA_FILE = "metadata.json"


REQUESTS_FILE = "requests.jsonl"


REPORT_FILE = "report.txt"


SATURATION_FILE = "saturation.json"


DEFAULT_RESULTS_FILE = "benchmark_qps_results.json"


DEFAULT_PLOT_FILE = "benchmark_qps.png"


HTML_FILE = "report.html"


PLOTS_DIR = "plots"


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
    """Write ``data`` as indented JSON atomically (temporary file, then rename); when that
    fails (a full disk), ``WriteFailed`` naming ``path``, and the old file is left as it was."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_text(path: Path, text: str, newline: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file, then rename); when that
    fails (a full disk, the file-size limit), ``WriteFailed`` naming ``path``, the temporary
    file removed and the old file left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline=newline)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise WriteFailed(f"{path} could not be written ({err.strerror or err})") from None


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
    """``load_records`` as columns (far faster than the records themselves): the same files,
    ``requests.jsonl`` or the worker parts of a run that has not joined them; read from
    ``requests.npz`` instead while that holds the current ``requests.jsonl``."""
    paths = record_files(run_dir)
    if not paths:
        return RecordTable.from_records(())
    if paths == [run_dir / REQUESTS_FILE]:
        saved = load_columns(run_dir / COLUMNS_FILE, paths[0])
        if saved is not None:
            return saved
    try:
        tables = [read_table(p) for p in paths]
    except ValueError as err:
        raise RunDirError(str(err)) from None
    except OverflowError:  # a record's own fields (level, seq, ...) beyond 64 bits
        where = ", ".join(str(p) for p in paths)
        raise RunDirError(f"{where}: a record holds a number beyond 2**63-1") from None
    return tables[0] if len(tables) == 1 else RecordTable.concat(tables)


def records_stamp(run_dir: Path) -> Stamp | None:
    """The stamp (size, mtime) of the run's ``requests.jsonl``; ``None`` without one."""
    return stamp_of(run_dir / REQUESTS_FILE)


def keep_columns(run_dir: Path, table: RecordTable, stamp: Stamp | None) -> None:
    """Save ``table``, the run's records as ``load_table`` read them from a
    ``requests.jsonl`` whose stamp was ``stamp`` before the reading, as ``requests.npz``;
    nothing when the file has changed since (a run still going), or when ``requests.npz``
    is current already."""
    path = run_dir / COLUMNS_FILE
    if stamp is not None and records_stamp(run_dir) == stamp and not columns_current(path, stamp):
        save_columns(path, table, stamp)
