"""CSV exports of a judged run: ``requests.csv`` and ``levels.csv`` in the run directory,
``benchmark_summary.csv`` in the results directory (the parent of the runs).

UTF-8, RFC 4180 CSV (``csv``'s excel dialect: CRLF rows, fields quoted when needed), one
header row; an empty cell is ``None``.  Units are in the names: ``_s`` seconds, ``_ms``
milliseconds, ``qps`` requests/s, ``_pct`` percent; seconds are rounded to 6 decimals,
milliseconds, tokens/s and percentages to 3, rates and ratios to 4.

* ``requests.csv``, one row per record in ``requests.jsonl`` order: level, level_qps, seq,
  prompt_id, scheduled_s, sent_s, send_lag_ms, first_token_s, done_s, ttft_s, e2e_s, status,
  error_kind, error, input_tokens, output_tokens, token_counted_by, n_chunks, attempts,
  first_error_kind, first_try_s, ttft_visible_s, reasoning_tokens, cached_tokens.  Times are
  seconds since the start of the record's level;
  ttft_s = first_token_s - sent_s, e2e_s = done_s - sent_s (for a failure, the time to the
  failure: the summaries use successful rows only), send_lag_ms = sent_s - scheduled_s,
  n_chunks = content chunks received; with ``--retries``, attempts = tries, and for a retried
  request first_error_kind and first_try_s = how its first try ended, and after how long;
  ttft_visible_s = the first visible (not reasoning) token's time - sent_s (= ttft_s for a
  stream without reasoning), reasoning_tokens and cached_tokens as the usage reported them.
  ``error`` is the message as recorded (from the server), unaltered.
* ``levels.csv``, one row per level in the analysis' order (target QPS), from ``LevelSummary``
  and the verdict: index, qps_target, state, offered_qps, achieved_qps, n_sent, n_ok,
  n_failed, success_pct, ttft_p50_s, ttft_p95_s, ttft_p99_s, e2e_p50_s, e2e_p95_s, e2e_p99_s,
  itl_p50_ms, itl_p95_ms, tpot_p50_ms, tokens_per_sec_p50, send_lag_p99_ms, completion_ratio,
  queue_growth, n_retried, first_try_error_rate, ttft_visible_p50_s, ttft_visible_p95_s
  (levels that streamed reasoning), reasoning_tokens_mean, cached_share, then errors_<kind>
  (failed requests of that kind, e.g. errors_http_503) for each error kind seen anywhere in
  the run, in ``ERROR_KINDS`` order.
* ``benchmark_summary.csv``: ``append_summary`` adds one row per level of a run, to compare
  runs over time: run_dir (its name), timestamp, endpoint, model, dataset (from
  ``metadata.json``), qps_target, offered_qps, state, success_pct, ttft_p50_s, ttft_p95_s,
  e2e_p50_s, e2e_p95_s, tokens_per_sec_p50 (as in levels.csv), saturation_qps,
  recommended_qps (the run's verdict, repeated on each of its rows).  The header is written
  only into a new or empty file; a file with another header raises ``RunDirError``.  A run's
  rows go out in one ``O_APPEND`` write, so concurrent runs never interleave within a row.

``requests.csv`` and ``levels.csv`` are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qpsweep.analysis.summary import LevelSummary
from qpsweep.errors import RunDirError, WriteFailed
from qpsweep.output.rebuild import Analysis
from qpsweep.records.record import ERROR_KINDS, RequestRecord

REQUESTS_CSV = "requests.csv"
LEVELS_CSV = "levels.csv"
SUMMARY_CSV = "benchmark_summary.csv"


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _pct(dist: str, p: float, digits: int) -> Callable[[LevelSummary], float | None]:
    return lambda s: _r(getattr(s, dist).get(p), digits)


def _visible_s(r: RequestRecord) -> float | None:
    """The first visible token's time after the send (see ``RequestRecord``)."""
    at = r.first_visible_s if r.first_reasoning_s is not None else r.first_token_s
    return None if at is None else _r(at - r.sent_s, 6)


