"""Per-request records -> one ``LevelSummary`` per level (pure).

Definitions (per level; "ok" = requests with no ``error_kind``; times from ``record``):

* ``ttft_s`` = first_token_s - sent_s; ``e2e_s`` = done_s - sent_s (ok requests);
* ``itl_ms``: gaps between consecutive content chunks, pooled over ok requests;
* ``tpot_ms`` = (e2e - ttft) / (output_tokens - 1), ok requests with >= 2 output tokens;
* ``tokens_per_sec`` = output_tokens / e2e, per ok request (the seed's "Tok/s");
* ``send_lag_ms`` = sent_s - scheduled_s, every sent request: the generator's own delay;
  ``n_late_sends``: the requests sent more than ``LATE_SEND_MS`` after their scheduled time;
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
* the verdict's counts over the same window ``[w/2, w]`` (length ``steady_s``): ``steady_sent``
  (A, sends), ``steady_finished`` (F, requests that ended, whatever their outcome) and
  ``steady_ok`` (successes); A - F is exactly the growth of the in-flight count over the
  window.
* the plateau window ``[w/2, e]`` (length ``plateau_s``), where the completion rate is read:
  ``I`` is the fewest requests in flight at any moment of ``[w/2, w]``; when ``I >= 1`` the
  window runs on past ``w`` (no sends come then) until fewer than ``I`` are in flight, since
  the server never had less work than that in the steady window (an overloaded level keeps
  completing at its plateau while it drains its backlog); else ``e = w``.
  ``plateau_finished`` / ``plateau_ok``: the requests that ended / succeeded in it;
  ``finish_rate_se`` / ``ok_rate_se``: the standard error of their rates by batch means over
  ``plateau_batches`` equal sub-windows (sd of the batch rates / sqrt(batches));
  ``plateau_floor_se``: the least standard error a rate read over the batches' span can
  have, ``max(1, sqrt(B) / 2)`` requests over that span: the resolution at the window's
  edges, where each of the ``B`` busy slots finishes ``floor`` or ``ceil`` of
  ``length / its cycle`` requests (variance at most 1/4 each), which batches in step with
  a fixed service time cannot see.  ``B = min(I, most_streaming)``, ``most_streaming`` the
  most requests between their first token and their end at any moment of ``[w/2, w]``
  (those hold a slot; queued ones do not finish on their own); ``B = I`` when none streamed
  (non-streamed answers, or only failures), the bound that holds whatever the server.
  ``steady_finish_se`` / ``steady_batches``: the same for the rate of F over the steady
  window, and ``steady_floor_se`` its floor; ``sent_rate_se``: batch means of the sends over
  the whole arrival window (``BATCHES`` batches), for the growth test's offered rate.  A batch is a
  whole multiple of ``service_s``, at least two, and of the window's length / ``BATCHES``
  (as many batches as fit; a window shorter than ``4 x service_s`` has 2 halves):
  ``service_s`` is the median E2E of the successes of the run's lightest level, the time a
  request holds the server when it does not wait.  Batches shorter than that, or out of step
  with it, alias the server's own rhythm (slots with a fixed service time finish their
  requests in waves; a batch of 0.4 s sees 0, 8 or 16 of a wave of 8 every 0.5 s), which
  inflates the variance without bound for a deterministic server and hides nothing for a
  random one;
* reasoning models: ``n_reasoning`` = ok requests whose stream carried reasoning;
  ``ttft_visible_s`` = time to the first *visible* token (``RecordTable.visible_s`` - sent_s)
  of ok requests that had one, computed only when ``n_reasoning > 0`` (else empty: it would
  equal ``ttft_s``), while ``ttft_s`` stays the first token of either kind;
  ``reasoning_tokens_mean`` = mean ``usage.completion_tokens_details.reasoning_tokens`` of the
  ok requests that reported it (``None``: none did).  ITL and TPOT count both kinds of token;
* prefix caching: ``cached_share`` = sum of ``cached_tokens`` / sum of ``input_tokens`` over
  the ok requests that reported both (``None``: none did);
* ``slo_tally``: per SLO, ``(n, misses)`` over every request sent, a miss being a failure or a
  success whose TTFT or E2E *from the scheduled send* (TPOT/ITL: its mean time per output
  token) is over the limit: the input of the early-stopping rule (``qpsweep.analysis.early_stop``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.analysis.percentiles import Percentiles
from qpsweep.analysis.sessions import SessionSummary, session_summary
from qpsweep.config.slo import Slo, requests_meet
from qpsweep.records.metadata import SessionCounts
from qpsweep.records.record import RequestRecord
from qpsweep.records.table import NO_INT, RecordTable
from qpsweep.records.table_ops import first_counts, most_common

BASE_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
MIN_STEADY_SENDS = 10
LATE_SEND_MS = 10.0  # a send this much after its scheduled time is late
_GRID_POINTS = 50
BATCHES = 10

Records = Iterable[RequestRecord] | RecordTable
NO_SAMPLES = Percentiles(0, None, None, ())
_KIND_LABELS = {
    "timeout_connect": "Timeout (connect)",
    "timeout_ttft": "Timeout (TTFT)",
    "timeout_total": "Timeout (total)",
    "connection": "Connection error",
    "protocol": "Protocol error",
    "empty": "Empty response",
    "interrupted": "Interrupted",
}


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
    n_late_sends: int = 0
    steady_s: float = 0.0
    steady_sent: int = 0
    steady_finished: int = 0
    steady_ok: int = 0
    finish_rate_se: float | None = None
    ok_rate_se: float | None = None
    plateau_s: float = 0.0
    plateau_finished: int = 0
    plateau_ok: int = 0
    plateau_batches: int = 0
    steady_finish_se: float | None = None
    steady_batches: int = 0
    sent_rate_se: float | None = None
    plateau_floor_se: float = 0.0
    steady_floor_se: float = 0.0
    slo_tally: tuple[tuple[int, int], ...] = ()
    sessions: SessionSummary | None = None
    n_reasoning: int = 0
    ttft_visible_s: Percentiles = NO_SAMPLES
    reasoning_tokens_mean: float | None = None
    cached_share: float | None = None

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
    sessions: SessionCounts | None = None  # --multi-turn: the level's session counts


def error_label(kind: str | None, status: int | None) -> str:
    """The seed's per-level error label of a failure: ``HTTP 503``, ``Timeout (TTFT)``, ..."""
    if kind and kind.startswith("http_") and status:
        return f"HTTP {status}"
    return _KIND_LABELS.get(kind or "", kind or "unknown")


