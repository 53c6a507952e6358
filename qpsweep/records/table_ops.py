"""Groupings and orderings of table columns in a few numpy passes, each giving exactly what
the same loop over ``RequestRecord`` objects in file order gives:

* ``first_counts(*keys)``: the distinct key tuples of the rows with how many rows have each
  and the first row that has it, in order of first appearance (``collections.Counter``'s
  insertion order);
* ``most_common(groups)``: ``first_counts`` groups merged by name and ordered as
  ``Counter.most_common`` orders them: by count, descending, ties in order of first
  appearance;
* ``largest(values, k)``: the rows of the ``k`` largest values, largest first, ties in row
  order (the first ``k`` of a stable sort in reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qpsweep.records.table import FloatArray


def first_counts(*keys: np.ndarray) -> list[tuple[tuple[Any, ...], int, int]]:
    """``(key values, count, first row)`` of each distinct key tuple, in order of first row."""
    n = keys[0].size if keys else 0
    if n == 0:
        return []
    order = np.lexsort(keys[::-1])  # stable: each group starts with its first row
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key in keys:
        sorted_key = key[order]
        new[1:] |= sorted_key[1:] != sorted_key[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    firsts = order[starts]
    by_first = np.argsort(firsts)
    columns = [key[firsts[by_first]].tolist() for key in keys]
    return [
        (tuple(c[i] for c in columns), int(counts[by_first[i]]), int(firsts[by_first[i]]))
        for i in range(starts.size)
    ]


def most_common(
    groups: Sequence[tuple[tuple[Any, ...], int, int]], name: Callable[[tuple[Any, ...]], Any]
) -> tuple[tuple[Any, int], ...]:
    """``(name, count)`` pairs as ``Counter(name(key) for each row).most_common()`` gives
    them, from ``first_counts`` groups."""
    merged: dict[Any, list[int]] = {}
    for key, count, first in groups:
        entry = merged.setdefault(name(key), [0, first])
        entry[0] += count
        entry[1] = min(entry[1], first)
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return tuple((label, count) for label, (count, _) in ranked)


def largest(values: FloatArray, k: int) -> list[int]:
    """Rows of the ``k`` largest ``values``; see the module docstring."""
    if values.size > k:
        cut = np.partition(values, values.size - k)[values.size - k]
        candidates = np.flatnonzero(values >= cut)
    else:
        candidates = np.arange(values.size)
    order = candidates[np.argsort(-values[candidates], kind="stable")]
    return [int(i) for i in order[:k]]
