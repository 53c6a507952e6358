"""A whole sweep: warmup, then each QPS level in turn, with progress and Ctrl-C handling.

Per level: compute the schedule, run ``LevelAttack.schedule`` for ``duration_s`` of
arrivals, then wait for the requests in flight (up to ``timeout_s`` + a grace period).
Records are written as requests finish; ``metadata.json`` is rewritten at each level's
start and end.  Signals (SIGINT, SIGTERM): the first stops scheduling and drains in-flight
requests for up to ``INTERRUPT_DRAIN_S``; the second aborts, recording what was in flight
as ``interrupted``.  Either way the outputs are rebuilt and ``metadata.json`` says
``"interrupted": true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any, TextIO

from tqdm import tqdm

from qpsweep import __version__
from qpsweep.analyze import LevelSummary
from qpsweep.attack import LevelAttack
from qpsweep.client import ClientSettings, Sender, open_session, settings_for
from qpsweep.config import Scenario, Target
from qpsweep.dataset import Prompt, prompt_order
from qpsweep.record import RecordWriter, RequestRecord
from qpsweep.rundir import (
    METADATA_FILE,
    REQUESTS_FILE,
    RunFiles,
    create_run_dir,
    new_metadata,
    rebuild,
    write_json,
)
from qpsweep.schedule import arrival_offsets_s

INTERRUPT_DRAIN_S = 10.0
DEFAULT_FILES = RunFiles()
DRAIN_GRACE_S = 5.0


@dataclass(frozen=True)
class SweepResult:
    """What a finished (or interrupted) sweep hands back to the CLI."""

    run_dir: Path
    summaries: list[LevelSummary]
    table: str
    interrupted: bool


class _Signals:
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


class _Sweep:
    def __init__(
        self,
        settings: ClientSettings,
        scenario: Scenario,
        prompts: tuple[Prompt, ...],
        run_dir: Path,
        metadata: dict[str, Any],
        console: TextIO,
    ) -> None:
        self.settings, self.scenario, self.prompts = settings, scenario, prompts
        self.run_dir, self.metadata, self.console = run_dir, metadata, console
        self.signals: _Signals | None = None
        self.order = prompt_order(len(prompts), scenario.seed)

    @property
    def interrupted(self) -> bool:
        return self.signals is not None and self.signals.count > 0

    def _prompts_for(self, n: int) -> list[Prompt]:
        order, size = self.order, len(self.prompts)
        return [self.prompts[order[k % size]] for k in range(n)]

    async def _stage(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a stage that the first signal may cancel; the second signal propagates."""
        assert self.signals is not None
        task = asyncio.ensure_future(coro)
        self.signals.stage = task
        try:
            await task
        except asyncio.CancelledError:
            if self.signals.count != 1 or not task.cancelled():
                raise
        finally:
            self.signals.stage = None

    async def _attack(self, attack: LevelAttack, duration_s: float) -> float:
        """Schedule, then drain; returns the arrival window actually used (seconds)."""
        t0 = perf_counter()
        try:
            if not self.interrupted:
                await self._stage(attack.schedule(t0))
            window_s = duration_s if not self.interrupted else perf_counter() - t0
            if not self.interrupted:
                await self._stage(attack.drain(self.scenario.timeout_s + DRAIN_GRACE_S))
            if self.interrupted:
                await attack.drain(INTERRUPT_DRAIN_S)
        finally:
            await attack.cancel_rest()
        return window_s

    async def run(self, writer: RecordWriter) -> bool:
        """All levels; returns the server's support for ``stream_options`` (usage)."""
        main = asyncio.current_task()
        assert main is not None
        self.signals = _Signals(main, self.console)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, self.signals)
        try:
            async with open_session(self.settings) as session:
                sender = Sender(session, self.settings)
                if self.scenario.warmup:
                    await self._warmup(sender)
                for index, qps in enumerate(self.scenario.qps):
                    if self.interrupted:
                        break
                    await self._level(sender, writer, index, qps)
                return sender.shape.include_usage
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                    loop.remove_signal_handler(sig)

    async def _warmup(self, sender: Sender) -> None:
        n, qps = self.scenario.warmup, self.scenario.qps[0]
        offsets = arrival_offsets_s(
            qps,
            3 * n / qps + 10,
            self.scenario.arrival,
            self.scenario.burstiness,
            self.scenario.seed,
        )[:n]
        outcomes: list[bool] = []
        attack = LevelAttack(
            -1, qps, offsets.tolist(), self._prompts_for(n), sender, lambda r: outcomes.append(r.ok)
        )
        print(f"warmup: {n} requests at {qps:g} QPS (not counted)", file=self.console)
        await self._attack(attack, float(offsets[-1]) if n else 0.0)
        self.metadata["warmup"] = {"sent": len(outcomes), "ok": sum(outcomes)}
        print(f"warmup: {sum(outcomes)}/{len(outcomes)} succeeded", file=self.console)

    async def _level(self, sender: Sender, writer: RecordWriter, index: int, qps: float) -> None:
        sc = self.scenario
        offsets = arrival_offsets_s(qps, sc.duration_s, sc.arrival, sc.burstiness, sc.seed)
        entry: dict[str, Any] = {
            "index": index,
            "qps_target": qps,
            "duration_s": sc.duration_s,
            "n_scheduled": len(offsets),
            "started_at": time.time(),
            "arrival_window_s": None,
            "n_sent": None,
            "completed": False,
        }
        self.metadata["levels"].append(entry)
        write_json(self.run_dir / METADATA_FILE, self.metadata)
        bar = tqdm(
            total=len(offsets),
            desc=f"QPS {qps:g}",
            unit="req",
            file=self.console,
            disable=not _isatty(self.console),
            leave=True,
            dynamic_ncols=True,
        )
        counts = {"ok": 0, "failed": 0}

        def sink(record: RequestRecord) -> None:
            writer.write(record)
            counts["ok" if record.ok else "failed"] += 1
            bar.set_postfix_str(
                f"sent={attack.n_sent} ok={counts['ok']} failed={counts['failed']}", refresh=False
            )
            bar.update(1)

        attack = LevelAttack(
            index, qps, offsets.tolist(), self._prompts_for(len(offsets)), sender, sink
        )
        try:
            entry["arrival_window_s"] = await self._attack(attack, sc.duration_s)
            entry["completed"] = not self.interrupted
        finally:
            entry["n_sent"] = attack.n_sent
            bar.close()
            write_json(self.run_dir / METADATA_FILE, self.metadata)
        print(
            f"level {index + 1}/{len(sc.qps)} QPS {qps:g}: sent {attack.n_sent}, "
            f"ok {counts['ok']}, failed {counts['failed']}",
            file=self.console,
        )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _run(coro: Coroutine[Any, Any, bool]) -> bool:
    """``asyncio.run`` on uvloop where available, cancelling and awaiting leftover tasks."""
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - platforms without uvloop
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_sweep(
    target: Target,
    scenario: Scenario,
    prompts: tuple[Prompt, ...],
    *,
    dataset: str,
    dataset_sha256: str,
    argv: list[str],
    results_dir: Path,
    files: RunFiles = DEFAULT_FILES,
    console: TextIO | None = None,
    notes: dict[str, Any] | None = None,
) -> SweepResult:
    """Run every level against ``target`` into a new directory under ``results_dir``.

    Never raises for request failures; raises ``RunDirError`` before any traffic when the
    directory cannot be written.  ``notes`` are added to ``metadata.json`` as they are.  The
    outputs are rebuilt from the run directory at the end.
    """
    console = console or sys.stderr
    run_dir = create_run_dir(results_dir)
    metadata = new_metadata(target, scenario, dataset, dataset_sha256, len(prompts), argv, files)
    metadata.update(notes or {})
    print(
        f"qpsweep {__version__}: {len(scenario.qps)} levels x {scenario.duration_s:g} s against "
        f"{metadata['endpoint']} (model {target.model}); writing {run_dir}",
        file=console,
    )
    sweep = _Sweep(settings_for(target, scenario), scenario, prompts, run_dir, metadata, console)
    write_json(run_dir / METADATA_FILE, metadata)
    writer = RecordWriter(run_dir / REQUESTS_FILE)
    aborted = False
    try:
        metadata["include_usage"] = _run(sweep.run(writer))
    except asyncio.CancelledError:
        aborted = True
    finally:
        writer.close()
        interrupted = sweep.interrupted or aborted
        metadata.update(
            status="interrupted" if interrupted else "complete",
            interrupted=interrupted,
            finished_at=datetime.now().isoformat(),
        )
        write_json(run_dir / METADATA_FILE, metadata)
    summaries, table = rebuild(run_dir)
    return SweepResult(run_dir, summaries, table, interrupted)
