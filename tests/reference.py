"""The straightforward per-record analysis that qpsweep used before ``RecordTable``: the
oracle of the tests that the columnar code gives the very same summaries and error tables.

Copied from ``qpsweep/analysis/summary.py`` and ``qpsweep/output/html.py`` as they were (one Python
object per request, ``collections.Counter``, ``np.diff`` per record); not used by qpsweep.
``record_json`` is ``RequestRecord.to_json`` as it was, by ``json.dumps``.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from qpsweep.analysis.summary import (
    _KIND_LABELS,
    BASE_PERCENTILES,
    BATCHES,
    LATE_SEND_MS,
    MIN_STEADY_SENDS,
    LevelInfo,
    LevelSummary,
    Percentiles,
    slo_values,
)
from qpsweep.config.slo import Slo, request_meets
from qpsweep.output.html import MAX_EXAMPLES, SLOWEST, _e, _head, _num, _row, _table
from qpsweep.records.record import RequestRecord

_GRID_POINTS = 50


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


def _slo_fields(
    summary: LevelSummary,
    records: Sequence[RequestRecord],
    slos: Sequence[Slo],
    end_s: float,
) -> LevelSummary:
    """``summary`` with ``slo_met`` and ``goodput_rps`` (see ``qpsweep.config.slo``)."""
    values = [slo_values(summary, slo) for slo in slos]
    met = (
        None
        if any(v is None for v in values)
        else all(v is not None and v <= slo.limit_s for v, slo in zip(values, slos, strict=True))
    )
    good = 0
    for r in (r for r in records if r.ok):
        ttft = None if r.first_token_s is None else r.first_token_s - r.sent_s
        tpot = None
        if r.first_token_s is not None and r.output_tokens > 1:
            tpot = (r.done_s - r.first_token_s) / (r.output_tokens - 1)
        good += request_meets(slos, ttft, r.done_s - r.sent_s, tpot)
    goodput = good / end_s if end_s > 0 else 0.0
    return dataclasses.replace(
        summary, slo_met=met, goodput_rps=goodput, slo_tally=_slo_tally(records, slos)
    )


def _slo_tally(
    records: Sequence[RequestRecord], slos: Sequence[Slo]
) -> tuple[tuple[int, int], ...]:
    """Per SLO ``(n, misses)`` from the scheduled send, one record at a time."""
    out = []
    for slo in slos:
        misses = 0
        for r in records:
            ttft = None if r.first_token_s is None else r.first_token_s - r.scheduled_s
            tpot = None
            if r.first_token_s is not None and r.output_tokens > 1:
                tpot = (r.done_s - r.first_token_s) / (r.output_tokens - 1)
            met = r.ok and request_meets((slo,), ttft, r.done_s - r.scheduled_s, tpot)
            misses += not met
        out.append((len(records), misses))
    return tuple(out)


def _steady(
    records: Sequence[RequestRecord], window_s: float, service_s: float | None
) -> dict[str, Any]:
    """The verdict's steady-window and plateau counts, one record at a time."""
    half_s = window_s / 2
    if half_s <= 0 or not records:
        return {}
    ends = [r for r in records if half_s <= r.done_s <= window_s]
    moments = [half_s] + [r.done_s for r in ends]
    fewest = min(
        sum(1 for r in records if r.sent_s <= t) - sum(1 for r in records if r.done_s <= t)
        for t in moments
    )
    end_s = window_s
    if fewest >= 1:  # run on while at least `fewest` are in flight
        for t in sorted(r.done_s for r in records if r.done_s > window_s):
            end_s = t
            if sum(1 for r in records if r.done_s > t) < fewest:
                break
    length_s = end_s - half_s
    if not service_s:
        width, batches = length_s / BATCHES, BATCHES
    elif length_s < 4 * service_s:
        width, batches = length_s / 2, 2
    else:
        width = service_s * max(2, math.ceil(length_s / (BATCHES * service_s)))
        batches = int(length_s // width)
    plateau = [r for r in records if half_s <= r.done_s <= end_s]
    streamed = [
        r
        for r in records
        if r.first_token_s is not None and math.isfinite(r.first_token_s)
        and r.done_s > r.first_token_s
    ]  # fmt: skip
    starts = [half_s] + [r.first_token_s for r in streamed if half_s <= r.first_token_s <= window_s]
    streaming = max(
        sum(1 for r in streamed if r.first_token_s <= t < r.done_s) for t in starts
    )  # requests between first token and end: they hold the busy slots
    edge = max(1.0, math.sqrt(min(fewest, streaming) if streaming else fewest) / 2)

    def se_of(times: list[float], start: float, width: float, batches: int) -> float:
        edges = [start + width * i for i in range(batches + 1)]
        counts = [0] * batches
        for t in times:  # bins [e_i, e_i+1), the last one closed, as numpy's histogram
            if edges[0] <= t <= edges[-1]:
                counts[min(bisect.bisect_right(edges, t) - 1, batches - 1)] += 1
        rates = np.array(counts) / width
        return float(np.std(rates, ddof=1) / np.sqrt(batches))

    def se(times: list[float]) -> float:
        return se_of(times, half_s, width, batches)

    if not service_s:
        steady_width, steady_batches = half_s / BATCHES, BATCHES
    elif half_s < 4 * service_s:
        steady_width, steady_batches = half_s / 2, 2
    else:
        steady_width = service_s * max(2, math.ceil(half_s / (BATCHES * service_s)))
        steady_batches = int(half_s // steady_width)
    steady_se = se_of([r.done_s for r in ends], half_s, steady_width, steady_batches)
    sends_se = se_of([r.sent_s for r in records], 0.0, window_s / BATCHES, BATCHES)

    return {
        "steady_s": half_s,
        "steady_sent": sum(1 for r in records if half_s <= r.sent_s <= window_s),
        "steady_finished": len(ends),
        "steady_ok": sum(1 for r in ends if r.ok),
        "finish_rate_se": se([r.done_s for r in plateau]),
        "ok_rate_se": se([r.done_s for r in plateau if r.ok]),
        "plateau_s": length_s,
        "plateau_finished": len(plateau),
        "plateau_ok": sum(1 for r in plateau if r.ok),
        "plateau_batches": batches,
        "steady_finish_se": steady_se,
        "steady_batches": steady_batches,
        "sent_rate_se": sends_se,
        "plateau_floor_se": edge / (width * batches),
        "steady_floor_se": edge / (steady_width * steady_batches),
    }


def summarize_level(
    info: LevelInfo,
    records: Sequence[RequestRecord],
    percentiles: Iterable[float],
    slos: Sequence[Slo] = (),
    service_s: float | None = None,
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
        n_late_sends=sum(1 for r in records if (r.sent_s - r.scheduled_s) * 1000.0 > LATE_SEND_MS),
        **_steady(records, window_s, service_s),
    )
    return _slo_fields(summary, records, slos, end_s) if slos else summary


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
    service_s = None
    for info in sorted(infos, key=lambda i: (i.qps_target, i.index)):
        e2e = [r.done_s - r.sent_s for r in by_level[info.index] if r.ok]
        if e2e:
            service_s = float(np.median(e2e))
            break
    return [summarize_level(info, by_level[info.index], ps, slos, service_s) for info in infos]


def _example(r: RequestRecord) -> str:
    message = r.error or "(no message)"
    return message if r.status is None else f"[{r.status}] {message}"


def _slow_row(r: RequestRecord) -> str:
    ttft_s = None if r.first_token_s is None else r.first_token_s - r.sent_s
    cells = [r.level, f"{r.level_qps:g}", r.prompt_id, _num(ttft_s, ".3f")]
    return _row([*cells, f"{r.done_s - r.sent_s:.3f}", _num(r.status, "d")])


def errors_html(records: Sequence[RequestRecord]) -> str:
    counts = Counter((r.level, r.level_qps, r.error_kind or "") for r in records if not r.ok)
    examples: dict[tuple[int, str], list[str]] = {}
    for r in records:
        seen = examples.setdefault((r.level, r.error_kind or ""), [])
        if not r.ok and len(seen) < MAX_EXAMPLES and _example(r) not in seen:
            seen.append(_example(r))
    rows = []
    for (level, qps, kind), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
        items = "".join(f"<li>{_e(x)}</li>" for x in examples[(level, kind)])
        tail = f'<td class="text"><ul class="examples">{items}</ul></td>'
        rows.append(_row([level, f"{qps:g}", kind, n], cell_cls={2: "text"}, tail=tail))
    head = _head(["level", "target QPS", "kind", "count", "examples"], {2: "text", 4: "text"})
    failures = _table("errors", head, rows, "no request failed")
    ok = sorted((r for r in records if r.ok), key=lambda r: r.done_s - r.sent_s, reverse=True)
    slow = [_slow_row(r) for r in ok[:SLOWEST]]
    head = _head(["level", "target QPS", "prompt_id", "TTFT (s)", "E2E (s)", "status"])
    slowest = _table("slowest", head, slow, "no successful request")
    return f"{failures}\n<h3>The {SLOWEST} slowest successful requests</h3>\n{slowest}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def record_json(r: RequestRecord) -> str:
    """One JSON line of ``r``, built as a dict and written by ``json.dumps``."""
    data: dict[str, Any] = {
        "level": r.level,
        "level_qps": r.level_qps,
        "seq": r.seq,
        "prompt_id": r.prompt_id,
        "scheduled_s": round(r.scheduled_s, 6),
        "sent_s": round(r.sent_s, 6),
        "first_token_s": _round(r.first_token_s),
        "done_s": round(r.done_s, 6),
        "status": r.status,
        "error_kind": r.error_kind,
        "error": r.error,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "token_counted_by": r.token_counted_by,
    }
    if r.attempts > 1 or r.resent:
        data["attempts"] = r.attempts
        data["first_error_kind"] = r.first_error_kind
        data["first_done_s"] = _round(r.first_done_s)
        data["resent"] = r.resent
    if r.session is not None:
        data["session"] = r.session
        data["turn"] = r.turn
        data["history_tokens"] = r.history_tokens
    chunks = ",".join("%.6f" % t for t in r.chunk_s)  # noqa: UP031
    return json.dumps(data, separators=(",", ":"))[:-1] + ',"chunk_s":[' + chunks + "]}"
