"""``--workers N``: each level's sends spread over N worker processes
(``qpsweep.load.worker_process``).

The main process still decides everything (levels, stop rules, the adaptive search, the
verdict, Ctrl-C) and sends nothing itself.  ``WorkerPool`` starts the processes and hands out
one level at a time; worker ``w`` of ``N`` takes the arrivals ``k`` with ``k % N == w``
(``qpsweep.config.shards``), all anchored to one start ``START_LEAD_S`` after the hand-over.
``RemoteLevel`` is that level as the sweep drives it: ``schedule``, ``drain`` and
``cancel_rest``, like ``LevelAttack``.  The workers' records go to ``parts/``, joined into
``requests.jsonl`` at the end of the sweep (``qpsweep.records.parts``).  A worker that ends in the
middle of a sweep is reported (``failure``) and the sweep stops.  A worker whose part file
cannot be written reports it: ``on_loss`` is called with the first such error (``lost_error``),
and ``n_lost`` adds up the records the workers could not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import multiprocessing.process
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from time import perf_counter

from qpsweep.config.shards import Part
from qpsweep.datasets.prompts import Prompt
from qpsweep.errors import QpsweepError
from qpsweep.http.client import ClientSettings
from qpsweep.load.worker_process import LevelOrder, Message, read_messages, worker_main

READY_TIMEOUT_S = 120.0
ABORT_WAIT_S = 30.0
START_LEAD_S = 0.25  # between handing out a level and its start: the orders must arrive first

Progress = Callable[[int, int, int], None]


class WorkerError(QpsweepError):
    """A worker process could not start, or ended in the middle of a sweep."""


class WorkerPool:
    """N worker processes for one sweep; ``level(...)`` hands out one level at a time."""

    def __init__(
        self,
        paths: Sequence[Path],
        settings: ClientSettings,
        prompts: Sequence[Prompt],
        order: list[int],
        shard: Part | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.shard = shard or Part()
        self.include_usage = True
        self.failure: str | None = None
        self.on_loss: Callable[[OSError], None] | None = None
        self.lost_error: OSError | None = None
        self._n_lost = [0] * len(paths)
        self._conns: list[Connection] = []
        self._procs: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._current: RemoteLevel | None = None
        self._ready: asyncio.Event | None = None
        self._n_ready = 0
        self._closing = False
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=worker_main,
                args=(theirs, settings, prompts, order, path),
                daemon=True,
                name=f"qpsweep-worker-{len(self._procs)}",
            )
            self._conns.append(mine)
            self._procs.append((proc, theirs))

    @property
    def n_lost(self) -> int:
        """Records the workers could not write to their part files (as of their last
        ``done``)."""
        return sum(self._n_lost)

    @property
    def size(self) -> int:
        """The number of worker processes."""
        return len(self._conns)

    async def start(self) -> None:
        """Start the processes and wait until each has its session open."""
        loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        for worker, (proc, theirs) in enumerate(self._procs):
            proc.start()
            theirs.close()
            read_messages(self._conns[worker], loop, functools.partial(self._dispatch, worker))
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise WorkerError(
                f"--workers: {self.size - self._n_ready} of {self.size} worker processes did "
                f"not start within {READY_TIMEOUT_S:g} s"
            ) from None
        if self.failure:
            raise WorkerError(f"--workers: {self.failure}")

    def level(
        self,
        index: int,
        qps: float,
        offsets_s: Sequence[float],
        drain_s: float,
        on_progress: Progress,
    ) -> RemoteLevel:
        """The level, as an object that ``_Sweep`` drives like a ``LevelAttack``."""
        self._current = RemoteLevel(self, index, qps, offsets_s, drain_s, on_progress)
        return self._current

    def broadcast(self, message: Message) -> None:
        """Send ``message`` to every worker still there."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(message)

    def order_level(self, worker: int, order: LevelOrder) -> None:
        with contextlib.suppress(OSError):
            self._conns[worker].send(("level", order))

    def _lost(self, worker: int) -> None:
        if self._closing:
            return
        proc = self._procs[worker][0]
        proc.join(1.0)
        self.failure = self.failure or (
            f"worker {worker} ended unexpectedly (exit code {proc.exitcode}); the requests "
            "it had in flight are not recorded"
        )
        if self._ready is not None:
            self._ready.set()
        if self._current is not None:
            self._current.lost(worker)

    def _dispatch(self, worker: int, message: Message | None) -> None:
        if message is None:
            self._lost(worker)
            return
        kind = message[0]
        if kind == "lost":
            if self.lost_error is None:
                error = self.lost_error = OSError(message[1], message[2])
                if self.on_loss is not None:
                    self.on_loss(error)
        elif kind == "ready":
            self._n_ready += 1
            if self._n_ready == self.size and self._ready is not None:
                self._ready.set()
        elif self._current is not None:
            if kind == "done":
                self.include_usage = self.include_usage and bool(message[4])
                self._n_lost[worker] = int(message[5])
            self._current.update(worker, kind, message[1:4])

    async def close(self) -> None:
        """Ask the workers to quit and wait for them (ended by force after a few seconds)."""
        loop = asyncio.get_running_loop()
        self._closing = True
        self.broadcast(("quit",))
        for proc, _ in self._procs:
            if proc.pid is None:
                continue
            await loop.run_in_executor(None, proc.join, 10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)
        for conn in self._conns:
            conn.close()


