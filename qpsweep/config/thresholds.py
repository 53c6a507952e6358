"""The verdict's settings: its thresholds (``Thresholds``) and an adaptive sweep's plan
(``AutoPlan``).  Plain frozen data; ``qpsweep.analysis`` reads them, and the run's
``metadata.json`` records them (``thresholds``, ``adaptive``)."""

from __future__ import annotations

from dataclasses import dataclass

from qpsweep.config.slo import Slo


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the verdict; the defaults are documented in docs/verdict.md."""

    max_error_rate: float = 0.05
    max_p95_latency_s: float | None = None
    headroom: float = 0.75
    late_share: float = 0.05
    min_late_sends: int = 2
    stall_p99_ms: float = 25.0
    offered_min_ratio: float = 0.95
    degrade_factor: float = 2.5
    degrade_slack_s: float = 0.1
    confidence: float = 0.99
    slos: tuple[Slo, ...] = ()


@dataclass(frozen=True)
class AutoPlan:
    """Settings of an adaptive sweep."""

    start_qps: float = 1.0
    max_qps: float = 1000.0
    precision: float = 0.1
    budget_s: float = 900.0
