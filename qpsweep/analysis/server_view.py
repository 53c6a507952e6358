"""The server's view of each level beside qpsweep's, from ``server_metrics.jsonl`` (pure).

``detect_presets``: the presets (``qpsweep.config.metrics_presets``) at least one of whose
metric names some sample carries.  ``server_view`` then gives, per level, each preset gauge's
mean, max and last value over the level's samples (those tagged with the level; the first
candidate name a sample carries is used), each counter hit rate (Δhits / Δqueries between
the level's first and last sample carrying both), and the queue check below.

Queue check (a second client or a proxy).  For each scrape ``i`` of a level, with the server's
running + waiting ``S_i`` and ``t_i`` its ``level_t_s``, let ``C_i`` be qpsweep's own in-flight
count (requests of the level with ``sent_s <= t < done_s``) at its highest over
``[t_i - WINDOW_S, t_i + scrape_s_i + WINDOW_S]``.  An honest single client never has ``S_i >
C_i`` for long: every request the server counts was sent by qpsweep and not yet finished in
its view when the gauge was set, and servers set these gauges at most about a second late
(SGLang logs them every 40 decode steps, vLLM every engine step, TGI on batch changes,
llama.cpp when ``/metrics`` is read); the window absorbs that lag, the scrape's own duration
and the network.  Scrape ``i`` is *in excess* when ``S_i > C_i + margin_i`` with ``margin_i =
max(MARGIN, MARGIN_FRACTION * C_i)`` (one request, or 10 %).  A level *disagrees* when it has at
least ``MIN_SAMPLES`` scrapes carrying both gauges, at least ``EXCESS_SHARE`` of them are in
excess, and the mean of ``S`` exceeds the mean of ``C`` by the margin of that mean.  A lag
longer than the window spoils at most the scrapes near a level's edges (a few of ten or more),
which the share rule tolerates.  Requests qpsweep gave up on (timeouts, Ctrl-C) that the server
keeps running also count on the server's side: the warning says how many the level had.  The
check is skipped for one shard of a run (the other shards send too); a merged run has every
shard's records and is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from qpsweep.config.metrics_presets import PRESETS, Preset
from qpsweep.records.table import RecordTable

FloatArray = npt.NDArray[np.float64]
WINDOW_S = 1.0
MARGIN = 1.0
MARGIN_FRACTION = 0.1
MIN_SAMPLES = 5
EXCESS_SHARE = 0.5
GAVE_UP = ("timeout_connect", "timeout_ttft", "timeout_total", "interrupted")


@dataclass(frozen=True)
class QueueCheck:
    """One level's queue check (see the module doc): ``n`` scrapes, the means of ``S`` and of
    ``C`` (``client_mean``), the client's mean count at the scrape instants themselves
    (``client_at_mean``), the share of scrapes in excess and the verdict."""

    n: int
    server_mean: float
    client_mean: float
    client_at_mean: float
    excess_share: float
    disagrees: bool
    gave_up: int = 0

    def as_json(self) -> dict[str, Any]:
        """The check as written in the results JSON (means to 3 decimals)."""
        return {
            "n": self.n,
            "server_running_waiting_mean": round(self.server_mean, 3),
            "client_in_flight_window_max_mean": round(self.client_mean, 3),
            "client_in_flight_mean": round(self.client_at_mean, 3),
            "excess_share": round(self.excess_share, 3),
            "disagrees": self.disagrees,
        }


@dataclass(frozen=True)
class LevelView:
    """One level as the server saw it: ``gauges`` key -> ``{"name", "mean", "max", "last",
    "n"}``, ``hit_rates`` key -> rate (``None`` when no query was counted), the queue check,
    and ``t0_s``, the level's start on the scraper's clock (``t_s - level_t_s``)."""

    t0_s: float
    gauges: dict[str, dict[str, Any]] = field(default_factory=dict)
    hit_rates: dict[str, float | None] = field(default_factory=dict)
    queue: QueueCheck | None = None

    def as_json(self, presets: Sequence[str]) -> dict[str, Any]:
        """The level's entry ``server_view`` of the results JSON."""
        return {
            "presets": list(presets),
            "gauges": self.gauges,
            "hit_rates": {k: None if v is None else round(v, 4) for k, v in self.hit_rates.items()},
            "queue": None if self.queue is None else self.queue.as_json(),
        }


