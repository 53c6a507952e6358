"""Service-level objectives: ``--slo ttft_p95=500ms,tpot_p95=30ms`` or a preset, pure.

An SLO bounds one latency percentile of a level: ``ttft``, ``e2e`` (seconds from the actual
send), ``tpot`` or ``itl`` (per output token), at p50, p90, p95 or p99.  Limits take a unit:
``ms`` or ``s``.  Presets, after the MLPerf-style targets in qpsweep's seed documents:
``standard`` = TTFT p95 <= 2 s and TPOT p95 <= 100 ms; ``interactive`` = TTFT p95 <= 0.5 s and
TPOT p95 <= 30 ms.

Per level, ``slo_met`` is true when every SLO's percentile is within its limit (``None``
without samples).  ``goodput_rps`` = successful requests that met every SLO on their own
(their TTFT and E2E, and their mean time per output token for both ``tpot`` and ``itl``,
within each limit) / the level's time to its last response, as ``achieved_qps``.  With SLOs,
the verdict calls a level that misses them ``degraded``, so the max sustainable QPS is the
highest level meeting them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qpsweep.errors import ConfigError

METRICS = ("ttft", "tpot", "itl", "e2e")
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
PRESETS = {
    "standard": "ttft_p95=2s,tpot_p95=100ms",
    "interactive": "ttft_p95=500ms,tpot_p95=30ms",
}
_ITEM = re.compile(r"^(ttft|tpot|itl|e2e)_(p50|p90|p95|p99)=([0-9]*\.?[0-9]+)(ms|s)$")


@dataclass(frozen=True)
class Slo:
    """``metric`` at ``percentile`` must be at most ``limit_s`` seconds."""

    metric: str
    percentile: float
    limit_s: float

    def __str__(self) -> str:
        limit = f"{self.limit_s * 1000:g} ms" if self.limit_s < 1 else f"{self.limit_s:g} s"
        return f"{self.metric}_p{self.percentile:g} <= {limit}"


def parse_slos(text: str, flag: str = "--slo") -> tuple[Slo, ...]:
    """``standard``, ``interactive`` or ``metric_pNN=VALUE(ms|s),...``; ``ConfigError`` else."""
    spec = PRESETS.get(text.strip().lower(), text)
    slos = []
    for raw in spec.split(","):
        item = raw.strip().replace(" ", "")
        match = _ITEM.match(item)
        if not match:
            raise ConfigError(
                f"{flag}: {raw.strip()!r} must be METRIC_pNN=VALUE with METRIC one of "
                f"{'/'.join(METRICS)}, pNN one of {'/'.join(PERCENTILES)} and a unit ms or s "
                f"(e.g. ttft_p95=500ms), or a preset: {', '.join(PRESETS)}"
            )
        metric, pct, value, unit = match.groups()
        limit_s = float(value) / (1000.0 if unit == "ms" else 1.0)
        if limit_s <= 0:
            raise ConfigError(f"{flag}: {item}: the limit must be greater than 0")
        slos.append(Slo(metric, PERCENTILES[pct], limit_s))
    return tuple(slos)


def describe(slos: Sequence[Slo]) -> str:
    """``ttft_p95 <= 500 ms, tpot_p95 <= 30 ms``."""
    return ", ".join(str(s) for s in slos)


def request_meets(
    slos: Sequence[Slo], ttft_s: float | None, e2e_s: float, tpot_s: float | None
) -> bool:
    """Whether one successful request met every SLO on its own (see the module docstring)."""
    values = {"ttft": ttft_s, "e2e": e2e_s, "tpot": tpot_s, "itl": tpot_s}
    for slo in slos:
        value = values[slo.metric]
        if value is not None and value > slo.limit_s:
            return False
        if value is None and slo.metric == "ttft":
            return False
    return True


def requests_meet(
    slos: Sequence[Slo],
    ttft_s: npt.NDArray[np.float64],
    e2e_s: npt.NDArray[np.float64],
    tpot_s: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_]:
    """``request_meets`` for many successful requests at once, NaN standing for ``None``."""
    values = {"ttft": ttft_s, "e2e": e2e_s, "tpot": tpot_s, "itl": tpot_s}
    met = np.ones(e2e_s.size, dtype=bool)
    for slo in slos:
        value = values[slo.metric]
        met &= np.where(np.isnan(value), slo.metric != "ttft", value <= slo.limit_s)
    return met
