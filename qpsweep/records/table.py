"""``RecordTable``: a run's request records as columns (numpy arrays), in file order.

Summaries and plots of a run with a million requests need a few arithmetic passes over each
field, not a Python object per request; ``RecordTable`` holds exactly what ``RequestRecord``
holds (``from_records`` and ``records`` convert both ways without loss), one array per field:

* int64: ``level``, ``seq``, ``prompt_id``, ``output_tokens``, ``attempts``, ``resent``,
  ``n_chunks``;
  ``status``, ``input_tokens``, ``session``, ``turn``, ``history_tokens``,
  ``reasoning_tokens`` and ``cached_tokens`` with ``NO_INT``
  where the record has ``None``;
* float64 (seconds since the level's start, or req/s for ``level_qps``): ``level_qps``,
  ``scheduled_s``, ``sent_s``, ``done_s``; ``first_token_s``, ``first_done_s``,
  ``first_reasoning_s`` and ``first_visible_s`` with NaN where the record has ``None``;
* ``Labels`` (int32 codes into a tuple of names, ``-1`` for ``None``): ``error_kind``,
  ``error``, ``token_counted_by``, ``first_error_kind``;
* ``chunk_s``: every record's chunk times, record after record (record ``i``'s are
  ``chunk_s[offsets[i]:offsets[i + 1]]``, ``offsets`` = 0 then the cumulative sum of
  ``n_chunks``).

Derived, computed once per table: ``ok``, ``offsets``, ``levels`` (level -> its rows, views
when each level's rows are together), ``itl_ms_sorted``, ``visible_s`` (the first visible
token's time: ``first_visible_s`` where the request streamed reasoning, else
``first_token_s``); ``itl_ms()`` each time asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, fields
from functools import cached_property
from itertools import chain, starmap
from operator import attrgetter
from pathlib import Path
from typing import Any, get_type_hints

import msgspec
import numpy as np
import numpy.typing as npt

from qpsweep.records.record import RequestRecord, record_batches

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
NO_INT = np.iinfo(np.int64).min  # an int column's "None"
INT_FIELDS = (
    "level",
    "seq",
    "prompt_id",
    "status",
    "input_tokens",
    "output_tokens",
    "attempts",
    "resent",
    "session",
    "turn",
    "history_tokens",
    "reasoning_tokens",
    "cached_tokens",
)
FLOAT_FIELDS = (
    "level_qps",
    "scheduled_s",
    "sent_s",
    "done_s",
    "first_token_s",
    "first_done_s",
    "first_reasoning_s",
    "first_visible_s",
)
LABEL_FIELDS = ("error_kind", "error", "token_counted_by", "first_error_kind")


@dataclass(frozen=True)
class Labels:
    """A column of ``str | None``: ``names[codes[i]]``, ``None`` where ``codes[i] == -1``."""

    codes: npt.NDArray[np.int32]
    names: tuple[str, ...]

    @classmethod
    def of(cls, values: Iterable[str | None]) -> Labels:
        """Codes for ``values``, names in order of first appearance."""
        got = values if isinstance(values, list) else list(values)
        index = dict.fromkeys(got)  # the distinct values, in order of first appearance
        index.pop(None, None)
        names = tuple(index)
        if not names:
            return cls(np.full(len(got), -1, dtype=np.int32), ())
        index.update(zip(names, range(len(names)), strict=True))
        index[None] = -1
        return cls(np.fromiter(map(index.__getitem__, got), np.int32, len(got)), names)

    def value(self, i: int) -> str | None:
        """The value of row ``i``."""
        code = int(self.codes[i])
        return None if code < 0 else self.names[code]

    def values(self) -> list[str | None]:
        """Every row's value."""
        names: list[str | None] = [*self.names, None]  # code -1 picks the last
        return [names[c] for c in self.codes.tolist()]

    def equals(self, name: str) -> BoolArray:
        """Rows whose value is ``name``."""
        if name not in self.names:
            return np.zeros(self.codes.size, dtype=bool)
        return np.asarray(self.codes == self.names.index(name))

    def take(self, rows: IntArray | BoolArray) -> Labels:
        """The rows ``rows`` (indices or a mask), same names."""
        return Labels(self.codes[rows], self.names)


def _concat_labels(parts: Sequence[Labels]) -> Labels:
    names: dict[str, int] = {}
    codes = []
    for part in parts:
        remap = np.array([names.setdefault(n, len(names)) for n in part.names] + [-1], np.int32)
        codes.append(remap[part.codes])  # -1 picks the appended -1
    joined = np.concatenate(codes) if codes else np.zeros(0, np.int32)
    return Labels(joined.astype(np.int32), tuple(names))