@dataclass(frozen=True)
class ServerView:
    """The detected presets and each level's view (levels with at least one sample);
    ``scrapes`` counts the samples and ``failed`` those with an error."""

    presets: tuple[str, ...]
    levels: dict[int, LevelView]
    scrapes: int = 0
    failed: int = 0

    @property
    def preset_names(self) -> frozenset[str]:
        """Every metric name of the detected presets."""
        return frozenset(n for p in self.presets for n in PRESETS[p].names)

    @property
    def queue_preset(self) -> Preset | None:
        """The first detected preset with a queue (running and waiting gauges)."""
        return next((PRESETS[p] for p in self.presets if PRESETS[p].running), None)

    def warnings(self, qps: Mapping[int, float], expect_preset: bool = True) -> list[str]:
        """One line per level whose queue check disagrees (``qps`` names each level's rate),
        and, when ``expect_preset``, a note if no scrape carried a preset's metric."""
        out = []
        if expect_preset and not self.presets and self.scrapes:
            failed = f", {self.failed} of {self.scrapes} scrapes failed" if self.failed else ""
            out.append(
                f"NOTE: --metrics-url served none of the presets' metrics ({', '.join(PRESETS)})"
                f"{failed}: see server_metrics.jsonl."
            )
        for level, view in sorted(self.levels.items()):
            q = view.queue
            if q is None or not q.disagrees:
                continue
            gave_up = f"; {q.gave_up} requests timed out or were cut short" if q.gave_up else ""
            out.append(
                f"WARNING: level {level + 1} ({qps.get(level, math.nan):g} QPS): the server "
                f"reported {q.server_mean:.1f} requests running+waiting on average, qpsweep "
                f"had {q.client_at_mean:.1f} in flight ({q.client_mean:.1f} at most around a "
                f"scrape; {round(q.excess_share * q.n)} of {q.n} scrapes above that{gave_up}): "
                "another client or a proxy sends to this server too, and its figures are not "
                "qpsweep's load alone."
            )
        return out


