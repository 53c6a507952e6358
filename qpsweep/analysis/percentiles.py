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
        cls, samples: Sequence[float] | np.ndarray, ps: Iterable[float], scratch: bool = False
    ) -> Percentiles:
        """Linear-interpolated percentiles (numpy's default method) of ``samples``.
        ``scratch``: the caller has no further use for ``samples`` (an array): numpy may then
        reorder it in place instead of working on a copy (mean and max are taken before)."""
        arr = np.asarray(samples, dtype=float)
        ps = tuple(ps)
        if arr.size == 0:
            return cls(0, None, None, tuple((p, None) for p in ps))
        mean, top = float(arr.mean()), float(arr.max())
        values = np.percentile(arr, ps, overwrite_input=scratch and arr is samples)
        pairs = tuple((p, float(v)) for p, v in zip(ps, values, strict=True))
        return cls(int(arr.size), mean, top, pairs)

    @classmethod
    def of_sorted(cls, ordered: np.ndarray, mean: float | None, ps: Iterable[float]) -> Percentiles:
        """``of`` for samples already sorted whose ``mean`` is known (summed in their own
        order): the same values, without numpy's sort work."""
        ps = tuple(ps)
        if ordered.size == 0 or mean is None:
            return cls(0, None, None, tuple((p, None) for p in ps))
        values = np.percentile(ordered, ps)
        pairs = tuple((p, float(v)) for p, v in zip(ps, values, strict=True))
        return cls(int(ordered.size), mean, float(ordered[-1]), pairs)

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
