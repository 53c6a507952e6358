"""One level of open-loop load.

``LevelAttack.schedule(t0)`` walks the precomputed offsets: it sleeps until ``t0 + offset``
(absolute times, so lateness never accumulates) and sends the request right there, in the
same step (``Sender.fetch`` writes it before returning when a connection is idle); reading
its response is a task nobody waits for.  A slow or stuck server therefore never delays the
next send; the only thing that can is the generator itself, which ``send_lag`` in each record
exposes.  When it is late it still yields to the event loop once per send, so that finished
responses hand their connections back before the next send instead of every overdue send
opening a new one.

The loop's timers have millisecond resolution (uvloop, like libuv, counts whole
milliseconds), so a send leaves up to about 1.5 ms before or after its instant even on an
idle loop; ``send_lag`` records it as it was, early sends with a negative lag.  A precise timer
(a Linux timerfd armed per send) was tried and dropped: it woke the process for every send,
and on this project's virtual machine that cost about a quarter more CPU per request (median
288 against 224 µs at 2,000 req/s), which made the lag's tail worse, not better.

``drain(timeout_s)`` waits for the requests in flight; ``cancel_rest()`` cancels what is
left, and each cancelled request is still recorded (``error_kind="interrupted"``), so every
request that was sent ends up in exactly one record.  A request whose task is cancelled before
it first ran was sent all the same (``fetch`` already wrote it, or had begun to), so the
record of a cancelled request is written by the task's done callback (``_settled``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from time import perf_counter
from typing import Any

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import Sender, Trace
from qpsweep.records.record import RequestRecord

Sink = Callable[[RequestRecord], None]
_Reading = Coroutine[Any, Any, RequestRecord]


class LevelAttack:
    """The requests of one level: ``offsets_s[k]`` sends ``prompts[k]`` as request number
    ``first_seq + k * seq_step`` of the level (a worker or shard that sends every N-th
    arrival keeps the level's numbering: see ``qpsweep.config.shards``)."""

    lead_s = 0.0  # how far ahead of its start the sweep may hand the level over

    def __init__(
        self,
        index: int,
        qps: float,
        offsets_s: Sequence[float],
        prompts: Sequence[Prompt],
        sender: Sender,
        sink: Sink,
        first_seq: int = 0,
        seq_step: int = 1,
    ) -> None:
        self.index, self.qps = index, qps
        self._offsets_s, self._prompts = offsets_s, prompts
        self._sender, self._sink = sender, sink
        self._first_seq, self._seq_step = first_seq, seq_step
        self.in_flight: dict[asyncio.Task[None], tuple[Trace, _Reading]] = {}
        self.n_sent = 0
        self.t0 = 0.0

    async def schedule(self, t0: float) -> None:
        """Start every request at ``t0 + offset`` (``perf_counter`` clock); never awaits one."""
        self.t0 = t0
        for k, offset in enumerate(self._offsets_s):
            delay = t0 + offset - perf_counter()
            # late or not, yield to the loop: responses that arrived free their connections
            # for the next sends instead of each overdue send opening a new one
            await asyncio.sleep(delay if delay > 0 else 0)
            self._send(k, offset)

    def _send(self, k: int, offset: float) -> None:
        trace = Trace(
            self.index, self.qps, self._first_seq + k * self._seq_step, self._prompts[k].id, offset
        )
        reading = self._sender.fetch(trace, self._prompts[k], self.t0)
        self.n_sent += 1
        task = asyncio.get_running_loop().create_task(self._finish(trace, reading))
        self.in_flight[task] = (trace, reading)
        task.add_done_callback(self._settled)

    async def _finish(self, trace: Trace, reading: _Reading) -> None:
        try:
            record = await reading
        except asyncio.CancelledError:
            raise  # recorded by _settled
        except Exception as err:  # a bug must not lose the request: record it, keep going
            message = f"internal error: {type(err).__name__}: {err}"[:200]
            record = trace.finish(perf_counter() - self.t0, "protocol", message)
        self._sink(record)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """A request's task ended; a cancelled one (even before it ran) is recorded here."""
        trace, reading = self.in_flight.pop(task)
        if task.cancelled():
            reading.close()  # no-op once it ran; else it never will (its socket times out)
            done_s = perf_counter() - self.t0
            self._sink(trace.finish(done_s, "interrupted", "cancelled: the run was interrupted"))

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the requests in flight to finish."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout_s)

    async def cancel_rest(self) -> None:
        """Cancel the requests still in flight and wait until each has been recorded."""
        pending = set(self.in_flight)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