@dataclass(frozen=True)
class RecordTable:
    """Columns of records; see the module docstring."""

    level: IntArray
    level_qps: FloatArray
    seq: IntArray
    prompt_id: IntArray
    scheduled_s: FloatArray
    sent_s: FloatArray
    done_s: FloatArray
    first_token_s: FloatArray
    status: IntArray
    error_kind: Labels
    error: Labels
    input_tokens: IntArray
    output_tokens: IntArray
    token_counted_by: Labels
    attempts: IntArray
    first_error_kind: Labels
    first_done_s: FloatArray
    resent: IntArray
    session: IntArray
    turn: IntArray
    history_tokens: IntArray
    first_reasoning_s: FloatArray
    first_visible_s: FloatArray
    reasoning_tokens: IntArray
    cached_tokens: IntArray
    n_chunks: IntArray
    chunk_s: FloatArray

    def __len__(self) -> int:
        return int(self.level.size)

    @cached_property
    def ok(self) -> BoolArray:
        """Rows of successful requests (no ``error_kind``)."""
        return np.asarray(self.error_kind.codes < 0)

    @cached_property
    def offsets(self) -> IntArray:
        """``offsets[i]``: where record ``i``'s chunk times start in ``chunk_s``; one more
        element at the end: ``chunk_s.size``."""
        out = np.zeros(self.n_chunks.size + 1, dtype=np.int64)
        np.cumsum(self.n_chunks, out=out[1:])
        return out

    @cached_property
    def levels(self) -> dict[int, RecordTable]:
        """Level index -> its rows (in file order), ascending by level; views of this table
        when each level's rows are together, as in a run's file."""
        levels = self.level
        if levels.size and not (np.diff(levels) >= 0).all():
            return self.take(np.argsort(levels, kind="stable")).levels
        values, starts = np.unique(levels, return_index=True)
        ends = np.append(starts[1:], levels.size)[: starts.size]
        pairs = zip(values.tolist(), starts.tolist(), ends.tolist(), strict=True)
        return {level: self.rows_between(start, end) for level, start, end in pairs}

    @cached_property
    def visible_s(self) -> FloatArray:
        """Each record's first visible (not reasoning) token time: ``first_visible_s`` where
        the stream carried reasoning, else ``first_token_s`` (NaN: none arrived)."""
        reasoned = ~np.isnan(self.first_reasoning_s)
        return np.where(reasoned, self.first_visible_s, self.first_token_s)

    def itl_ms(self) -> FloatArray:
        """The gaps between consecutive chunk times of each successful request with two or
        more, times 1000, one request after the other: ``np.diff`` per record, pooled."""
        if self.chunk_s.size < 2:
            return np.zeros(0)
        starts_gap = np.repeat(self.ok, self.n_chunks)
        ends = self.offsets[1:]
        starts_gap[ends[self.n_chunks > 0] - 1] = False  # a record's last chunk
        gaps = np.diff(self.chunk_s)
        gaps *= 1000.0
        return np.asarray(gaps[starts_gap[:-1]])

    @cached_property
    def itl_ms_sorted(self) -> tuple[FloatArray, float | None]:
        """``(itl_ms() sorted, its mean)``: the mean summed in file order, before the sort
        (in place: a big run's gaps are the largest array of its analysis)."""
        gaps = self.itl_ms()
        mean = float(gaps.mean()) if gaps.size else None
        gaps.sort()
        return gaps, mean

    def rows_between(self, start: int, stop: int) -> RecordTable:
        """Rows ``start`` to ``stop - 1`` (views, no copy)."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        values: dict[str, Any] = {}
        for f in fields(self):
            column = getattr(self, f.name)
            if f.name == "chunk_s":
                values[f.name] = column[lo:hi]
            elif isinstance(column, Labels):
                values[f.name] = Labels(column.codes[start:stop], column.names)
            else:
                values[f.name] = column[start:stop]
        return RecordTable(**values)

    def take(self, rows: IntArray | BoolArray) -> RecordTable:
        """The table of rows ``rows`` (indices, in the order given, or a mask)."""
        idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows, np.int64)
        starts, counts = self.offsets[:-1][idx], self.n_chunks[idx]
        chunk_rows = np.repeat(starts - np.cumsum(counts) + counts, counts)
        chunk_rows += np.arange(chunk_rows.size, dtype=np.int64)
        values: dict[str, Any] = {}
        for f in fields(self):
            column = getattr(self, f.name)
            if f.name == "chunk_s":
                values[f.name] = column[chunk_rows]
            elif isinstance(column, Labels):
                values[f.name] = column.take(idx)
            else:
                values[f.name] = column[idx]
        return RecordTable(**values)

    @classmethod
    def concat(cls, parts: Sequence[RecordTable]) -> RecordTable:
        """The rows of ``parts`` one after the other."""
        if len(parts) <= 1:
            return parts[0] if parts else cls.from_records(())
        values: dict[str, Any] = {}
        for f in fields(cls):
            columns = [getattr(p, f.name) for p in parts]
            if f.name in LABEL_FIELDS:
                values[f.name] = _concat_labels(columns)
            else:
                values[f.name] = np.concatenate(columns)
        return cls(**values)

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord]) -> RecordTable:
        """The table of ``records`` (in their order): of ``RequestRecord`` objects, or of
        any objects with its attributes (the file reader's lighter line type)."""
        rs = records if isinstance(records, list) else list(records)
        n = len(rs)

        def column(name: str) -> list[Any]:
            return list(map(attrgetter(name), rs))

        values: dict[str, Any] = {}
        for name in (*INT_FIELDS, *FLOAT_FIELDS):
            dtype = np.int64 if name in INT_FIELDS else np.float64
            try:  # the common case: no None, no int beyond 64 bits
                values[name] = np.fromiter(map(attrgetter(name), rs), dtype, n)
            except (TypeError, OverflowError):
                got = column(name)
                if got.count(None) == n:  # a plain run's session columns: quick
                    values[name] = np.full(n, NO_INT if dtype is np.int64 else np.nan, dtype)
                elif dtype is np.float64:  # numpy reads None as NaN
                    values[name] = np.array(got, dtype=dtype).reshape(n)
                else:
                    values[name] = np.array([NO_INT if v is None else v for v in got], dtype)
        values |= {name: Labels.of(column(name)) for name in LABEL_FIELDS}
        chunks = column("chunk_s")
        values["n_chunks"] = np.fromiter(map(len, chunks), np.int64, n)
        flat = chain.from_iterable(chunks)
        values["chunk_s"] = np.fromiter(flat, np.float64, int(values["n_chunks"].sum()))
        return cls(**values)

    def records(self) -> list[RequestRecord]:
        """The records again (``NO_INT`` and NaN back to ``None``), in table order."""

        def ints(name: str) -> list[int | None]:
            return [None if v == NO_INT else v for v in getattr(self, name).tolist()]

        def floats(name: str) -> list[float | None]:
            return [None if math.isnan(v) else v for v in getattr(self, name).tolist()]

        columns: dict[str, list[Any]] = {name: ints(name) for name in INT_FIELDS}
        columns |= {name: floats(name) for name in FLOAT_FIELDS}
        columns |= {name: getattr(self, name).values() for name in LABEL_FIELDS}
        flat, counts = self.chunk_s.tolist(), self.n_chunks.tolist()
        ends = np.cumsum(self.n_chunks).tolist()
        columns["chunk_s"] = [tuple(flat[e - n : e]) for e, n in zip(ends, counts, strict=True)]
        ordered = [columns[f.name] for f in fields(RequestRecord)]
        return list(starmap(RequestRecord, zip(*ordered, strict=True)))


def _line_type() -> type:
    """``RequestRecord``'s fields, types and defaults as a ``msgspec.Struct`` that the garbage
    collector does not track: a block of lines decodes into it in about half the time it
    takes into the dataclass, and ``from_records`` reads it the same way."""
    hints = get_type_hints(RequestRecord)
    spec: list[Any] = []
    for f in fields(RequestRecord):
        default = f.default if f.default_factory is MISSING else f.default_factory()
        spec.append(
            (f.name, hints[f.name]) if default is MISSING else (f.name, hints[f.name], default)
        )
    return msgspec.defstruct("RecordLine", spec, kw_only=True, gc=False)


_LINES: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_line_type())


