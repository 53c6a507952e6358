"""How one level's schedule is shared between processes and machines (pure).

A level's arrivals are numbered ``k = 0, 1, ...`` in schedule order.  Split into ``count``
parts, part ``index`` sends the arrivals with ``k % count == index``: every ``count``-th
arrival, starting at its own index.  Each request keeps its number ``k`` as ``seq``, so the
parts' records merge back into the level without collisions, and the union of the parts is
exactly the schedule one process would have sent.

``--shard I/N`` and ``--workers W`` compose into one split of ``N * W`` parts: worker ``w`` of
shard ``i`` is part ``i + w * N``, because shard ``i`` sends ``k = i + j * N`` and its worker
``w`` takes the ``j`` with ``j % W == w``.

All parts anchor to one start time given as a Unix epoch (``--start-at``): a wall-clock
instant means the same in every process, and on every machine whose clock is synchronized.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from qpsweep.errors import ConfigError


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` (``0 <= index < count``)."""

    index: int = 0
    count: int = 1

    def offsets(self, offsets_s: Sequence[float]) -> list[float]:
        """This part's arrival offsets: ``offsets_s[index::count]``."""
        return list(offsets_s[self.index :: self.count])

    def worker(self, worker: int, n_workers: int) -> Part:
        """Worker ``worker`` of ``n_workers`` inside this part, as a part of the whole."""
        return Part(self.index + worker * self.count, self.count * n_workers)


@dataclass(frozen=True)
class Shard:
    """``--shard I/N --start-at EPOCH``: this process sends part ``I`` of ``N``, with level 0
    starting at ``start_at_epoch`` (Unix seconds)."""

    index: int
    count: int
    start_at_epoch: float

    @property
    def part(self) -> Part:
        """The shard as a part of the level's schedule."""
        return Part(self.index, self.count)


def level_start_epoch(shard: Shard, level: int, duration_s: float, drain_s: float) -> float:
    """When level ``level`` of a shard starts: ``start_at + level * (duration_s + drain_s)``.

    Shards never talk to each other, so their levels follow one fixed timeline instead of
    starting when the previous level has drained: each slot is the arrival window plus the
    longest a request can take (``drain_s``), the same bound one process waits at most.
    """
    return shard.start_at_epoch + level * (duration_s + drain_s)


def parse_shard(text: str, start_at: str | None) -> Shard:
    """``--shard I/N`` and ``--start-at EPOCH`` (Unix seconds, or an ISO 8601 time with a
    time zone) as a ``Shard``; ``ConfigError`` naming the flag when either is wrong."""
    index_text, slash, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = -1
    if not slash or not 0 <= index < count:
        raise ConfigError(f"--shard: {text!r} must be I/N with 0 <= I < N, e.g. 0/4")
    if start_at is None:
        raise ConfigError("--shard needs --start-at EPOCH: the time at which all shards start")
    return Shard(index, count, parse_start_at(start_at))


def parse_start_at(text: str) -> float:
    """``--start-at``: Unix seconds (``1795000000``) or ISO 8601 with a zone
    (``2026-11-24T12:00:00Z``); returns Unix seconds."""
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ConfigError(
                f"--start-at: {text!r} is neither Unix seconds nor an ISO 8601 time with a "
                "time zone (e.g. 2026-11-24T12:00:00Z)"
            ) from None
        value = when.timestamp()
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--start-at: {text!r} must be a positive Unix time")
    return value


def parse_workers(text: str) -> int:
    """``--workers N`` (N >= 1) or ``auto``: the usable cores minus one (at least 1)."""
    if text.strip().lower() == "auto":
        return max(1, usable_cores() - 1)
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--workers: {text!r} must be a whole number >= 1, or auto")
    return n


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
