"""Eight bytes at a time: ASCII text in a byte buffer read with numpy (SWAR).

``windows(a, width)`` views a uint8 array as the ``width``-byte string starting at each byte
offset; ``lanes(windows[at])`` turns the gathered windows into rows of little-endian uint64
words (``[:, 0]`` holds bytes ``at..at + 7``, the first in its lowest byte).  One gather reads a
whole window (numpy copies a 48-byte window about as fast as one 8-byte word);
``word_at(rows, k)`` takes the 8 bytes at offset ``k`` of each row, ``shifted(x, y, k)`` the 8
bytes at offset ``k`` (0-8, per row) of the 16 bytes ``x`` then ``y``.  The functions below
take words (arrays of them) and look only at ASCII bytes (below 0x80), for which these classic
tricks are exact:

* ``find(x, byte)``: index of the first byte of ``x`` equal to ``byte``, 8 when none: with
  ``t = x ^ byte * 0x01..01``, ``(t - 0x01..01) & ~t & 0x80..80`` has its lowest high bit in the
  first zero byte of ``t``; isolated (``m & -m``), shifted to ``1 << 8k`` and multiplied by
  ``0x0001020304050607``, its top byte is ``k``;
* ``digits_ok(x, n)``: the ``n`` low bytes are ``0``-``9``: each has high nibble 3, and still
  has after adding 6 (0x3A-0x3F reach 0x40);
* ``value(x, n)``: the integer written by the ``n`` (at most 8) low bytes, first byte most
  significant: the digits are moved to the top (zeros in front act as leading zeros) and
  combined pairwise in three multiplications (simdjson's eight-digit parse).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Words = npt.NDArray[np.uint64]
ONES = 0x0101010101010101
HIGHS = 0x8080808080808080
MASKS = np.array([(1 << 8 * k) - 1 for k in range(9)], dtype=np.uint64)  # n low bytes
_POSITION = 0x0001020304050607


def windows(a: npt.NDArray[np.uint8], width: int) -> np.ndarray:
    """The ``width``-byte window at every offset of ``a`` (a read-only view)."""
    view: np.ndarray = np.ndarray((a.size - width + 1,), dtype=f"V{width}", buffer=a, strides=(1,))
    return view


def lanes(gathered: np.ndarray) -> Words:
    """Gathered windows as rows of little-endian uint64 words."""
    rows: Words = gathered.view("<u8").reshape(gathered.size, gathered.dtype.itemsize // 8)
    return rows


def word_at(rows: Words, k: int) -> Words:
    """The 8 bytes at byte offset ``k`` of each row of words."""
    q, r = divmod(k, 8)
    word: Words = rows[:, q]
    if r:
        word = (word >> np.uint64(8 * r)) | (rows[:, q + 1] << np.uint64(64 - 8 * r))
    return word


def shifted(x: Words, y: Words, k: npt.NDArray[np.int64]) -> Words:
    """The 8 bytes at offset ``k`` (0-8) of the 16 bytes ``x`` then ``y``."""
    bits = (8 * k).astype(np.uint64)
    word: Words = (x >> bits) | (y << (np.uint64(64) - bits))
    return word


def pack(text: bytes) -> int:
    """``text`` (at most 8 bytes) as the word that holds it in its low bytes."""
    return int.from_bytes(text, "little")


def find(x: Words, byte: int) -> npt.NDArray[np.int64]:
    """Index (0-7) of the first byte of each word equal to ``byte``; 8 where none is."""
    t = x ^ np.uint64(byte * ONES)
    m = (t - np.uint64(ONES)) & ~t & np.uint64(HIGHS)
    k = (((m & (~m + np.uint64(1))) >> np.uint64(7)) * np.uint64(_POSITION)) >> np.uint64(56)
    return np.where(m == 0, 8, k.astype(np.int64))


Count = npt.NDArray[np.int64] | int  # per word, or one for all


def digits_ok(x: Words, n: Count) -> npt.NDArray[np.bool_]:
    """Whether the ``n`` (0-8) low bytes of each word are all ASCII digits."""
    mask = MASKS[n]
    y = x & mask
    pattern = np.uint64(0x3030303030303030) & mask
    high = np.uint64(0xF0F0F0F0F0F0F0F0)
    return np.asarray(
        ((y & high) == pattern) & (((y + (np.uint64(0x0606060606060606) & mask)) & high) == pattern)
    )


def value(x: Words, n: Count) -> npt.NDArray[np.int64]:
    """The integer written by the ``n`` (0-8) low bytes of each word (digits, see
    ``digits_ok``); 0 where ``n`` is 0."""
    up = np.asarray(8 * (8 - np.asarray(n)), dtype=np.uint64)  # bits to move the digits up
    d = (x & MASKS[n] & np.uint64(0x0F0F0F0F0F0F0F0F)) << up
    d = ((d * np.uint64(2561)) >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF)
    d = ((d * np.uint64(6553601)) >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)
    out: npt.NDArray[np.int64] = ((d * np.uint64(42949672960001)) >> np.uint64(32)).astype(np.int64)
    return out
