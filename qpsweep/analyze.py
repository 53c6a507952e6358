"""Per-request records -> one ``LevelSummary`` per level (pure).

Definitions (per level; "ok" = requests with no ``error_kind``; times from ``record``):

* ``ttft_s`` = first_token_s - sent_s; ``e2e_s`` = done_s - sent_s (ok requests);
* ``itl_ms``: gaps between consecutive content chunks, pooled over ok requests;
* ``tpot_ms`` = (e2e - ttft) / (output_tokens - 1), ok requests with >= 2 output tokens;
* ``tokens_per_sec`` = output_tokens / e2e, per ok request (the seed's "Tok/s");
* ``send_lag_ms`` = sent_s - scheduled_s, every sent request: the generator's own delay;
* ``arrival_window_s``: how long the level scheduled arrivals (``--duration`` unless stopped
  early), widened to the last actual send when the generator ran late;
* ``offered_qps`` (the seed's "Actual QPS") = n_sent / arrival_window_s;
* ``achieved_qps`` = n_ok / (last done_s), successful completions per second of the level,
  drain included;
* ``output_tok_per_s`` = sum of ok output tokens / (last done_s);
* ``success_pct`` = 100 * n_ok / n_sent.

``generator_behind`` is set when send lag p99 exceeds ``LAG_P99_LIMIT_MS``: the client, not
the server, was the bottleneck, and latencies at that level are not evidence about the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.record import RequestRecord

BASE_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
LAG_P99_LIMIT_MS = 10.0

_KIND_LABELS = {
    "timeout_connect": "Timeout (connect)",
    "timeout_ttft": "Timeout (TTFT)",
    "timeout_total": "Timeout (total)",
    "connection": "Connection error",
    "protocol": "Protocol error",
    "empty": "Empty response",
    "interrupted": "Interrupted",
}


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
    def of(cls, samples: Sequence[float] | np.ndarray, ps: Iterable[float]) -> Percentiles:
        """Linear-interpolated percentiles (numpy's default method) of ``samples``."""
        arr = np.asarray(samples, dtype=float)
        ps = tuple(ps)
        if arr.size == 0:
            return cls(0, None, None, tuple((p, None) for p in ps))
        values = np.percentile(arr, ps)
        return cls(
            int(arr.size),
            float(arr.mean()),
            float(arr.max()),
            tuple((p, float(v)) for p, v in zip(ps, values, strict=True)),
        )

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


@dataclass(frozen=True)
class LevelSummary:
    """Everything reported about one level; see the module docstring for definitions."""

    index: int
    qps_target: float
    arrival_window_s: float
    n_scheduled: int
    n_sent: int
    n_ok: int
    offered_qps: float
    achieved_qps: float
    success_pct: float
    ttft_s: Percentiles
    e2e_s: Percentiles
    itl_ms: Percentiles
    tpot_ms: Percentiles
    tokens_per_sec: Percentiles
    send_lag_ms: Percentiles
    output_tok_per_s: float
    errors: tuple[tuple[str, int], ...]
    errors_by_kind: tuple[tuple[str, int], ...]
    token_counted_by: tuple[tuple[str, int], ...]
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    generator_behind: bool

    @property
    def n_failed(self) -> int:
        """Requests sent that did not succeed."""
        return self.n_sent - self.n_ok


@dataclass(frozen=True)
class LevelInfo:
    """What the run directory knows about a level besides its records."""

    index: int
    qps_target: float
    arrival_window_s: float
    n_scheduled: int


def error_label(record: RequestRecord) -> str:
    """The seed's per-level error label: ``HTTP 503``, ``Timeout (TTFT)``, ..."""
    if record.error_kind and record.error_kind.startswith("http_") and record.status:
        return f"HTTP {record.status}"
    return _KIND_LABELS.get(record.error_kind or "", record.error_kind or "unknown")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize_level(
    info: LevelInfo, records: Sequence[RequestRecord], percentiles: Iterable[float]
) -> LevelSummary:
    """Summary of one level from its records (any order)."""
    ps = sorted(set(BASE_PERCENTILES) | set(percentiles))
    ok = [r for r in records if r.ok]
    ttft = [r.first_token_s - r.sent_s for r in ok if r.first_token_s is not None]
    e2e = [r.done_s - r.sent_s for r in ok]
    tpot = [
        (r.done_s - r.first_token_s) / (r.output_tokens - 1) * 1000.0
        for r in ok
        if r.first_token_s is not None and r.output_tokens > 1
    ]
    tok_s = [r.output_tokens / (r.done_s - r.sent_s) for r in ok if r.done_s > r.sent_s]
    gaps = [np.diff(r.chunk_s) for r in ok if len(r.chunk_s) > 1]
    itl = np.concatenate(gaps) * 1000.0 if gaps else np.empty(0)
    lag = [(r.sent_s - r.scheduled_s) * 1000.0 for r in records]
    window_s = max([info.arrival_window_s] + [r.sent_s for r in records])
    end_s = max((r.done_s for r in records), default=0.0)
    lag_p = Percentiles.of(lag, ps)
    lag_p99 = lag_p.get(99.0)
    return LevelSummary(
        index=info.index,
        qps_target=info.qps_target,
        arrival_window_s=window_s,
        n_scheduled=info.n_scheduled,
        n_sent=len(records),
        n_ok=len(ok),
        offered_qps=len(records) / window_s if window_s > 0 else 0.0,
        achieved_qps=len(ok) / end_s if end_s > 0 else 0.0,
        success_pct=100.0 * len(ok) / len(records) if records else 0.0,
        ttft_s=Percentiles.of(ttft, ps),
        e2e_s=Percentiles.of(e2e, ps),
        itl_ms=Percentiles.of(itl, ps),
        tpot_ms=Percentiles.of(tpot, ps),
        tokens_per_sec=Percentiles.of(tok_s, ps),
        send_lag_ms=lag_p,
        output_tok_per_s=sum(r.output_tokens for r in ok) / end_s if end_s > 0 else 0.0,
        errors=tuple(Counter(error_label(r) for r in records if not r.ok).most_common()),
        errors_by_kind=tuple(
            Counter(r.error_kind or "" for r in records if not r.ok).most_common()
        ),
        token_counted_by=tuple(sorted(Counter(r.token_counted_by or "" for r in ok).items())),
        input_tokens_mean=_mean([r.input_tokens for r in ok if r.input_tokens is not None]),
        output_tokens_mean=_mean([r.output_tokens for r in ok]),
        generator_behind=lag_p99 is not None and lag_p99 > LAG_P99_LIMIT_MS,
    )


def summarize_levels(
    infos: Sequence[LevelInfo], records: Iterable[RequestRecord], percentiles: Iterable[float]
) -> list[LevelSummary]:
    """One summary per level in ``infos`` order; records are grouped by ``record.level``."""
    by_level: dict[int, list[RequestRecord]] = {info.index: [] for info in infos}
    for record in records:
        by_level.setdefault(record.level, []).append(record)
    ps = tuple(percentiles)
    return [summarize_level(info, by_level[info.index], ps) for info in infos]
