"""``read_table``: ``requests.jsonl`` straight into a ``RecordTable``, without ``json.loads``.

Contract: ``read_table(path)`` holds the same records, in the same order, as
``read_records(path)``, and fails the same way: a last line cut short by a killed process is
skipped, any other bad line raises ``ValueError`` naming its line number.  Only the speed
differs.

How: a line exactly as ``RequestRecord.to_json`` writes it (its keys in its order, no spaces,
the three retry keys or none, ``chunk_s`` last) is parsed with numpy, a block of lines at a
time (``BLOCK_BYTES``, read into one reused buffer), 8 bytes per operation
(``qpsweep.records.swar``):
each field's key and value come from one 48-byte read at the line's cursor, the key compared
byte for byte; the chunk lists are read by ``qpsweep.records.chunk_lists``.  Numbers take this route
only in the forms ``to_json`` writes: integers ``0`` or ``[1-9][0-9]*`` (at most 15 digits),
times ``I.F`` (``I`` at most 7 digits without a leading zero, ``F`` 1 to 7 digits) and chunk
times ``%.6f`` (``I`` at most 8 digits).  The value of ``I.F`` is the integer of its digits
divided by ``10 ** len(F)``: both are exact in float64, so IEEE division rounds the quotient
exactly as ``float(text)`` does.  Strings are decoded once per distinct string
(``qpsweep.records.table_strings``).  Every other line (another layout, an exponent, a sign,
whitespace, a cut-short or broken line) goes through ``json.loads`` +
``RequestRecord.from_dict`` as in ``read_records``.  A file with a carriage return or a
non-ASCII byte anywhere is read by ``read_records`` itself (its text mode also ends lines at
``\\r``; ``to_json`` writes ASCII only).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path
from typing import Any

import numpy as np

from qpsweep.records import swar
from qpsweep.records.chunk_lists import read_lists
from qpsweep.records.record import RequestRecord, read_records
from qpsweep.records.table import NO_INT, BoolArray, IntArray, RecordTable
from qpsweep.records.table_strings import Strings, read_strings

BLOCK_BYTES = 4 * 2**20  # small enough for malloc to reuse every block's temporaries
_WINDOW = 48  # bytes read at a field's key: the key, then at least 16 of its value
_PAD = 64  # zero bytes after a block: windows near its end stay inside
_POW10 = 10 ** np.arange(9, dtype=np.int64)
_NULL = swar.pack(b"null,")
_COMMA, _DOT, _ZERO = 44, 46, 48
HEAD = (
    ("level", "int"),
    ("level_qps", "float"),
    ("seq", "int"),
    ("prompt_id", "int"),
    ("scheduled_s", "float"),
    ("sent_s", "float"),
    ("first_token_s", "float?"),
    ("done_s", "float"),
    ("status", "int?"),
    ("error_kind", "label?"),
    ("error", "text?"),
    ("input_tokens", "int?"),
    ("output_tokens", "int"),
    ("token_counted_by", "label?"),
)
RETRY = (("attempts", "int"), ("first_error_kind", "label?"), ("first_done_s", "float?"))
_CHUNKS_KEY = b',"chunk_s":['


class Block:
    """Whole lines in ``data[:size]`` (a reused buffer, zeros after them), with the positions
    of their newlines."""

    def __init__(self, data: bytearray, size: int) -> None:
        self.data, self.size = data, size
        data[size : size + _PAD] = bytes(_PAD)
        self.a = np.frombuffer(data, np.uint8)
        self.wide = swar.windows(self.a, _WINDOW)
        self.narrow = swar.windows(self.a, 16)
        body = self.a[:size]
        nl = np.flatnonzero(body == 10)
        self.starts = np.concatenate([[0], nl + 1]).astype(np.int64)
        self.ends = np.concatenate([nl, [size]]).astype(np.int64)

    def rows(self, at: IntArray) -> swar.Words:
        """The ``_WINDOW`` bytes at each of ``at`` as rows of words."""
        return swar.lanes(self.wide[np.minimum(at, self.size)])


def _key_ok(rows: swar.Words, key: bytes) -> BoolArray:
    """Rows that start with ``key``."""
    ok = np.ones(rows.shape[0], dtype=bool)
    for off in range(0, len(key), 8):
        part = key[off : off + 8]
        word = swar.word_at(rows, off) & swar.MASKS[len(part)]
        ok &= word == np.uint64(swar.pack(part))
    return ok


def _blocks(file: BufferedReader, limit: int) -> Iterator[tuple[bytearray, int, bool]]:
    """``(buffer, size, last)``: the next ``limit`` bytes of the file, whole lines, a block at
    a time in ``buffer[:size]`` (one buffer, refilled: done with a block before asking for
    the next); ``last``: no more bytes, where the final line may lack its newline."""
    cap, kept = BLOCK_BYTES, 0
    buffer = bytearray(cap + _PAD)
    while True:
        end = kept
        with memoryview(buffer) as view:
            while end < cap and limit and (got := file.readinto(view[end : min(cap, end + limit)])):
                end, limit = end + got, limit - got
        last = end < cap
        cut = end if last else buffer.rfind(b"\n", 0, end) + 1
        if cut == 0 and not last:  # one line longer than the buffer
            cap *= 2
            buffer = buffer[:end] + bytearray(cap + _PAD - end)
            kept = end
            continue
        rest = bytes(buffer[cut:end])  # the start of the next line: the block zeroes it
        yield buffer, cut, last
        if last:
            return
        buffer[: len(rest)] = rest
        kept = len(rest)


def _int(x: swar.Words, y: swar.Words, ok: BoolArray) -> tuple[IntArray, IntArray]:
    """``(value, length)`` of the integers written in the 16 bytes ``x`` then ``y`` up to a
    comma; clears ``ok`` for any other text."""
    n = swar.find(x, _COMMA)
    ok &= (n >= 1) & swar.digits_ok(x, n) & ((n == 1) | ((x & np.uint64(0xFF)) != _ZERO))
    value = swar.value(x, n)
    long = np.flatnonzero(ok & (n == 8))
    if long.size:  # 8 to 15 digits
        m = swar.find(y[long], _COMMA)
        ok[long] &= (m < 8) & swar.digits_ok(y[long], m)
        m = np.minimum(m, 7)
        value[long] = value[long] * _POW10[m] + swar.value(y[long], m)
        n[long] += m
    return value, n


def _float(x: swar.Words, y: swar.Words, ok: BoolArray) -> tuple[Any, IntArray]:
    """``(value, length)`` of the ``I.F`` numbers written in the 16 bytes ``x`` then ``y``;
    clears ``ok`` for any other text."""
    i = swar.find(x, _DOT)
    ok &= (i >= 1) & (i <= 7) & swar.digits_ok(x, i)
    ok &= (i == 1) | ((x & np.uint64(0xFF)) != _ZERO)
    fraction = swar.shifted(x, y, i + 1)
    f = swar.find(fraction, _COMMA)
    ok &= (f >= 1) & (f <= 7) & swar.digits_ok(fraction, f)
    f = np.where(ok, f, 0)
    digits = swar.value(x, i) * _POW10[f] + swar.value(fraction, f)
    return digits / _POW10[f].astype(np.float64), i + 1 + f


def _fields(
    block: Block, spec: tuple[tuple[str, str], ...], at: IntArray, ok: BoolArray, first: bool
) -> tuple[dict[str, Any], IntArray]:
    """Values of the ``spec`` fields of the lines whose cursor is ``at``, and the cursor
    after them; clears ``ok`` where a line is not as ``to_json`` writes it."""
    out: dict[str, Any] = {}
    for i, (name, kind) in enumerate(spec):
        key = ("{" if first and i == 0 else ",").encode() + json.dumps(name).encode() + b":"
        m = len(key)
        rows = block.rows(at)
        ok &= _key_ok(rows, key)
        x, y = swar.word_at(rows, m), swar.word_at(rows, m + 8)
        null = np.zeros(at.size, dtype=bool)
        if kind.endswith("?"):
            null = (x & swar.MASKS[5]) == np.uint64(_NULL)
        if kind in ("label?", "text?"):
            content = (swar.word_at(rows, m + 1), swar.word_at(rows, m + 9))
            strings = read_strings(block, at + m, content, ok & ~null, kind == "label?")
            ok &= null | strings.good
            out[name] = strings
            length = np.where(null, 4, strings.end - at - m)
        else:
            number_ok = ok & ~null
            read = _int if kind.startswith("int") else _float
            value, length = read(x, y, number_ok)
            ok &= null | number_ok
            length = np.where(null, 4, length)
            out[name] = np.where(null, NO_INT if kind.startswith("int") else np.nan, value)
        at = at + m + length
    return out, at


def _fast(block: Block, lines: IntArray) -> tuple[RecordTable, BoolArray]:
    """The table of those of ``lines`` (indices into the block's lines) written as
    ``to_json`` writes, and which ones these are."""
    ok = np.ones(lines.size, dtype=bool)
    columns, at = _fields(block, HEAD, block.starts[lines], ok, first=True)
    columns["attempts"] = np.ones(lines.size, dtype=np.int64)
    columns["first_done_s"] = np.full(lines.size, np.nan)
    kinds = Strings.nulls(lines.size)
    retried = np.flatnonzero(ok & _key_ok(block.rows(at), b',"attempts":'))
    if retried.size:
        retried_ok = ok[retried]
        more, at[retried] = _fields(block, RETRY, at[retried], retried_ok, first=False)
        ok[retried] = retried_ok
        columns["attempts"][retried] = more["attempts"]
        columns["first_done_s"][retried] = more["first_done_s"]
        kinds = kinds.put(retried, more["first_error_kind"])
    columns["first_error_kind"] = kinds
    ok &= _key_ok(block.rows(at), _CHUNKS_KEY)
    stop = block.ends[lines] - 2  # the closing bracket
    ok &= _key_ok(block.rows(np.where(ok, stop, 0)), b"]}") & (stop >= at + len(_CHUNKS_KEY))
    start = np.where(ok, at + len(_CHUNKS_KEY), 0)
    columns["chunk_s"], columns["n_chunks"] = read_lists(block, start, np.where(ok, stop, 0), ok)
    for name in ("error_kind", "error", "token_counted_by", "first_error_kind"):
        columns[name] = columns[name].labels()
    table = RecordTable(**columns)
    return (table if ok.all() else table.take(ok)), ok


def _slow(path: Path, block: Block, lines: IntArray, first: int, last: int) -> list[Any]:
    """``(line index, record)`` of ``lines`` parsed as ``read_records`` does: blank lines
    skipped, ``ValueError`` for a bad one unless it is the file's last line, number ``last``
    (``first`` is the number of the block's first line)."""
    out = []
    for i in lines.tolist():
        number = first + i
        line = block.data[block.starts[i] : block.ends[i]].decode("ascii")
        if not line.strip():
            continue
        try:
            out.append((i, RequestRecord.from_dict(json.loads(line))))
        except (ValueError, KeyError, TypeError) as err:
            if number == last:  # unterminated last line: a write cut short
                break
            raise ValueError(f"{path}: line {number}: not a request record ({err})") from None
    return out


def _read_block(path: Path, block: Block, first: int, last: int) -> RecordTable:
    """The records of one block whose first line has number ``first`` (``last``: the number
    of the file's last line if it is in this block, else -1)."""
    lines = np.flatnonzero(block.ends > block.starts)
    table, ok = _fast(block, lines)
    if ok.all():
        return table
    parsed = _slow(path, block, lines[~ok], first, last)
    if not parsed:
        return table
    where = np.concatenate([lines[ok], [i for i, _ in parsed]])
    both = RecordTable.concat([table, RecordTable.from_records(r for _, r in parsed)])
    return both.take(np.argsort(where, kind="stable"))


def read_table(path: Path) -> RecordTable:
    """The records of a ``requests.jsonl`` file as a table; see the module docstring."""
    parts, first = [], 1
    with path.open("rb") as file:
        for buffer, size, last in _blocks(file, os.fstat(file.fileno()).st_size):
            if buffer.find(b"\r", 0, size) >= 0 or not buffer.isascii():
                return RecordTable.from_records(read_records(path))
            block = Block(buffer, size)
            n_lines = block.starts.size  # the last one empty after a final newline
            parts.append(_read_block(path, block, first, first + n_lines - 1 if last else -1))
            first += n_lines - 1
    return RecordTable.concat(parts)