def detect_presets(samples: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Presets (in ``PRESETS`` order) with at least one metric name in some sample."""
    seen: set[str] = set()
    for sample in samples:
        seen.update(sample.get("values") or {})
    return tuple(name for name, preset in PRESETS.items() if seen.intersection(preset.names))


def gauge_value(preset: Preset, key: str, values: Mapping[str, float]) -> float | None:
    """The value of ``preset``'s gauge ``key`` in one sample's ``values`` (first candidate
    name present), or ``None``."""
    for name in preset.gauge(key).names:
        if name in values:
            return float(values[name])
    return None


def in_flight_window_max(
    sent_s: FloatArray, done_s: FloatArray, lo_s: FloatArray, hi_s: FloatArray
) -> FloatArray:
    """For each ``k``: max over ``t`` in ``[lo_s[k], hi_s[k]]`` of ``#{i: sent_s[i] <= t <
    done_s[i]}`` (the count at ``lo_s[k]``, then after every event inside the window)."""
    times = np.concatenate([sent_s, done_s])
    steps = np.concatenate([np.ones(sent_s.size), -np.ones(done_s.size)])
    order = np.lexsort((steps, times))  # by time; at equal times, ends before sends
    t, count = times[order], np.cumsum(steps[order])
    out = np.zeros(lo_s.size)
    for k, (lo, hi) in enumerate(zip(lo_s.tolist(), hi_s.tolist(), strict=True)):
        first = int(np.searchsorted(t, lo, side="right"))
        last = int(np.searchsorted(t, hi, side="right"))
        at_lo = count[first - 1] if first else 0.0
        inside = count[first:last]
        out[k] = max(float(at_lo), float(inside.max()) if inside.size else 0.0)
    return out


def _queue_check(
    preset: Preset, samples: Sequence[Mapping[str, Any]], table: RecordTable | None
) -> QueueCheck | None:
    server, at_s, span_s = [], [], []
    for s in samples:
        running = gauge_value(preset, "running", s["values"])
        waiting = gauge_value(preset, "waiting", s["values"])
        if running is not None and waiting is not None and s.get("level_t_s") is not None:
            server.append(running + waiting)
            at_s.append(float(s["level_t_s"]))
            span_s.append(float(s.get("scrape_s") or 0.0))
    if not server:
        return None
    at = np.asarray(at_s)
    empty = np.zeros(0)
    sent = table.sent_s if table is not None else empty
    done = table.done_s if table is not None else empty
    window = in_flight_window_max(sent, done, at - WINDOW_S, at + np.asarray(span_s) + WINDOW_S)
    instant = in_flight_window_max(sent, done, at, at)
    srv = np.asarray(server)
    excess = srv > window + np.maximum(MARGIN, MARGIN_FRACTION * window)
    share = float(excess.mean())
    s_mean, c_mean = float(srv.mean()), float(window.mean())
    disagrees = (
        len(server) >= MIN_SAMPLES
        and share >= EXCESS_SHARE
        and s_mean > c_mean + max(MARGIN, MARGIN_FRACTION * c_mean)
    )
    gave_up = 0
    if table is not None:
        gave_up = int(sum(np.count_nonzero(table.error_kind.equals(kind)) for kind in GAVE_UP))
    return QueueCheck(len(server), s_mean, c_mean, float(instant.mean()), share, disagrees, gave_up)


def _hit_rate(
    pairs: tuple[tuple[str, str], ...], samples: Sequence[Mapping[str, Any]]
) -> tuple[bool, float | None]:
    """(whether some pair of counters was carried, Δhits / Δqueries between the first and last
    sample carrying the first such pair; ``None`` when no query was counted or a counter
    went back, as at a server restart)."""
    for hits, queries in pairs:
        both = [s["values"] for s in samples if hits in s["values"] and queries in s["values"]]
        if both:
            d_queries = both[-1][queries] - both[0][queries]
            d_hits = both[-1][hits] - both[0][hits]
            return True, d_hits / d_queries if d_queries > 0 and d_hits >= 0 else None
    return False, None


def server_view(
    samples: Sequence[Mapping[str, Any]],
    table: RecordTable | None,
    *,
    check_queue: bool = True,
) -> ServerView:
    """Per level: gauges, hit rates and (unless ``check_queue`` is false, as for one shard)
    the queue check against ``table``'s records of that level; see the module doc."""
    presets = detect_presets(samples)
    by_level: dict[int, list[Mapping[str, Any]]] = {}
    for s in samples:
        if isinstance(s.get("level"), int) and s.get("level_t_s") is not None:
            by_level.setdefault(s["level"], []).append(s)
    records = table.levels if table is not None else {}
    levels: dict[int, LevelView] = {}
    for level, group in sorted(by_level.items()):
        view = LevelView(t0_s=float(group[0]["t_s"]) - float(group[0]["level_t_s"]))
        for name in presets:
            preset = PRESETS[name]
            for gauge in preset.gauges:
                values = [gauge_value(preset, gauge.key, s["values"]) for s in group]
                got = [v for v in values if v is not None]
                if got:
                    used = next(n for n in gauge.names if any(n in s["values"] for s in group))
                    view.gauges[f"{name}.{gauge.key}"] = {
                        "name": used,
                        "mean": round(sum(got) / len(got), 4),
                        "max": max(got),
                        "last": got[-1],
                        "n": len(got),
                    }
            for rate in preset.hit_rates:
                carried, value = _hit_rate(rate.names, group)
                if carried:
                    view.hit_rates[f"{name}.{rate.key}"] = value
        levels[level] = view
    failed = sum(1 for s in samples if s.get("error"))
    out = ServerView(presets, levels, len(samples), failed)
    queue = out.queue_preset
    if queue is not None and check_queue:
        for level, group in sorted(by_level.items()):
            check = _queue_check(queue, group, records.get(level))
            levels[level] = LevelView(
                levels[level].t0_s, levels[level].gauges, levels[level].hit_rates, check
            )
    return out