def as_table(records: Records) -> RecordTable:
    """``records`` as a ``RecordTable`` (a table is returned as it is)."""
    return records if isinstance(records, RecordTable) else RecordTable.from_records(records)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def steady_signals(
    table: RecordTable, window_s: float, offered_qps: float
) -> tuple[float | None, float | None]:
    """``(completion_ratio, queue_growth)`` of one level; see the module docstring."""
    half_s = window_s / 2
    sent, done = np.sort(table.sent_s), np.sort(table.done_s)
    kinds = table.error_kind
    http = [code for code, name in enumerate(kinds.names) if name.startswith("http_")]
    answered = (half_s <= table.done_s) & (table.done_s <= window_s)
    answered &= table.ok | np.isin(kinds.codes, http)  # the server answered
    finished = (table.done_s - table.sent_s)[answered & table.ok]
    shift_s = min(float(np.median(finished)), half_s) if finished.size else 0.0
    lo, hi = np.searchsorted(sent, [half_s - shift_s, window_s - shift_s], "left")
    n_sent = int(hi - lo)
    if n_sent < MIN_STEADY_SENDS or offered_qps <= 0:
        return None, None
    grid = np.linspace(half_s, window_s, _GRID_POINTS)
    in_flight = np.searchsorted(sent, grid, "right") - np.searchsorted(done, grid, "right")
    slope = float(np.polyfit(grid, in_flight, 1)[0])
    return int(answered.sum()) / n_sent, slope / offered_qps


def _batch_se(ends_s: np.ndarray, start_s: float, width_s: float, batches: int) -> float:
    """Batch-means standard error of the rate of events ``ends_s`` in ``batches``
    consecutive batches of ``width_s`` from ``start_s``: sd of the batch rates /
    sqrt(batches)."""
    edges = start_s + width_s * np.arange(batches + 1)
    rates = np.histogram(ends_s, edges)[0] / width_s
    return float(np.std(rates, ddof=1) / np.sqrt(batches))


def _open_at(starts_s: np.ndarray, ends_s: np.ndarray, moments_s: np.ndarray) -> np.ndarray:
    """How many of the intervals ``[start, end)`` are open at each moment (both sorted)."""
    return np.searchsorted(starts_s, moments_s, "right") - np.searchsorted(
        ends_s, moments_s, "right"
    )


