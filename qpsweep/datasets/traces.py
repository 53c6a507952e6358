"""Arrival traces for ``--arrival trace --trace FILE``: when requests came, and how long they were.

Three formats, told apart by the file's content (never its name):

* **Mooncake JSONL** (FAST'25 traces; AIPerf's ``mooncake_trace``): one object per line with
  ``timestamp`` (milliseconds since the first request), ``input_length``, ``output_length``
  and optionally ``hash_ids`` (one id per 512-token block of the prompt; equal ids = a shared
  prefix).  Selected when the first object has ``input_length``, ``output_length`` or
  ``hash_ids``; then ``timestamp``, ``input_length`` and ``output_length`` are required on
  every line.
* **Azure LLM inference trace CSV** (2023 and 2024): header ``TIMESTAMP,ContextTokens,
  GeneratedTokens``; ``TIMESTAMP`` a date and time such as ``2023-11-16 18:15:46.6805900`` or
  ``2024-05-10 00:00:00.009930+00:00`` (any number of fractional digits; no zone = UTC).
  Selected by a ``TIMESTAMP`` column.
* **plain**, CSV with a header row or JSONL: a time column in **seconds** named ``time_s``,
  ``timestamp_s``, ``arrival_s``, ``timestamp``, ``time`` or ``t`` (the first of those
  present), and optionally ``input_tokens`` and ``output_tokens``.

Times may start anywhere (they are taken relative to the first row) and must be finite,
non-negative and sorted (equal times are simultaneous arrivals).  Token counts are whole
numbers >= 0.  Blank lines are skipped; other columns and keys are ignored.  A bad file
raises ``DatasetError`` with one line naming the file, the line and the field.

The trace's mean rate is ``(n - 1) / span_s`` (``span_s`` = last time - first time): the
rate at which replaying it and wrapping around (``qpsweep.load.schedule``) offers requests,
one mean gap separating the last request from the first of the next pass.

``trace_prompts`` builds the request of every row: where the trace has input lengths, a
user message of exactly that many words (the word-as-token rule of ``qpsweep dataset synth``);
a Mooncake row with ``hash_ids`` is built block by block, each block's 512 words drawn from a
generator seeded by ``(seed, hash id)``, so rows that share hash ids share their text prefix
as the trace says they did; rows without hash ids get their own words.  Where the trace has
output lengths, ``max_tokens`` is that length (at least 1).  Rows without input lengths take
the dataset's prompts in their seeded order.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, overload

import numpy as np

from qpsweep.datasets.prompts import _VOCABULARY, Prompt, prompt_order, read_text_file
from qpsweep.errors import DatasetError

MOONCAKE_BLOCK_TOKENS = 512
PLAIN_TIME_COLUMNS = ("time_s", "timestamp_s", "arrival_s", "timestamp", "time", "t")
FORMAT_NAMES = {
    "mooncake": "Mooncake JSONL",
    "azure": "Azure LLM inference CSV",
    "plain": "plain",
}
_MOONCAKE_KEYS = ("input_length", "output_length", "hash_ids")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class ArrivalTrace:
    """A trace as read: ``times_s`` relative to its first row (sorted, float64), and per
    row the token counts where the format gives them (``None`` where it does not)."""

    path: str
    sha256: str
    format: str  # "mooncake", "azure" or "plain"
    times_s: np.ndarray
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    hash_ids: tuple[tuple[int, ...] | None, ...] | None = None

    @property
    def has_lengths(self) -> bool:
        """The trace gives input or output token counts (a prompt is built per row)."""
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def n_requests(self) -> int:
        """Rows in the trace."""
        return len(self.times_s)

    @property
    def span_s(self) -> float:
        """Last arrival - first arrival, seconds."""
        return float(self.times_s[-1])

    @property
    def mean_rate_qps(self) -> float:
        """``(n - 1) / span_s``: the trace's own mean rate (requests per second)."""
        return (self.n_requests - 1) / self.span_s

    def describe(self) -> str:
        """One line for the console: format, size, span and mean rate."""
        lengths = "input and output lengths" if self.input_tokens is not None else "no lengths"
        if self.input_tokens is None and self.output_tokens is not None:
            lengths = "output lengths"
        return (
            f"trace {self.path}: {FORMAT_NAMES[self.format]}, {self.n_requests} requests over "
            f"{self.span_s:.4g} s, mean {self.mean_rate_qps:.4g} req/s, {lengths}"
        )


class _RowError(Exception):
    """A problem in one row; ``load_trace`` adds the file and the line."""


