"""``Percentiles``: the summary of one distribution (percentiles, mean, max, count).

Percentiles are numpy's default (linear interpolation between the two nearest ranks) over
every sample; ``to_dict`` names them ``p50``, ``p99.9``... (``percentile_key``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def percentile_key(p: float) -> str:
    """50.0 -> "p50", 99.9 -> "p99.9"."""
    return f"p{p:g}"


@dataclass(frozen=True)
class Percentiles:
    """Distribution summary; all ``None`` when there are no samples."""

    n: int
    mean: float | None
    max: float | None
    values: tuple[tuple[float, float | None], ...]

    @classmethod
    def of(
        cls,
        samples: Sequence[float] | np.ndarray,
        ps: Iterable[float],
        ordered: np.ndarray | None = None,
        scratch: bool = False,
    ) -> Percentiles:
        """Linear-interpolated percentiles (numpy's default method) of ``samples``; the mean
        is summed in the order of ``samples``.  ``ordered``: the same samples sorted, when at
        hand (percentiles and max come from it, faster, the same values).  ``scratch``: the
        caller has no further use for ``samples`` (an array): numpy may then reorder it in
        place instead of working on a copy."""
        arr = np.asarray(samples, dtype=float)
        ps = tuple(ps)
        if arr.size == 0:
            return cls(0, None, None, tuple((p, None) for p in ps))
        mean = float(arr.mean())  # before any reordering
        if ordered is None:
            top = float(arr.max())
            values = np.percentile(arr, ps, overwrite_input=scratch and arr is samples)
        else:
            top = float(ordered[-1])
            values = np.percentile(ordered, ps)
        pairs = tuple((p, float(v)) for p, v in zip(ps, values, strict=True))
        return cls(int(arr.size), mean, top, pairs)

    def get(self, p: float) -> float | None:
        """The value of percentile ``p`` (``None`` without samples)."""
        return dict(self.values).get(p)

    def to_dict(self, digits: int = 6) -> dict[str, float | int | None]:
        """``{"p50": .., "p90": .., "mean": .., "max": .., "n": ..}`` rounded to ``digits``."""

        def rnd(v: float | None) -> float | None:
            return None if v is None else round(v, digits)

        out: dict[str, float | int | None] = {percentile_key(p): rnd(v) for p, v in self.values}
        out.update(mean=rnd(self.mean), max=rnd(self.max), n=self.n)
        return out