def fewest_in_flight(sent_s: np.ndarray, done_s: np.ndarray, window_s: float) -> int:
    """``I``: the fewest requests in flight at any moment of ``[w/2, w]``."""
    half_s = window_s / 2
    sent, done = np.sort(sent_s), np.sort(done_s)
    moments = np.concatenate(([half_s], done[(half_s <= done) & (done <= window_s)]))
    return int(_open_at(sent, done, moments).min())


def most_streaming(first_s: np.ndarray, done_s: np.ndarray, window_s: float) -> int:
    """The most requests between their first token and their end at once in ``[w/2, w]``
    (requests without a first token, or answered in one piece, never count)."""
    keep = np.isfinite(first_s) & np.isfinite(done_s) & (done_s > first_s)
    first, done = np.sort(first_s[keep]), np.sort(done_s[keep])
    half_s = window_s / 2
    moments = np.concatenate(([half_s], first[(half_s <= first) & (first <= window_s)]))
    return int(_open_at(first, done, moments).max())


def plateau_end_s(sent_s: np.ndarray, done_s: np.ndarray, window_s: float) -> float:
    """The plateau window's end ``e`` (see the module docstring)."""
    fewest = fewest_in_flight(sent_s, done_s, window_s)
    if fewest < 1 or (sent_s.size and float(sent_s.max()) > window_s):
        return window_s
    done = np.sort(done_s)
    # after w the count only falls: fewer than `fewest` remain once n - fewest + 1 have ended
    return max(window_s, float(done[done.size - fewest]))


