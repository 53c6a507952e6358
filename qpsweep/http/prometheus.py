"""Server-side gauges during a sweep: scrape a Prometheus text endpoint (vLLM's ``/metrics``).

``MetricsScraper`` runs as one background task on the load generator's event loop and never
disturbs it: each scrape is one GET with its own short timeout (``timeout_s``, default 0.8 s),
and the per-scrape work is a ``str.find`` per requested name plus one short regex per matching
line.  Scrapes follow absolute ticks ``start + k * interval_s``; a scrape still running at a
tick makes the scraper skip that tick (``skipped_ticks`` counts them) instead of bursting.

``METRICS_FILE`` is JSON Lines, one flushed line per scrape, in time order::

    {"t_s": 3.000112, "level": 1, "level_t_s": 0.5, "values": {"vllm:num_requests_running": 4.0},
     "error": null, "scrape_s": 0.0011}

* ``t_s``: when the scrape was sent, seconds since ``start`` (``perf_counter``);
* ``level`` / ``level_t_s``: the level last given to ``mark_level`` and seconds since its
  ``t0_perf``; both ``null`` before the first ``mark_level``;
* ``values``: metric name -> value for the requested names found (see ``parse_prometheus``);
* ``error``: ``null``, or a short message when the scrape failed (connection refused, HTTP
  status other than 200, timeout), then ``values`` is ``{}``; the scraper keeps ticking;
* ``scrape_s``: how long the scrape took (seconds), at most about ``timeout_s``.

``parse_prometheus``: a sample line is ``name[{labels}] value [timestamp]``; several label sets
of one name are summed (averaged for the names in ``mean_names``: fractions per engine or GPU,
see ``qpsweep.config.metrics_presets``); comments (``# HELP``/``# TYPE``), other names and
malformed lines are skipped without being counted; non-finite values (NaN, +Inf, -Inf) are
ignored, so a name with only such values, like a name not present, is absent from the result
(never 0).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from time import perf_counter
from typing import IO

import aiohttp

DEFAULT_GAUGES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:gpu_cache_usage_perc",
)
_MAX_ERROR_CHARS = 160
# After the name: optional {labels} (quoted values may hold '}' or escapes), the value, an
# optional timestamp, an optional OpenMetrics exemplar / comment.
_REST = re.compile(
    r'(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?[ \t]+([^ \t]+)(?:[ \t]+[^ \t#]+)?[ \t]*(?:#.*)?\r?'
)


def parse_prometheus(
    text: str, names: Collection[str], mean_names: Collection[str] = ()
) -> dict[str, float]:
    """Value of each of ``names`` in Prometheus text (label sets summed, or averaged for
    ``mean_names``); see the module doc."""
    out: dict[str, float] = {}
    for name in names:
        total, found, pos = 0.0, 0, text.find(name)
        while pos >= 0:
            start, end = pos, pos + len(name)
            pos = text.find(name, end)
            if start and text[start - 1] != "\n":
                continue  # inside another line (# HELP, a label value)
            if end < len(text) and text[end] not in "{ \t":
                continue  # a longer name with this prefix
            line_end = text.find("\n", end)
            match = _REST.fullmatch(text, end, len(text) if line_end < 0 else line_end)
            if match is None:
                continue  # malformed
            try:
                value = float(match.group(1))
            except ValueError:
                continue  # malformed value
            if math.isfinite(value):
                total, found = total + value, found + 1
        if found:
            out[name] = total / found if name in mean_names else total
    return out


class MetricsScraper:
    """Scrapes ``url`` every ``interval_s`` into ``path`` (JSON Lines, see the module doc).
    ``narrow``, when given, is called once, with the names found by the first scrape that
    finds any, and what it returns replaces ``names`` for the following scrapes.

    The file is opened (append) here, so an unwritable path fails before any traffic.  Always
    ``await stop()``: a bare ``task.cancel()`` that meets the scrape timeout can be turned into a
    timeout by aiohttp (aio-libs/aiohttp#5979) and leave the task running."""

    def __init__(
        self,
        url: str,
        names: Sequence[str],
        path: Path,
        interval_s: float = 1.0,
        timeout_s: float = 0.8,
        mean_names: Collection[str] = frozenset(),
        narrow: Callable[[Collection[str]], Sequence[str]] | None = None,
    ) -> None:
        if not interval_s > 0 or not timeout_s > 0:
            raise ValueError("interval_s and timeout_s must be > 0")
        self.url, self.names, self.path = url, tuple(names), path
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.mean_names = frozenset(mean_names)
        self._narrow = narrow
        self.skipped_ticks = 0
        self.write_error: str | None = None  # set when the file could not be written
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._level: int | None = None
        self._level_t0 = 0.0
        self._start = 0.0

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start scraping with ``session`` (the load generator's is fine: its pool is open)."""
        if self._task is not None:
            raise RuntimeError("MetricsScraper already started")
        self._start = perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._run(session))

    def mark_level(self, index: int, t0_perf: float) -> None:
        """Tag the following samples with level ``index``, which started at ``t0_perf``."""
        self._level, self._level_t0 = index, t0_perf

    async def stop(self) -> None:
        """Cancel the task (an in-flight scrape is abandoned), wait for it, close the file."""
        task, self._task = self._task, None
        self._stopping = True  # aiohttp can turn a cancel that meets its timeout into a timeout
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._file is not None:
            self._file.close()
            self._file = None

    async def _run(self, session: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        headers = {"Accept": "text/plain;version=0.0.4"}
        tick = 0
        while not self._stopping:
            delay_s = self._start + tick * self.interval_s - perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            sent = perf_counter()
            level, level_t0 = self._level, self._level_t0
            values: dict[str, float] = {}
            error: str | None = None
            try:
                async with session.get(self.url, timeout=timeout, headers=headers) as resp:
                    if resp.status == 200:
                        body = await resp.read()
                        text = body.decode("utf-8", "replace")
                        values = parse_prometheus(text, self.names, self.mean_names)
                        if values and self._narrow is not None:
                            self.names, self._narrow = tuple(self._narrow(values)), None
                    else:
                        error = f"HTTP {resp.status}"
            except (TimeoutError, asyncio.TimeoutError):
                error = f"timeout after {self.timeout_s:g} s"
            except Exception as exc:  # any client failure is data, never the caller's problem
                error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
            done = perf_counter()
            sample = {
                "t_s": round(sent - self._start, 6),
                "level": level,
                "level_t_s": None if level is None else round(sent - level_t0, 6),
                "values": values,
                "error": error,
                "scrape_s": round(done - sent, 6),
            }
            if not self._write(json.dumps(sample, separators=(",", ":"))):
                return
            next_tick = max(tick + 1, math.floor((done - self._start) / self.interval_s) + 1)
            self.skipped_ticks += next_tick - tick - 1
            tick = next_tick

    def _write(self, line: str) -> bool:
        try:
            assert self._file is not None
            self._file.write(line + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:
            self.write_error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
            return False
        return True
