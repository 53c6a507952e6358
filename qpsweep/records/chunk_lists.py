"""The ``chunk_s`` lists of ``requests.jsonl`` lines, read for ``qpsweep.records.table_reader``.

``read_lists(block, start, stop, ok)`` reads, for each line, the list of chunk times between
``start`` and ``stop`` (the closing bracket) as ``RequestRecord.to_json`` writes them: ``%.6f``
numbers, commas between.  First where each number ends (``_number_ends``): a list whose numbers
all have the width of its first (nearly all lists) by arithmetic, its commas then checked;
the others at the commas found in them.  Then each number (``_fixed``) from the 16 bytes
before its end, a group of equal widths at a time: ``d.FFFFFF`` in the last 8 (the dot made a
zero: 8 digits, ``d * 10**7 + F``), the integer's other digits at the top of the first 8.
Its value is the integer of its digits divided by ``10**6``, as ``float(text)`` rounds it
(both exact in float64: at most 8 integer digits).  A line with anything else there loses
its ``ok``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qpsweep.records import swar
from qpsweep.records.table import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:
    from qpsweep.records.table_reader import Block

_COMMA, _DOT, _ZERO = 44, 46, 48


def _steps(start: IntArray, width: IntArray, n: IntArray) -> IntArray:
    """The ends of ``n[i]`` numbers of width ``width[i]`` from ``start[i]``, one comma apart,
    list after list (one cumulative sum)."""
    step = np.repeat(width + 1, n)
    first = start + width
    reached = first + (n - 1) * (width + 1)  # the cumulative sum at each list's last number
    step[np.cumsum(n) - n] = first - np.append(0, reached[:-1])
    return np.cumsum(step)


def _number_ends(block: Block, start: IntArray, stop: IntArray) -> tuple[IntArray, IntArray]:
    """``(ends, counts)``: where each number of the comma-separated lists in ``[start, stop)``
    ends (its comma, or ``stop``), list after list, and how many each list has.  A list whose
    numbers all have the width of its first (the usual case) is cut by arithmetic, its commas
    checked; the others at the commas found in them."""
    span = stop - start
    words = swar.lanes(block.narrow[start])
    first, second = swar.find(words[:, 0], _COMMA), swar.find(words[:, 1], _COMMA)
    width = np.minimum(np.where(first < 8, first, 8 + second), span)  # 16: none in 16 bytes
    uniform = (span > 0) & (width > 0) & ((span + 1) % (width + 1) == 0)
    counts = np.where(uniform, (span + 1) // (width + 1), 0)
    lists = np.flatnonzero(counts)
    ends = _steps(start[lists], width[lists], counts[lists])
    line = np.repeat(lists, counts[lists])
    uniform[line[(block.a[ends] != _COMMA) & (ends != stop[line])]] = False
    odd = np.flatnonzero((span > 0) & ~uniform)
    if odd.size == 0:
        return ends, counts
    ends = ends[uniform[line]]
    at = np.repeat(start[odd] - np.cumsum(span[odd]) + span[odd], span[odd])
    at += np.arange(at.size)
    commas = at[block.a[at] == _COMMA]
    counts[odd] = np.searchsorted(commas, stop[odd]) - np.searchsorted(commas, start[odd]) + 1
    merged = np.empty(int(counts.sum()), dtype=np.int64)
    in_odd = np.repeat(~uniform, counts)
    merged[~in_odd] = ends
    merged[in_odd] = np.insert(commas, np.cumsum(counts[odd] - 1), stop[odd])
    return merged, counts


def _fixed(block: Block, ends: IntArray, more: int) -> tuple[FloatArray, BoolArray]:
    """``(values, good)`` of the ``%.6f`` numbers with ``more + 1`` integer digits that end
    at ``ends``, read from the 16 bytes before each end: ``d.FFFFFF`` in the last 8 (the dot
    made a zero, then 8 digits: ``d * 10**7 + F``), the other integer digits at the top of the
    first 8."""
    rows = swar.lanes(block.narrow[np.maximum(ends - 16, 0)])
    last = rows[:, 1]
    good = ((last >> np.uint64(8)) & np.uint64(0xFF)) == _DOT
    last = last + np.uint64(2 << 8)
    good &= swar.digits_ok(last, 8)
    units = (last & np.uint64(0xFF)).astype(np.int64) - _ZERO
    fraction = swar.value(last, 8) - units * 10_000_000
    whole = units
    if more:
        head = rows[:, 0] >> np.uint64(8 * (8 - more))
        good &= swar.digits_ok(head, more) & ((head & np.uint64(0xFF)) != _ZERO)
        whole = swar.value(head, more) * 10 + units
    return (whole * 1_000_000 + fraction) / 1e6, good


def read_lists(block: Block, start: IntArray, stop: IntArray, ok: BoolArray) -> Any:
    """``(values, counts)`` of the ``%.6f`` lists in ``[start, stop)`` of each line (commas
    between the numbers); clears ``ok`` of the lines with anything else there."""
    ends, counts = _number_ends(block, start, stop)
    begins = np.empty_like(ends)
    begins[1:] = ends[:-1] + 1
    has = counts > 0
    begins[(np.cumsum(counts) - counts)[has]] = start[has]
    more = ends - begins - 8  # integer digits before the last one: 0 to 7
    values = np.empty(ends.size)
    good = np.zeros(ends.size, dtype=bool)
    seen = np.bincount(np.clip(more + 1, 0, 9), minlength=10)  # 0: too short, 9: too long
    for k in np.flatnonzero(seen[1:9]).tolist():  # usually one or two
        rows = slice(None) if seen[k + 1] == ends.size else np.flatnonzero(more == k)
        values[rows], good[rows] = _fixed(block, ends[rows], k)
    ok[np.repeat(np.arange(start.size), counts)[~good]] = False
    return values, counts