def batch_width_s(length_s: float, service_s: float | None) -> tuple[float, int]:
    """``(width_s, batches)`` of the plateau's batch means (see the module docstring)."""
    if not service_s or service_s <= 0 or length_s < 4 * service_s:
        batches = BATCHES if not service_s or service_s <= 0 else 2
        return length_s / batches, batches
    width_s = service_s * max(2, int(np.ceil(length_s / (BATCHES * service_s))))
    return width_s, int(length_s // width_s)


def steady_counts(
    table: RecordTable, window_s: float, service_s: float | None = None
) -> dict[str, float | int | None]:
    """The verdict's counts over ``[w/2, w]`` and the plateau window; see the module doc."""
    half_s = window_s / 2
    if half_s <= 0 or not len(table):
        return {}
    sent, done = table.sent_s, table.done_s
    inside = (half_s <= done) & (done <= window_s)
    end_s = plateau_end_s(sent, done, window_s)
    length_s = end_s - half_s
    width_s, batches = batch_width_s(length_s, service_s)
    fewest = fewest_in_flight(sent, done, window_s)
    streaming = most_streaming(table.first_token_s, done, window_s)
    edge = max(1.0, np.sqrt(min(fewest, streaming) if streaming else fewest) / 2)
    steady_width_s, steady_batches = batch_width_s(half_s, service_s)
    sends_width_s = window_s / BATCHES
    plateau = (half_s <= done) & (done <= end_s)
    finished, ok = done[plateau], done[plateau & table.ok]
    return {
        "steady_s": half_s,
        "steady_sent": int(((half_s <= sent) & (sent <= window_s)).sum()),
        "steady_finished": int(inside.sum()),
        "steady_ok": int((inside & table.ok).sum()),
        "finish_rate_se": _batch_se(finished, half_s, width_s, batches),
        "ok_rate_se": _batch_se(ok, half_s, width_s, batches),
        "plateau_s": length_s,
        "plateau_finished": int(finished.size),
        "plateau_ok": int(ok.size),
        "plateau_batches": batches,
        "steady_finish_se": _batch_se(done[inside], half_s, steady_width_s, steady_batches),
        "steady_batches": steady_batches,
        "sent_rate_se": _batch_se(sent, 0.0, sends_width_s, BATCHES),
        "plateau_floor_se": edge / (width_s * batches),
        "steady_floor_se": edge / (steady_width_s * steady_batches),
    }


def slo_tally(t: RecordTable, slos: Sequence[Slo]) -> tuple[tuple[int, int], ...]:
    """Per SLO ``(n, misses)`` measured from the scheduled send; see the module docstring."""
    ok = t.ok
    ttft = t.first_token_s - t.scheduled_s
    e2e = t.done_s - t.scheduled_s
    tokens = t.output_tokens
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(tokens > 1, (t.done_s - t.first_token_s) / (tokens - 1), np.nan)
    out = []
    for slo in slos:
        met = ok & requests_meet((slo,), ttft, e2e, tpot)
        out.append((len(t), int(len(t) - met.sum())))
    return tuple(out)


def slo_values(summary: LevelSummary, slo: Slo) -> float | None:
    """The level's value of ``slo``'s metric and percentile, in seconds."""
    dist = {"ttft": summary.ttft_s, "e2e": summary.e2e_s}.get(slo.metric)
    if dist is not None:
        return dist.get(slo.percentile)
    value_ms = (summary.tpot_ms if slo.metric == "tpot" else summary.itl_ms).get(slo.percentile)
    return None if value_ms is None else value_ms / 1000.0


def _slo_fields(
    summary: LevelSummary, t: RecordTable, slos: Sequence[Slo], end_s: float
) -> LevelSummary:
    """``summary`` with ``slo_met`` and ``goodput_rps`` (see ``qpsweep.config.slo``)."""
    values = [slo_values(summary, slo) for slo in slos]
    met = (
        None
        if any(v is None for v in values)
        else all(v is not None and v <= slo.limit_s for v, slo in zip(values, slos, strict=True))
    )
    ok = t.ok
    first_token_s, sent_s, done_s = t.first_token_s[ok], t.sent_s[ok], t.done_s[ok]
    tokens = t.output_tokens[ok]
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN: no first token, or no TPOT
        tpot = np.where(tokens > 1, (done_s - first_token_s) / (tokens - 1), np.nan)
    good = int(requests_meet(slos, first_token_s - sent_s, done_s - sent_s, tpot).sum())
    goodput = good / end_s if end_s > 0 else 0.0
    return dataclasses.replace(
        summary, slo_met=met, goodput_rps=goodput, slo_tally=slo_tally(t, slos)
    )


def _errors(t: RecordTable) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """``(errors, errors_by_kind)``: labels and kinds of the failures, most common first."""
    failed = ~t.ok
    groups = first_counts(t.error_kind.codes[failed], t.status[failed])
    names = [*t.error_kind.names, ""]  # code -1 (no kind) never occurs among failures

    def label(key: tuple[int, int]) -> str:
        return error_label(names[key[0]], None if key[1] == NO_INT else key[1])

    by_kind = most_common(groups, lambda key: names[key[0]] or "")
    return most_common(groups, label), by_kind


def summarize_level(
    info: LevelInfo,
    records: Records,
    percentiles: Iterable[float],
    slos: Sequence[Slo] = (),
    service_s: float | None = None,
) -> LevelSummary:
    """Summary of one level from its records (any order); SLO fields when ``slos`` given;
    ``service_s`` sets the plateau's batch length (module docstring; ``None``: BATCHES)."""
    t = as_table(records)
    ps = sorted(set(BASE_PERCENTILES) | set(percentiles))
    ok = t.ok
    n, n_ok = len(t), int(ok.sum())
    first = ok & ~np.isnan(t.first_token_s)
    multi = first & (t.output_tokens > 1)
    tpot = (t.done_s[multi] - t.first_token_s[multi]) / (t.output_tokens[multi] - 1) * 1000.0
    e2e = t.done_s[ok] - t.sent_s[ok]
    tokens = t.output_tokens[ok]
    tok_s = tokens[e2e > 0] / e2e[e2e > 0]
    window_s = max(info.arrival_window_s, float(t.sent_s.max())) if n else info.arrival_window_s
    duration_s = info.duration_s or window_s
    end_s = float(t.done_s.max()) if n else 0.0
    offered = n / window_s if window_s > 0 else 0.0
    completion_ratio, queue_growth = steady_signals(t, window_s, offered)
    retried = t.attempts > 1
    n_retried = int(retried.sum())
    errors, errors_by_kind = _errors(t)
    sources = [*t.token_counted_by.names, ""]
    counted = first_counts(t.token_counted_by.codes[ok])
    inputs = t.input_tokens[ok]
    summary = LevelSummary(
        index=info.index,
        qps_target=info.qps_target,
        duration_s=duration_s,
        arrival_window_s=window_s,
        n_scheduled=info.n_scheduled,
        scheduled_qps=info.n_scheduled / duration_s if duration_s > 0 else 0.0,
        n_sent=n,
        n_ok=n_ok,
        offered_qps=offered,
        achieved_qps=n_ok / end_s if end_s > 0 else 0.0,
        success_pct=100.0 * n_ok / n if n else 0.0,
        error_rate=(n - n_ok) / n if n else 0.0,
        first_try_error_rate=(n_retried + int((~retried & ~ok).sum())) / n if n else 0.0,
        ttft_s=Percentiles.of(t.first_token_s[first] - t.sent_s[first], ps, scratch=True),
        e2e_s=Percentiles.of(e2e, ps, scratch=True),
        itl_ms=Percentiles.of_sorted(*t.itl_ms_sorted, ps),
        tpot_ms=Percentiles.of(tpot, ps, scratch=True),
        tokens_per_sec=Percentiles.of(tok_s, ps, scratch=True),
        send_lag_ms=Percentiles.of((t.sent_s - t.scheduled_s) * 1000.0, ps, scratch=True),
        ttft_from_schedule_s=Percentiles.of(
            t.first_token_s[first] - t.scheduled_s[first], ps, scratch=True
        ),
        e2e_from_schedule_s=Percentiles.of(t.done_s[ok] - t.scheduled_s[ok], ps, scratch=True),
        completion_ratio=completion_ratio,
        queue_growth=queue_growth,
        output_tok_per_s=int(tokens.sum()) / end_s if end_s > 0 else 0.0,
        errors=errors,
        errors_by_kind=errors_by_kind,
        token_counted_by=tuple(sorted(most_common(counted, lambda k: sources[k[0]]))),
        input_tokens_mean=_mean(inputs[inputs != NO_INT]),
        output_tokens_mean=_mean(tokens),
        n_retried=n_retried,
        n_retries=int((t.attempts[retried] - 1).sum()),
        n_late_sends=int(((t.sent_s - t.scheduled_s) * 1000.0 > LATE_SEND_MS).sum()),
        sessions=session_summary(t, info.sessions, window_s, ps),
        **steady_counts(t, window_s, service_s),  # type: ignore[arg-type]
        **reasoning_and_cache(t, ps),  # type: ignore[arg-type]
    )
    return _slo_fields(summary, t, slos, end_s) if slos else summary


def reasoning_and_cache(t: RecordTable, ps: Sequence[float]) -> dict[str, object]:
    """``n_reasoning``, ``ttft_visible_s``, ``reasoning_tokens_mean`` and ``cached_share`` of
    one level (see the module docstring); the defaults' values when there is nothing to say."""
    ok = t.ok
    out: dict[str, object] = {}
    reasoned = ok & ~np.isnan(t.first_reasoning_s)
    n_reasoning = int(reasoned.sum())
    if n_reasoning:
        visible = ok & ~np.isnan(t.visible_s)
        waits = t.visible_s[visible] - t.sent_s[visible]
        out |= {"n_reasoning": n_reasoning, "ttft_visible_s": Percentiles.of(waits, ps)}
    counted = ok & (t.reasoning_tokens != NO_INT)
    if counted.any():
        out["reasoning_tokens_mean"] = float(t.reasoning_tokens[counted].mean())
    cached = ok & (t.cached_tokens != NO_INT) & (t.input_tokens != NO_INT)
    prompt_total = int(t.input_tokens[cached].sum())
    if prompt_total > 0:
        out["cached_share"] = int(t.cached_tokens[cached].sum()) / prompt_total
    return out


def latency_samples(records: Records) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per level: the TTFT and E2E (seconds) of each successful request, for resampling."""
    out = {}
    for level, t in as_table(records).levels.items():
        keep = t.ok & ~np.isnan(t.first_token_s)
        if keep.any():
            sent_s = t.sent_s[keep]
            out[level] = (t.first_token_s[keep] - sent_s, t.done_s[keep] - sent_s)
    return out


def summarize_levels(
    infos: Sequence[LevelInfo],
    records: Records,
    percentiles: Iterable[float],
    slos: Sequence[Slo] = (),
) -> list[LevelSummary]:
    """One summary per level in ``infos`` order; records are grouped by their ``level``."""
    by_level = as_table(records).levels
    none = RecordTable.from_records(())
    ps = tuple(percentiles)
    service_s = lightest_service_s(infos, by_level)
    return [
        summarize_level(info, by_level.get(info.index, none), ps, slos, service_s) for info in infos
    ]


def lightest_service_s(
    infos: Sequence[LevelInfo], by_level: dict[int, RecordTable]
) -> float | None:
    """The median E2E of the successes of the lowest-target level that has any."""
    for info in sorted(infos, key=lambda i: (i.qps_target, i.index)):
        t = by_level.get(info.index)
        if t is not None and t.ok.any():
            return float(np.median(t.done_s[t.ok] - t.sent_s[t.ok]))
    return None
