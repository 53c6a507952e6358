"""A worker process of ``--workers N`` (the main process's side is ``qpsweep.load.worker_pool``).

The process holds one HTTP session for the whole sweep and sends the levels it is ordered to,
each anchored to a start time given as a Unix epoch that it turns into its own
``perf_counter`` time; it appends its records to its part file, flushed per record.

Messages, over its pipe to the main process:

* from the main process: ``("level", LevelOrder)``; ``("stop",)`` (the first Ctrl-C: send no
  more, wait up to ``INTERRUPT_DRAIN_S`` for what is in flight); ``("abort",)`` (cancel what is
  in flight, each recorded as ``interrupted``); ``("quit",)``.
* to the main process: ``("ready",)`` once its session is open; ``("progress", sent, ok,
  failed)`` every ``PROGRESS_S``; ``("scheduled", sent)`` when its share of the level has been
  sent; ``("lost", errno, strerror)`` when a record could not be written to its part file
  (a full disk, the file-size limit: from then on its records are only counted, see
  ``RecordWriter``); ``("done", sent, ok, failed, include_usage, n_lost)`` when it has ended
  (``n_lost``: the records its part file has lost so far).

It ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the main process alone
decides what it means).  When its pipe closes (the main process died) it aborts the level and
exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from time import perf_counter
from typing import Any

from qpsweep.config.shards import Part
from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender
from qpsweep.load.aioloop import run_loop
from qpsweep.load.attack import LevelAttack
from qpsweep.load.interrupts import INTERRUPT_DRAIN_S
from qpsweep.records.record import RecordWriter, RequestRecord

PROGRESS_S = 0.5

Message = tuple[Any, ...]


@dataclass(frozen=True)
class LevelOrder:
    """One worker's share of a level: send ``offsets_s`` (seconds after ``start_epoch``) as
    requests ``part.index + k * part.count``; give up waiting after ``drain_s``."""

    index: int
    qps: float
    offsets_s: Sequence[float]
    part: Part
    start_epoch: float
    drain_s: float


def read_messages(
    conn: Connection, loop: asyncio.AbstractEventLoop, deliver: Callable[[Message | None], None]
) -> threading.Thread:
    """Read ``conn`` in a thread and hand each message, then ``None`` at its end, to
    ``deliver`` on ``loop``'s thread.

    A thread, not ``loop.add_reader``: an event loop's reader makes the pipe non-blocking
    (libuv does), and ``multiprocessing`` sends a message over 16 KiB as two writes, so a
    reader woken between them finds half a message and fails.  Seen on a loaded machine: an
    order of 2,500 offsets (22 KB) ended a worker, twice in a row; blocking reads cannot
    break off."""

    def run() -> None:
        while True:
            try:
                message: Message | None = conn.recv()
            except (EOFError, OSError):
                message = None
            try:
                loop.call_soon_threadsafe(deliver, message)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return
            if message is None:
                return

    thread = threading.Thread(target=run, name="qpsweep-pipe-reader", daemon=True)
    thread.start()
    return thread


class _Worker:
    """The worker process's side: one session, one part file, levels as they are ordered."""

    def __init__(
        self,
        conn: Connection,
        settings: ClientSettings,
        prompts: Sequence[Prompt],
        order: list[int],
    ) -> None:
        self.conn, self.settings = conn, settings
        self.prompts, self.order = prompts, order
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()

    def send(self, message: Message) -> None:
        with contextlib.suppress(OSError):  # the main process is gone: its EOF aborts us
            self.conn.send(message)

    def _deliver(self, message: Message | None) -> None:
        if message is None:  # the main process is gone
            self.inbox.put_nowait(("abort",))
            self.inbox.put_nowait(("quit",))
        else:
            self.inbox.put_nowait(message)

    async def serve(self, path: Path) -> None:
        read_messages(self.conn, asyncio.get_running_loop(), self._deliver)
        writer = RecordWriter(path, on_loss=self._lost)
        try:
            with Sender(self.settings) as sender:
                self.send(("ready",))
                while True:
                    message = await self.inbox.get()
                    if message[0] == "quit":
                        return
                    if message[0] == "level":
                        await self._level(message[1], sender, writer)
        finally:
            writer.close()

    def _lost(self, error: OSError) -> None:
        """The part file failed: the main process stops the level (``("stop",)``)."""
        self.send(("lost", error.errno, error.strerror or str(error)))

    async def _level(self, order: LevelOrder, sender: Sender, writer: RecordWriter) -> None:
        counts = [0, 0]  # ok, failed

        def sink(record: RequestRecord) -> None:
            writer.write(record)
            counts[0 if record.ok else 1] += 1

        size, part = len(self.prompts), order.part
        prompts = [
            self.prompts[self.order[(part.index + k * part.count) % size]]
            for k in range(len(order.offsets_s))
        ]
        attack = LevelAttack(
            order.index, order.qps, order.offsets_s, prompts, sender, sink, part.index, part.count
        )
        gc.collect()
        gc.freeze()
        t0 = perf_counter() + (order.start_epoch - time.time())
        reporter = asyncio.ensure_future(self._report(attack, counts))
        try:
            message = await self._until(attack.schedule(t0))
            self.send(("scheduled", attack.n_sent))
            if message is None:
                message = await self._until(attack.drain(order.drain_s))
            if message is not None and message[0] == "stop":
                await self._until(attack.drain(INTERRUPT_DRAIN_S))
        finally:
            await attack.cancel_rest()
            reporter.cancel()
            gc.unfreeze()
        include_usage = sender.shape.include_usage
        self.send(("done", attack.n_sent, counts[0], counts[1], include_usage, writer.n_lost))

    async def _until(self, coro: Coroutine[Any, Any, None]) -> Message | None:
        """Run ``coro`` until it ends (``None``) or a message comes first (it is cancelled,
        and the message returned)."""
        task = asyncio.ensure_future(coro)
        getter = asyncio.ensure_future(self.inbox.get())
        await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return getter.result()
        getter.cancel()
        task.result()
        return None

    async def _report(self, attack: LevelAttack, counts: list[int]) -> None:
        while True:
            await asyncio.sleep(PROGRESS_S)
            self.send(("progress", attack.n_sent, counts[0], counts[1]))


def worker_main(
    conn: Connection,
    settings: ClientSettings,
    prompts: Sequence[Prompt],
    order: list[int],
    path: Path,
) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_loop(_Worker(conn, settings, prompts, order).serve(path))