def read_table(path: Path) -> RecordTable:
    """The records of a ``requests.jsonl`` file as a table: what ``read_records(path)``
    reads, in the same order, failing the same way; a block of lines at a time.  A server's
    count that no int64 holds (``status``, ``input_tokens``, ``output_tokens``: a file
    written before the client refused them) makes that request a ``protocol`` failure
    quoting the number, as the client records one now."""
    return RecordTable.concat([_table(batch) for batch in record_batches(path, _LINES)])


_SERVER_INTS = ("status", "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")
_INT64 = range(-(2**63), 2**63)


def _table(batch: list[Any]) -> RecordTable:
    try:
        return RecordTable.from_records(batch)
    except OverflowError:
        return RecordTable.from_records([_fit(r) for r in batch])


def _fit(line: Any) -> RequestRecord:
    """``line`` as a ``RequestRecord`` whose server counts fit 64 bits."""
    values = {f.name: getattr(line, f.name) for f in fields(RequestRecord)}
    huge = [
        (k, values[k]) for k in _SERVER_INTS if values[k] is not None and values[k] not in _INT64
    ]
    if huge:
        error = ", ".join(f"{k} {v} beyond 64 bits" for k, v in huge)
        values |= {k: 0 if k == "output_tokens" else None for k, _ in huge}
        values |= {"error_kind": "protocol", "error": error}
    return RequestRecord(**values)
