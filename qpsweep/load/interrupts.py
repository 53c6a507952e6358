"""Signals during a sweep: SIGINT and SIGTERM, the first and the second.

``Signals`` is installed on the event loop while levels run: the first signal cancels the
current stage (scheduling or draining; the sweep then drains for ``INTERRUPT_DRAIN_S``), the
second cancels the whole sweep.  ``finish_writing_first`` covers the writing of the results
after the loop: a first signal is noted and the writing completes; a second raises
``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, TextIO

INTERRUPT_DRAIN_S = 10.0


class Signals:
    """First signal: cancel the current stage (scheduling or draining).  Second: abort."""

    def __init__(self, main: asyncio.Task[Any], console: TextIO) -> None:
        self.count = 0
        self.stage: asyncio.Task[Any] | None = None
        self._main, self._console = main, console

    def __call__(self) -> None:
        self.count += 1
        if self.count == 1:
            print(
                "\nInterrupted: no new requests; draining the ones in flight "
                f"(up to {INTERRUPT_DRAIN_S:g} s). Press Ctrl-C again to abort.",
                file=self._console,
            )
            if self.stage is not None:
                self.stage.cancel()
        else:
            print(
                "\nAborting: requests still in flight are recorded as interrupted.",
                file=self._console,
            )
            self._main.cancel()


@contextlib.contextmanager
def finish_writing_first(console: TextIO) -> Iterator[list[int]]:
    """While the results are written: a first SIGINT/SIGTERM is noted (the writing, a few
    seconds at most, completes, so no file is left half-made); a second stops at once with
    ``KeyboardInterrupt`` (``requests.jsonl`` and ``metadata.json`` are complete by then, and
    ``qpsweep report DIR`` rebuilds the rest).  Yields the list of signals received."""
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        print("Interrupted while writing the results: finishing them first", file=console)

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
