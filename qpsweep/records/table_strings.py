"""The JSON string values of ``requests.jsonl`` lines, read for ``qpsweep.records.table_reader``.

``read_strings(block, at, content, want, short)`` reads the string that opens with a quote at
``at`` in each row of ``want`` (``content``: the 16 bytes after the quote, as two words).  Its
value is decoded once per distinct text between the quotes: that text itself when it has no
backslash and no control byte, else ``json.loads`` of the quoted string, which also rejects a
bad escape or a raw control byte (the row is then not ``good``).  With ``short`` (error kinds,
token sources), strings of at most 15 bytes are found and grouped with numpy, 8 bytes at a
time (``qpsweep.records.swar``): their
bytes zero-padded to two words, grouped by a hash of the words
and checked word for word; any other string is found with ``bytearray.find`` in Python,
skipping quotes escaped by an odd run of backslashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qpsweep.records import swar
from qpsweep.records.swar import Words
from qpsweep.records.table import BoolArray, IntArray, Labels

if TYPE_CHECKING:
    from qpsweep.records.table_reader import Block

_MIX = np.uint64(0x9E3779B97F4A7C15)
_QUOTE, _BACKSLASH = 34, 92
_SPACES = np.uint64(0x2020202020202020)
_BAD = -2  # the code of a string that is not valid JSON


@dataclass(frozen=True)
class Strings:
    """Per row: ``codes`` into ``names`` (-1: no string), ``end`` after the closing quote,
    ``good``: a valid string was read."""

    codes: IntArray
    names: list[str]
    end: IntArray
    good: BoolArray

    @classmethod
    def nulls(cls, n: int) -> Strings:
        """``n`` rows without a string."""
        zeros = np.zeros(n, dtype=np.int64)
        return cls(zeros - 1, [], zeros, np.zeros(n, dtype=bool))

    def put(self, rows: IntArray, other: Strings) -> Strings:
        """These strings with rows ``rows`` replaced by ``other``'s."""
        names = list(self.names)
        index = {name: i for i, name in enumerate(names)}
        remap = np.array([index.setdefault(n, len(index)) for n in other.names] + [-1])
        names = list(index)
        codes = self.codes.copy()
        codes[rows] = remap[other.codes]
        return Strings(codes, names, self.end, self.good)

    def labels(self) -> Labels:
        """The rows as a ``Labels`` column."""
        return Labels(self.codes.astype(np.int32), tuple(self.names))


def _decode(raw: bytes) -> str | None:
    """The string whose JSON text between the quotes is ``raw``; ``None`` if invalid."""
    if _BACKSLASH not in raw and (not raw or min(raw) >= 32):
        return raw.decode("ascii")
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _closing_quote(data: bytearray, at: int, stop: int) -> int:
    """The quote closing the string opened at ``at``, before ``stop``; -1 when none."""
    q = at
    while True:
        q = data.find(b'"', q + 1, stop)
        if q < 0:
            return -1
        b = q
        while data[b - 1] == _BACKSLASH:
            b -= 1
        if (q - b) % 2 == 0:
            return q


class _Names:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.seen: dict[bytes, int] = {}

    def code(self, raw: bytes) -> int:
        code = self.seen.get(raw)
        if code is None:
            value = _decode(raw)
            code = _BAD if value is None else self.index.setdefault(value, len(self.index))
            self.seen[raw] = code
        return code


def _short(
    block: Block,
    at: IntArray,
    content: tuple[Words, Words],
    rows: IntArray,
    codes: IntArray,
    end: IntArray,
    names: _Names,
) -> IntArray:
    """Read the strings of ``rows`` that are short and plain; returns the other rows."""
    y0, y1 = content[0][rows], content[1][rows]
    k0, k1 = swar.find(y0, _QUOTE), swar.find(y1, _QUOTE)
    n = np.where(k0 < 8, k0, 8 + k1)  # 16: no quote in 16 bytes
    b0, b1 = swar.find(y0, _BACKSLASH), swar.find(y1, _BACKSLASH)
    n0, n1 = np.minimum(n, 8), np.clip(n - 8, 0, 8)
    low = y0 & swar.MASKS[n0], y1 & swar.MASKS[n1]
    plain = (n < 16) & (np.where(b0 < 8, b0, 8 + b1) >= n)
    for word, m in zip(low, (n0, n1), strict=True):
        padded = word | (_SPACES & ~swar.MASKS[m])  # below 0x20 only inside the string
        control = (padded - np.uint64(swar.ONES * 32)) & ~padded & np.uint64(swar.HIGHS)
        plain &= control == 0
    key = low[0] * _MIX ^ low[1]
    keep = np.flatnonzero(plain)
    _, first, inverse = np.unique(key[keep], return_index=True, return_inverse=True)
    if not all((w[keep] == w[keep][first][inverse]).all() for w in low):
        return rows  # a hash collision: read them all one by one
    data, starts = block.data, at[rows[keep[first]]] + 1
    found = [
        names.code(bytes(data[s : s + m]))
        for s, m in zip(starts.tolist(), n[keep[first]].tolist(), strict=True)
    ]
    codes[rows[keep]] = np.array(found, dtype=np.int64)[inverse]
    end[rows[keep]] = at[rows[keep]] + 2 + n[keep]  # after the closing quote
    return rows[~plain]


def read_strings(
    block: Block, at: IntArray, content: tuple[Words, Words], want: BoolArray, short: bool
) -> Strings:
    """The strings opening at ``at`` in the rows ``want``; ``content``: the 16 bytes after
    each ``at``, as two words; see the module docstring."""
    codes = np.full(at.size, -1, dtype=np.int64)
    end = np.zeros(at.size, dtype=np.int64)
    names = _Names()
    rows = np.flatnonzero(want)
    rows = rows[block.a[np.minimum(at[rows], block.size)] == _QUOTE]
    if short and rows.size:
        rows = _short(block, at, content, rows, codes, end, names)
    line_end = block.ends[np.searchsorted(block.starts, at[rows], "right") - 1]
    for row, s, stop in zip(rows.tolist(), at[rows].tolist(), line_end.tolist(), strict=True):
        q = _closing_quote(block.data, s, stop)
        codes[row] = _BAD if q < 0 else names.code(bytes(block.data[s + 1 : q]))
        end[row] = q + 1
    good = want & (codes >= 0)
    return Strings(np.where(good, codes, -1), list(names.index), end, good)
