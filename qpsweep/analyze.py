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
* ``success_pct`` = 100 * n_ok / n_sent; ``error_rate`` = n_failed / n_sent;
* with ``--retries``: ``n_retried`` = requests tried more than once, ``n_retries`` = the extra
  tries, ``first_try_error_rate`` = (n_retried + requests failed at their only try) / n_sent,
  the error rate without retries (equal to ``error_rate`` when nothing was retried);
* ``ttft_from_schedule_s`` / ``e2e_from_schedule_s``: the same from ``scheduled_s`` instead of
  ``sent_s`` (the coordinated-omission-corrected view: the generator's own lag counts);
* ``scheduled_qps`` = n_scheduled / duration_s: the rate the schedule itself asked for
  (Poisson counts differ from the target by chance);
* steady-state signals over the second half of the arrival window ``[w/2, w]``:
  ``completion_ratio`` = answers in it (successes and HTTP error responses: the server
  answered; timeouts and broken connections are not answers) / requests sent in the
  same-length window shifted back by ``d``, the median E2E of the successful ones among them
  (clamped to ``[0, w/2]``); failures themselves are the ``error_rate`` signal's business:
  while the server keeps up both count the same requests, so the ratio is about 1 with little
  noise; when it cannot, completions run at its capacity while sends run at the offered rate,
  so the ratio is capacity / offered.  ``queue_growth`` = least-squares slope of the in-flight
  count over ``[w/2, w]`` (requests/s) / offered_qps: about 0 while the server keeps up, the
  share of arrivals piling up when it cannot.  Both ``None`` with fewer than
  ``MIN_STEADY_SENDS`` sends in the compared window.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.record import RequestRecord
from qpsweep.slo import Slo, request_meets

BASE_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
MIN_STEADY_SENDS = 10
_GRID_POINTS = 50

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
    duration_s: float
    arrival_window_s: float
    n_scheduled: int
    scheduled_qps: float
    n_sent: int
    n_ok: int
    offered_qps: float
    achieved_qps: float
    success_pct: float
    error_rate: float
    first_try_error_rate: float
    ttft_s: Percentiles
    e2e_s: Percentiles
    itl_ms: Percentiles
    tpot_ms: Percentiles
    tokens_per_sec: Percentiles
    send_lag_ms: Percentiles
    ttft_from_schedule_s: Percentiles
    e2e_from_schedule_s: Percentiles
    completion_ratio: float | None
    queue_growth: float | None
    output_tok_per_s: float
    errors: tuple[tuple[str, int], ...]
    errors_by_kind: tuple[tuple[str, int], ...]
    token_counted_by: tuple[tuple[str, int], ...]
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    slo_met: bool | None = None
    goodput_rps: float | None = None
    n_retried: int = 0
    n_retries: int = 0

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
    duration_s: float = 0.0  # planned; 0 when unknown (then the arrival window is used)


def error_label(record: RequestRecord) -> str:
    """The seed's per-level error label: ``HTTP 503``, ``Timeout (TTFT)``, ..."""
    if record.error_kind and record.error_kind.startswith("http_") and record.status:
        return f"HTTP {record.status}"
    return _KIND_LABELS.get(record.error_kind or "", record.error_kind or "unknown")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def steady_signals(
    records: Sequence[RequestRecord], window_s: float, offered_qps: float
) -> tuple[float | None, float | None]:
    """``(completion_ratio, queue_growth)`` of one level; see the module docstring."""
    half_s = window_s / 2
    sent = np.sort(np.array([r.sent_s for r in records]))
    done = np.sort(np.array([r.done_s for r in records]))
    answered = [r for r in records if half_s <= r.done_s <= window_s and _answered(r)]
    finished = [r.done_s - r.sent_s for r in answered if r.ok]
    shift_s = min(float(np.median(finished)), half_s) if finished else 0.0
    lo, hi = np.searchsorted(sent, [half_s - shift_s, window_s - shift_s], "left")
    n_sent = int(hi - lo)
    if n_sent < MIN_STEADY_SENDS or offered_qps <= 0:
        return None, None
    grid = np.linspace(half_s, window_s, _GRID_POINTS)
    in_flight = np.searchsorted(sent, grid, "right") - np.searchsorted(done, grid, "right")
    slope = float(np.polyfit(grid, in_flight, 1)[0])
    return len(answered) / n_sent, slope / offered_qps


def _answered(record: RequestRecord) -> bool:
    """The server answered: a success or an HTTP error status."""
    return record.ok or (record.error_kind or "").startswith("http_")


def slo_values(summary: LevelSummary, slo: Slo) -> float | None:
    """The level's value of ``slo``'s metric and percentile, in seconds."""
    dist = {"ttft": summary.ttft_s, "e2e": summary.e2e_s}.get(slo.metric)
    if dist is not None:
        return dist.get(slo.percentile)
    value_ms = (summary.tpot_ms if slo.metric == "tpot" else summary.itl_ms).get(slo.percentile)
    return None if value_ms is None else value_ms / 1000.0


def _slo_fields(
    summary: LevelSummary, ok: Sequence[RequestRecord], slos: Sequence[Slo], end_s: float
) -> LevelSummary:
    """``summary`` with ``slo_met`` and ``goodput_rps`` (see ``qpsweep.slo``)."""
    values = [slo_values(summary, slo) for slo in slos]
    met = (
        None
        if any(v is None for v in values)
        else all(v is not None and v <= slo.limit_s for v, slo in zip(values, slos, strict=True))
    )
    good = 0
    for r in ok:
        ttft = None if r.first_token_s is None else r.first_token_s - r.sent_s
        tpot = None
        if r.first_token_s is not None and r.output_tokens > 1:
            tpot = (r.done_s - r.first_token_s) / (r.output_tokens - 1)
        good += request_meets(slos, ttft, r.done_s - r.sent_s, tpot)
    goodput = good / end_s if end_s > 0 else 0.0
    return dataclasses.replace(summary, slo_met=met, goodput_rps=goodput)


def summarize_level(
    info: LevelInfo,
    records: Sequence[RequestRecord],
    percentiles: Iterable[float],
    slos: Sequence[Slo] = (),
) -> LevelSummary:
    """Summary of one level from its records (any order); SLO fields when ``slos`` given."""
    ps = sorted(set(BASE_PERCENTILES) | set(percentiles))
    ok = [r for r in records if r.ok]
    first = [(r, r.first_token_s) for r in ok if r.first_token_s is not None]
    tpot = [
        (r.done_s - t) / (r.output_tokens - 1) * 1000.0 for r, t in first if r.output_tokens > 1
    ]
    tok_s = [r.output_tokens / (r.done_s - r.sent_s) for r in ok if r.done_s > r.sent_s]
    gaps = [np.diff(r.chunk_s) for r in ok if len(r.chunk_s) > 1]
    itl = np.concatenate(gaps) * 1000.0 if gaps else np.empty(0)
    window_s = max([info.arrival_window_s] + [r.sent_s for r in records])
    duration_s = info.duration_s or window_s
    end_s = max((r.done_s for r in records), default=0.0)
    offered = len(records) / window_s if window_s > 0 else 0.0
    completion_ratio, queue_growth = steady_signals(records, window_s, offered)
    n_failed = len(records) - len(ok)
    retried = [r for r in records if r.attempts > 1]
    first_try_failed = len(retried) + sum(1 for r in records if r.attempts == 1 and not r.ok)
    summary = LevelSummary(
        index=info.index,
        qps_target=info.qps_target,
        duration_s=duration_s,
        arrival_window_s=window_s,
        n_scheduled=info.n_scheduled,
        scheduled_qps=info.n_scheduled / duration_s if duration_s > 0 else 0.0,
        n_sent=len(records),
        n_ok=len(ok),
        offered_qps=offered,
        achieved_qps=len(ok) / end_s if end_s > 0 else 0.0,
        success_pct=100.0 * len(ok) / len(records) if records else 0.0,
        error_rate=n_failed / len(records) if records else 0.0,
        first_try_error_rate=first_try_failed / len(records) if records else 0.0,
        ttft_s=Percentiles.of([t - r.sent_s for r, t in first], ps),
        e2e_s=Percentiles.of([r.done_s - r.sent_s for r in ok], ps),
        itl_ms=Percentiles.of(itl, ps),
        tpot_ms=Percentiles.of(tpot, ps),
        tokens_per_sec=Percentiles.of(tok_s, ps),
        send_lag_ms=Percentiles.of([(r.sent_s - r.scheduled_s) * 1000.0 for r in records], ps),
        ttft_from_schedule_s=Percentiles.of([t - r.scheduled_s for r, t in first], ps),
        e2e_from_schedule_s=Percentiles.of([r.done_s - r.scheduled_s for r in ok], ps),
        completion_ratio=completion_ratio,
        queue_growth=queue_growth,
        output_tok_per_s=sum(r.output_tokens for r in ok) / end_s if end_s > 0 else 0.0,
        errors=tuple(Counter(error_label(r) for r in records if not r.ok).most_common()),
        errors_by_kind=tuple(
            Counter(r.error_kind or "" for r in records if not r.ok).most_common()
        ),
        token_counted_by=tuple(sorted(Counter(r.token_counted_by or "" for r in ok).items())),
        input_tokens_mean=_mean([r.input_tokens for r in ok if r.input_tokens is not None]),
        output_tokens_mean=_mean([r.output_tokens for r in ok]),
        n_retried=len(retried),
        n_retries=sum(r.attempts - 1 for r in retried),
    )
    return _slo_fields(summary, ok, slos, end_s) if slos else summary


def latency_samples(records: Iterable[RequestRecord]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per level: the TTFT and E2E (seconds) of each successful request, for resampling."""
    out: dict[int, tuple[list[float], list[float]]] = {}
    for r in records:
        if r.ok and r.first_token_s is not None:
            ttft, e2e = out.setdefault(r.level, ([], []))
            ttft.append(r.first_token_s - r.sent_s)
            e2e.append(r.done_s - r.sent_s)
    return {level: (np.array(t), np.array(e)) for level, (t, e) in out.items()}


def summarize_levels(
    infos: Sequence[LevelInfo],
    records: Iterable[RequestRecord],
    percentiles: Iterable[float],
    slos: Sequence[Slo] = (),
) -> list[LevelSummary]:
    """One summary per level in ``infos`` order; records are grouped by ``record.level``."""
    by_level: dict[int, list[RequestRecord]] = {info.index: [] for info in infos}
    for record in records:
        by_level.setdefault(record.level, []).append(record)
    ps = tuple(percentiles)
    return [summarize_level(info, by_level[info.index], ps, slos) for info in infos]