class RemoteLevel:
    """One level sent by the pool: ``schedule``, ``drain`` and ``cancel_rest`` as in
    ``LevelAttack``; ``n_sent``, ``n_ok`` and ``n_failed`` add up the workers' reports."""

    lead_s = START_LEAD_S

    def __init__(
        self,
        pool: WorkerPool,
        index: int,
        qps: float,
        offsets_s: Sequence[float],
        drain_s: float,
        on_progress: Progress,
    ) -> None:
        self.index, self.qps = index, qps
        self._pool, self._offsets_s, self._drain_s = pool, offsets_s, drain_s
        self._on_progress = on_progress
        self._counts = [[0, 0, 0] for _ in range(pool.size)]  # sent, ok, failed
        self._scheduled: set[int] = set()
        self._done: set[int] = set()
        self._all_scheduled = asyncio.Event()
        self._all_done = asyncio.Event()
        self._stopped = False

    @property
    def n_sent(self) -> int:
        return sum(c[0] for c in self._counts)

    @property
    def sent_by_worker(self) -> list[int]:
        return [c[0] for c in self._counts]

    @property
    def n_ok(self) -> int:
        return sum(c[1] for c in self._counts)

    @property
    def n_failed(self) -> int:
        return sum(c[2] for c in self._counts)

    def update(self, worker: int, kind: str, counts: Sequence[int]) -> None:
        """A worker's report (``progress``, ``scheduled`` or ``done``)."""
        if kind == "scheduled":
            self._counts[worker][0] = counts[0]
            self._mark(self._scheduled, worker, self._all_scheduled)
            return
        self._counts[worker] = [int(c) for c in counts]
        if kind == "done":
            self._mark(self._scheduled, worker, self._all_scheduled)
            self._mark(self._done, worker, self._all_done)
        self._on_progress(self.n_sent, self.n_ok, self.n_failed)

    def lost(self, worker: int) -> None:
        """Worker ``worker`` is gone: stop waiting for it."""
        self._mark(self._scheduled, worker, self._all_scheduled)
        self._mark(self._done, worker, self._all_done)

    def _mark(self, which: set[int], worker: int, event: asyncio.Event) -> None:
        which.add(worker)
        if len(which) == self._pool.size:
            event.set()

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._pool.broadcast(("stop",))

    async def schedule(self, t0: float) -> None:
        """Hand each worker its part, all starting at ``t0`` (``perf_counter`` clock); return
        when every worker has sent its part.  Cancelled: the workers stop sending."""
        start_epoch = time.time() + (t0 - perf_counter())
        pool = self._pool
        for worker in range(pool.size):
            part = pool.shard.worker(worker, pool.size)
            mine = part.offsets(self._offsets_s)
            order = LevelOrder(self.index, self.qps, mine, part, start_epoch, self._drain_s)
            pool.order_level(worker, order)
        try:
            await self._all_scheduled.wait()
        except asyncio.CancelledError:
            self._stop()
            raise

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for every worker to finish the level."""
        try:
            await asyncio.wait_for(self._all_done.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        except asyncio.CancelledError:
            self._stop()
            raise

    async def cancel_rest(self) -> None:
        """Have the workers cancel what is still in flight, and wait until they report."""
        if self._all_done.is_set():
            return
        self._pool.broadcast(("abort",))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._all_done.wait(), ABORT_WAIT_S)