def _number(value: Any, field: str) -> float:
    """A JSON or CSV value as a finite float."""
    if isinstance(value, bool):
        raise _RowError(f"{field}: {value!r} is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _RowError(f"{field}: {value!r} is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise _RowError(f"{field}: {value!r} is not a finite number")
    return float(value)


def _count(value: Any, field: str) -> int:
    """A token count: a whole number >= 0."""
    number = _number(value, field)
    if number < 0 or not number.is_integer():
        raise _RowError(f"{field}: {value!r} must be a whole number of tokens >= 0")
    return int(number)


def _datetime_s(value: Any, field: str) -> float:
    """``2023-11-16 18:15:46.6805900`` / ``...+00:00`` as Unix seconds (no zone: UTC)."""
    match = _DATETIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _RowError(f"{field}: {value!r} is not a date and time (YYYY-MM-DD HH:MM:SS[.f])")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    tz = timezone.utc
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as err:
        raise _RowError(f"{field}: {value!r}: {err}") from None
    return when.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def _hash_ids(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in value
    ):
        raise _RowError("hash_ids: must be a list of integers")
    return tuple(value)


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    # split on \n only: str.splitlines() also breaks at U+2028/U+0085, legal inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise _LineError(lineno, f"invalid JSON: {err.msg}") from None
        if not isinstance(row, dict):
            raise _LineError(lineno, "must be a JSON object")
        rows.append((lineno, row))
    return rows


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip() for cell in cells]
            continue
        if len(cells) != len(header):
            raise _LineError(
                reader.line_num, f"has {len(cells)} fields, the header has {len(header)}"
            )
        rows.append((reader.line_num, dict(zip(header, cells, strict=True))))
    if header is not None and not rows:
        raise _LineError(reader.line_num, "a header and no rows: the trace is empty")
    return rows


class _LineError(Exception):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(message)
        self.lineno = lineno


def _detect(first: dict[str, Any], is_json: bool) -> str:
    if is_json and any(key in first for key in _MOONCAKE_KEYS):
        return "mooncake"
    if not is_json and "TIMESTAMP" in first:
        return "azure"
    return "plain"


def _plain_time(keys: Sequence[str]) -> str:
    for name in PLAIN_TIME_COLUMNS:
        if name in keys:
            return name
    raise _RowError(
        f"no time column: a plain trace needs one of {', '.join(PLAIN_TIME_COLUMNS)} "
        "(seconds); Mooncake JSONL needs timestamp with input_length/output_length, Azure CSV "
        "TIMESTAMP,ContextTokens,GeneratedTokens"
    )


def _field(row: dict[str, Any], name: str) -> Any:
    if name not in row or row[name] is None or row[name] == "":
        raise _RowError(f"{name}: missing")
    return row[name]


def _parse_rows(
    fmt: str, rows: list[tuple[int, dict[str, Any]]]
) -> tuple[list[float], list[int] | None, list[int] | None, list[tuple[int, ...] | None] | None]:
    """Per row: time (s, absolute), input and output tokens, hash ids (``None`` columns where
    the format or file has none)."""
    first = rows[0][1]
    if fmt == "mooncake":
        time_key, in_key, out_key = "timestamp", "input_length", "output_length"
    elif fmt == "azure":
        time_key, in_key, out_key = "TIMESTAMP", "ContextTokens", "GeneratedTokens"
    else:
        try:
            time_key = _plain_time(list(first))
        except _RowError as err:
            raise _LineError(rows[0][0], str(err)) from None
        in_key, out_key = "input_tokens", "output_tokens"
    want_in = fmt != "plain" or in_key in first
    want_out = fmt != "plain" or out_key in first
    times: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    hashes: list[tuple[int, ...] | None] = []
    for lineno, row in rows:
        try:
            raw = _field(row, time_key)
            if fmt == "azure":
                t = _datetime_s(raw, time_key)
            else:
                t = _number(raw, time_key) / (1000.0 if fmt == "mooncake" else 1.0)
                if t < 0:
                    raise _RowError(f"{time_key}: {raw!r} is negative")
            if times and t < times[-1]:
                raise _RowError(
                    f"{time_key}: {raw!r} is earlier than the line before: the trace must be "
                    "sorted by time"
                )
            times.append(t)
            if want_in:
                inputs.append(_count(_field(row, in_key), in_key))
            if want_out:
                outputs.append(_count(_field(row, out_key), out_key))
            if fmt == "mooncake":
                hashes.append(_hash_ids(row.get("hash_ids")))
        except _RowError as err:
            raise _LineError(lineno, str(err)) from None
    return (
        times,
        inputs if want_in else None,
        outputs if want_out else None,
        hashes if fmt == "mooncake" and any(h is not None for h in hashes) else None,
    )