_REQUEST: dict[str, Callable[[RequestRecord], Any]] = {
    "level": lambda r: r.level,
    "level_qps": lambda r: r.level_qps,
    "seq": lambda r: r.seq,
    "prompt_id": lambda r: r.prompt_id,
    "scheduled_s": lambda r: _r(r.scheduled_s, 6),
    "sent_s": lambda r: _r(r.sent_s, 6),
    "send_lag_ms": lambda r: _r((r.sent_s - r.scheduled_s) * 1000.0, 3),
    "first_token_s": lambda r: _r(r.first_token_s, 6),
    "done_s": lambda r: _r(r.done_s, 6),
    "ttft_s": lambda r: None if r.first_token_s is None else _r(r.first_token_s - r.sent_s, 6),
    "e2e_s": lambda r: _r(r.done_s - r.sent_s, 6),
    "status": lambda r: r.status,
    "error_kind": lambda r: r.error_kind,
    "error": lambda r: r.error,
    "input_tokens": lambda r: r.input_tokens,
    "output_tokens": lambda r: r.output_tokens,
    "token_counted_by": lambda r: r.token_counted_by,
    "n_chunks": lambda r: len(r.chunk_s),
    "attempts": lambda r: r.attempts,
    "first_error_kind": lambda r: r.first_error_kind,
    "first_try_s": lambda r: None if r.first_done_s is None else _r(r.first_done_s - r.sent_s, 6),
    "ttft_visible_s": _visible_s,
    "reasoning_tokens": lambda r: r.reasoning_tokens,
    "cached_tokens": lambda r: r.cached_tokens,
}
_LEVEL: dict[str, Callable[[LevelSummary], Any]] = {
    "index": lambda s: s.index,
    "qps_target": lambda s: s.qps_target,
    "state": lambda s: None,  # filled in from the verdict
    "offered_qps": lambda s: _r(s.offered_qps, 4),
    "achieved_qps": lambda s: _r(s.achieved_qps, 4),
    "n_sent": lambda s: s.n_sent,
    "n_ok": lambda s: s.n_ok,
    "n_failed": lambda s: s.n_failed,
    "success_pct": lambda s: _r(s.success_pct, 3),
    "ttft_p50_s": _pct("ttft_s", 50.0, 6),
    "ttft_p95_s": _pct("ttft_s", 95.0, 6),
    "ttft_p99_s": _pct("ttft_s", 99.0, 6),
    "e2e_p50_s": _pct("e2e_s", 50.0, 6),
    "e2e_p95_s": _pct("e2e_s", 95.0, 6),
    "e2e_p99_s": _pct("e2e_s", 99.0, 6),
    "itl_p50_ms": _pct("itl_ms", 50.0, 3),
    "itl_p95_ms": _pct("itl_ms", 95.0, 3),
    "tpot_p50_ms": _pct("tpot_ms", 50.0, 3),
    "tokens_per_sec_p50": _pct("tokens_per_sec", 50.0, 3),
    "send_lag_p99_ms": _pct("send_lag_ms", 99.0, 3),
    "completion_ratio": lambda s: _r(s.completion_ratio, 4),
    "queue_growth": lambda s: _r(s.queue_growth, 4),
    "n_retried": lambda s: s.n_retried,
    "first_try_error_rate": lambda s: _r(s.first_try_error_rate, 4),
    "ttft_visible_p50_s": _pct("ttft_visible_s", 50.0, 6),
    "ttft_visible_p95_s": _pct("ttft_visible_s", 95.0, 6),
    "reasoning_tokens_mean": lambda s: _r(s.reasoning_tokens_mean, 3),
    "cached_share": lambda s: _r(s.cached_share, 4),
}
REQUEST_COLUMNS = tuple(_REQUEST)
LEVEL_COLUMNS = tuple(_LEVEL)  # then errors_<kind> per kind seen in the run
RUN_COLUMNS = ("run_dir", "timestamp", "endpoint", "model", "dataset")
LEVEL_SUMMARY_COLUMNS = (  # taken from the levels.csv row
    "qps_target",
    "offered_qps",
    "state",
    "success_pct",
    "ttft_p50_s",
    "ttft_p95_s",
    "e2e_p50_s",
    "e2e_p95_s",
    "tokens_per_sec_p50",
)
SUMMARY_COLUMNS = (*RUN_COLUMNS, *LEVEL_SUMMARY_COLUMNS, "saturation_qps", "recommended_qps")


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _error_kinds(summaries: Sequence[LevelSummary]) -> list[str]:
    seen = {kind for s in summaries for kind, _ in s.errors_by_kind}
    return [k for k in ERROR_KINDS if k in seen] + sorted(seen - set(ERROR_KINDS))


def level_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The rows of ``levels.csv`` (column -> value, ``None`` for an empty cell)."""
    states = {st.index: st.state for st in analysis.verdict.levels}
    kinds = _error_kinds(analysis.summaries)
    rows = []
    for s in analysis.summaries:
        row = {name: get(s) for name, get in _LEVEL.items()} | {"state": states[s.index]}
        counts = dict(s.errors_by_kind)
        rows.append(row | {f"errors_{k}": counts.get(k, 0) for k in kinds})
    return rows


def write_csvs(run_dir: Path, analysis: Analysis) -> list[Path]:
    """Write ``requests.csv`` and ``levels.csv`` into ``run_dir``; returns their paths."""
    requests = ({name: get(r) for name, get in _REQUEST.items()} for r in analysis.records)
    level_columns = [*LEVEL_COLUMNS, *(f"errors_{k}" for k in _error_kinds(analysis.summaries))]
    files = {
        run_dir / REQUESTS_CSV: _csv_text(REQUEST_COLUMNS, requests, header=True),
        run_dir / LEVELS_CSV: _csv_text(level_columns, level_rows(analysis), header=True),
    }
    for path, text in files.items():
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8", newline="")
            os.replace(tmp, path)
        except OSError as err:
            raise WriteFailed(f"{path}: cannot write ({err.strerror})") from None
    return list(files)


def _header(path: Path) -> tuple[str, ...] | None:
    """The first row of an existing CSV file (``None`` when it is not UTF-8 CSV text)."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            return tuple(next(csv.reader(file), []))
    except (UnicodeDecodeError, csv.Error):
        return None


def append_summary(results_dir: Path, run_dir: Path, analysis: Analysis) -> Path:
    """Append one row per level of the run to ``results_dir/benchmark_summary.csv``."""
    path = results_dir / SUMMARY_CSV
    meta, verdict = analysis.metadata, analysis.verdict
    run = {"run_dir": run_dir.name} | {k: getattr(meta, k) for k in RUN_COLUMNS[1:]}
    run |= {
        "saturation_qps": _r(verdict.saturation_qps, 4),
        "recommended_qps": _r(verdict.recommended_qps, 4),
    }
    rows = [run | {k: row[k] for k in LEVEL_SUMMARY_COLUMNS} for row in level_rows(analysis)]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            text = _csv_text(SUMMARY_COLUMNS, rows, header=size == 0)
            if size and _header(path) != SUMMARY_COLUMNS:
                raise RunDirError(
                    f"{path}: its header differs from this qpsweep's columns; move the file "
                    "aside or use another --results-dir"
                )
            data = text.encode("utf-8")
            while data:  # one write() in practice: a whole run's rows land together
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except OSError as err:
        raise RunDirError(f"{path}: cannot append ({err.strerror})") from None
    return path