def load_trace(path: Path) -> ArrivalTrace:
    """Read and check ``path`` (see the module docstring); ``DatasetError`` naming the file,
    line and field when it cannot be replayed."""
    text, sha256 = read_text_file(path, "trace", "CSV or JSON Lines")
    is_json = text.lstrip().startswith("{")
    try:
        rows = _jsonl_rows(text) if is_json else _csv_rows(text)
        if not rows:
            raise DatasetError(f"{path}: is empty: a trace needs at least 2 requests")
        fmt = _detect(rows[0][1], is_json)
        times, inputs, outputs, hashes = _parse_rows(fmt, rows)
    except _LineError as err:
        raise DatasetError(f"{path}: line {err.lineno}: {err}") from None
    except csv.Error as err:
        raise DatasetError(f"{path}: not a CSV file ({err})") from None
    if len(times) < 2:
        raise DatasetError(f"{path}: has 1 request: a trace needs at least 2 to have a rate")
    t = np.asarray(times, dtype=np.float64)
    t -= t[0]
    if t[-1] <= 0:
        raise DatasetError(f"{path}: every request has the same time: the trace has no rate")
    return ArrivalTrace(
        path=str(path),
        sha256=sha256,
        format=fmt,
        times_s=t,
        input_tokens=None if inputs is None else np.asarray(inputs, dtype=np.int64),
        output_tokens=None if outputs is None else np.asarray(outputs, dtype=np.int64),
        hash_ids=None if hashes is None else tuple(hashes),
    )


class _Words:
    """Seeded words: ``block(h)`` is the text of hash id ``h`` (512 words, cached),
    ``own(row, n)`` the ``n`` words of a row without hash ids."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.vocabulary = np.array(_VOCABULARY)
        self.blocks: dict[int, list[str]] = {}

    def _draw(self, key: int, kind: int, n: int) -> list[str]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, kind, key & (2**63 - 1)]))
        words: list[str] = self.vocabulary[rng.integers(0, len(self.vocabulary), n)].tolist()
        return words

    def block(self, hash_id: int) -> list[str]:
        words = self.blocks.get(hash_id)
        if words is None:
            words = self.blocks[hash_id] = self._draw(hash_id, 3, MOONCAKE_BLOCK_TOKENS)
        return words

    def own(self, row: int, n: int) -> list[str]:
        return self._draw(row, 4, n)


def _text(words: _Words, row: int, n: int, hash_ids: tuple[int, ...] | None) -> str:
    """``n`` words (at least 1): blocks of ``hash_ids`` then, past them, the row's own."""
    n = max(n, 1)
    out: list[str] = []
    for hash_id in hash_ids or ():
        if len(out) >= n:
            break
        out += words.block(hash_id)
    if len(out) < n:
        out += words.own(row, n - len(out))
    return " ".join(out[:n])


class TracePrompts(Sequence[Prompt]):
    """The prompt of every trace row (``id`` = the row, 0-based), each built when first asked
    for (or by ``build``) and then kept: a sweep that replays the first tenth of a big trace
    never holds the text of the rest."""

    def __init__(self, trace: ArrivalTrace, dataset: Sequence[Prompt] | None, seed: int) -> None:
        if trace.input_tokens is None:
            assert dataset, "a trace without input lengths needs a dataset"
        self._trace, self._dataset = trace, dataset
        self._order = None if dataset is None else prompt_order(len(dataset), seed)
        self._words = _Words(seed)
        self._built: dict[int, Prompt] = {}

    def __len__(self) -> int:
        return self._trace.n_requests

    @overload
    def __getitem__(self, index: int) -> Prompt: ...

    @overload
    def __getitem__(self, index: slice) -> list[Prompt]: ...

    def __getitem__(self, index: int | slice) -> Prompt | list[Prompt]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= row < len(self):
            raise IndexError(index)
        prompt = self._built.get(row)
        if prompt is None:
            prompt = self._built[row] = self._build(row)
        return prompt

    def build(self, rows: int) -> None:
        """Build the prompts of rows ``0 .. rows - 1`` now (before a sweep hands them to worker
        processes, which would otherwise build them at the start of a level, late)."""
        for row in range(min(rows, len(self))):
            self[row]

    def _build(self, row: int) -> Prompt:
        trace = self._trace
        outputs = trace.output_tokens
        max_tokens = None if outputs is None else max(int(outputs[row]), 1)
        if trace.input_tokens is None:
            assert self._dataset is not None and self._order is not None
            base = self._dataset[int(self._order[row % len(self._dataset)])]
            return Prompt(row, base.messages, max_tokens)
        hashes = trace.hash_ids[row] if trace.hash_ids is not None else None
        text = _text(self._words, row, int(trace.input_tokens[row]), hashes)
        return Prompt(row, (("user", text),), max_tokens)


def trace_prompts(
    trace: ArrivalTrace, dataset: Sequence[Prompt] | None, seed: int
) -> TracePrompts | None:
    """One prompt per trace row (``TracePrompts``), request ``k`` of a level sending row
    ``k % n``; ``None`` when the trace gives no lengths (the dataset is sent as without a
    trace).  ``dataset`` is needed only when the trace has no input lengths: row ``r`` then
    sends the dataset's prompt at ``r`` in its seeded order (``prompt_order``)."""
    if not trace.has_lengths:
        return None
    return TracePrompts(trace, dataset, seed)
