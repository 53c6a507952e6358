"""A whole sweep: warmup, then each QPS level in turn, with progress and Ctrl-C handling.

Per level: compute the schedule, run ``LevelAttack.schedule`` for ``duration_s`` of
arrivals, then wait for the requests in flight (up to ``timeout_s`` + a grace period; with
``--retries``, up to every try's timeout and the pauses between them).
Records are written as requests finish; ``metadata.json`` is rewritten at each level's
start and end.  Signals (SIGINT, SIGTERM): the first stops scheduling and drains in-flight
requests for up to ``INTERRUPT_DRAIN_S``; the second aborts, recording what was in flight
as ``interrupted``.  Either way the outputs are rebuilt and ``metadata.json`` says
``"interrupted": true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import shutil
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any, TextIO

import aiohttp
import numpy as np
from tqdm import tqdm

from qpsweep._version import __version__
from qpsweep.analysis.auto_search import level_duration_s, next_level, rerun_due
from qpsweep.analysis.estimate import share_bounds
from qpsweep.analysis.verdict import Verdict
from qpsweep.config.metrics_presets import MetricsPlan
from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.secrets import mask_url
from qpsweep.config.shards import Part, level_start_epoch
from qpsweep.datasets.prompts import Prompt, prompt_order
from qpsweep.datasets.sessions import Session, mean_turns, sessions_of
from qpsweep.datasets.traces import ArrivalTrace, TracePrompts
from qpsweep.errors import RecordsLost, RunDirError, WriteFailed
from qpsweep.http.client import (
    ClientSettings,
    Sender,
    open_session,
    request_deadline_s,
    settings_for,
)
from qpsweep.http.probe import probe_urls
from qpsweep.http.prometheus import MetricsScraper
from qpsweep.load.aioloop import run_loop
from qpsweep.load.attack import LevelAttack
from qpsweep.load.clock import measure_offset_s
from qpsweep.load.interrupts import INTERRUPT_DRAIN_S, Signals, finish_writing_first
from qpsweep.load.resources import expected_requests, file_limit_note
from qpsweep.load.schedule import arrival_offsets_s, trace_passes
from qpsweep.load.sessions import SessionLevel, session_starts_s, think_times_s
from qpsweep.load.worker_pool import RemoteLevel, WorkerPool
from qpsweep.output.rebuild import Analysis, analyze_run, rebuild
from qpsweep.records.metadata import (
    ClockInfo,
    LevelEntry,
    RunMetadata,
    TraceInfo,
    Warmup,
    new_metadata,
    write_metadata,
)
from qpsweep.records.parts import merge_parts, part_path
from qpsweep.records.record import RecordWriter, RequestRecord
from qpsweep.records.run_files import (
    REQUESTS_FILE,
    RunFiles,
    check_space,
    create_run_dir,
)
from qpsweep.records.server_metrics import METRICS_FILE

DEFAULT_FILES = RunFiles()
DRAIN_GRACE_S = 5.0
PROBE_REQUESTS = 5


@dataclass(frozen=True)
class SweepResult:
    """What a finished (or interrupted) sweep hands back to the CLI."""

    run_dir: Path
    analysis: Analysis
    table: str
    interrupted: bool


class _Sweep:
    def __init__(
        self,
        settings: ClientSettings,
        scenario: Scenario,
        prompts: Sequence[Prompt],
        run_dir: Path,
        metadata: RunMetadata,
        console: TextIO,
        trace: ArrivalTrace | None = None,
    ) -> None:
        self.settings, self.scenario, self.prompts = settings, scenario, prompts
        self.run_dir, self.metadata, self.console = run_dir, metadata, console
        self.signals: Signals | None = None
        self.records_lost = False
        self.write_failure: WriteFailed | None = None  # metadata.json could not be written
        self.scraper: MetricsScraper | None = None
        self.trace_s = None if trace is None else trace.times_s
        self.order = prompt_order(len(prompts), scenario.seed)
        if trace is not None and trace.has_lengths:  # a prompt per trace row, in its order
            self.order = np.arange(len(prompts))
        self.sessions = sessions_of(prompts, "dataset") if scenario.sessions else ()
        self.drain_s = request_deadline_s(settings) + DRAIN_GRACE_S  # the most a level drains
        self.pool: WorkerPool | None = None
        if scenario.workers > 1:
            paths = [part_path(run_dir, w) for w in range(scenario.workers)]
            shard = scenario.shard.part if scenario.shard else None
            self.pool = WorkerPool(paths, settings, prompts, self.order.tolist(), shard)
            self.pool.on_loss = self.lose_records

    @property
    def interrupted(self) -> bool:
        return self.signals is not None and self.signals.count > 0

    @property
    def halted(self) -> bool:
        """Interrupted, or a file of the run could not be written: no new request is sent."""
        return self.interrupted or self.records_lost or self.write_failure is not None

    def lose_records(self, error: OSError) -> None:
        """The records file failed (a ``RecordWriter``'s ``on_loss``): stop the level as a
        first Ctrl-C does (the requests in flight are drained, their records counted lost)."""
        self.records_lost = True
        reason = f"records could not be written ({error.strerror or error})"
        self.metadata = dataclasses.replace(self.metadata, stopped_early=reason)
        self._halt()

    def _halt(self) -> None:
        """Cancel the stage running (scheduling or draining), as a first Ctrl-C does."""
        stage = self.signals.stage if self.signals is not None else None
        if stage is not None:
            stage.cancel()

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
            halted = self.records_lost or self.write_failure is not None
            first = self.signals.count == 1 or (self.signals.count == 0 and halted)
            if not first or not task.cancelled():
                raise
        finally:
            self.signals.stage = None

    def _passes(self, qps: float, duration_s: float, n: int) -> float | None:
        """With ``--arrival trace``: how many passes of the trace the level makes (printed);
        else ``None``."""
        if self.trace_s is None:
            return None
        passes = trace_passes(self.trace_s, qps, duration_s)
        line = _passes_line(qps, self.scenario.trace_rate_qps, passes, n, duration_s)
        print(line, file=self.console)
        return passes

    def _session_starts(
        self, qps: float, duration_s: float
    ) -> tuple[float, np.ndarray, list[Session]]:
        """A ``--multi-turn`` level's session rate, start offsets and sessions (cycled in the
        seeded order, as prompts are); without sessions ``(0, the arrival offsets, [])``."""
        sc = self.scenario
        if sc.sessions is None:
            offsets = arrival_offsets_s(
                qps, duration_s, sc.arrival, sc.burstiness, sc.seed, self.trace_s
            )
            return 0.0, offsets, []
        session_qps, offsets = session_starts_s(
            qps, mean_turns(self.sessions), duration_s, sc.arrival, sc.burstiness, sc.seed
        )
        order, size = self.order, len(self.sessions)
        return session_qps, offsets, [self.sessions[order[k % size]] for k in range(len(offsets))]

    def _start(self, attack: LevelAttack | RemoteLevel | SessionLevel) -> float:
        """The level's start on the ``perf_counter`` clock: now (plus the hand-over lead of
        workers), or, for a shard, its slot on the timeline shared by all shards."""
        shard = self.scenario.shard
        if shard is None or attack.index < 0:
            return perf_counter() + attack.lead_s
        epoch = level_start_epoch(shard, attack.index, self.scenario.duration_s, self.drain_s)
        return perf_counter() + (epoch - time.time())

    async def _attack(
        self, attack: LevelAttack | RemoteLevel | SessionLevel, duration_s: float
    ) -> float:
        """Schedule, then drain; returns the arrival window actually used (seconds)."""
        t0 = self._start(attack)
        if self.scraper is not None and attack.index >= 0:
            self.scraper.mark_level(attack.index, t0)
        try:
            if not self.halted:
                await self._stage(attack.schedule(t0))
            window_s = duration_s if not self.halted else perf_counter() - t0
            if not self.halted:
                await self._stage(attack.drain(self.drain_s))
            if self.halted:
                await attack.drain(INTERRUPT_DRAIN_S)
        finally:
            await attack.cancel_rest()
        return window_s

    async def run(self, writer: RecordWriter | None) -> bool:
        """All levels; returns the server's support for ``stream_options`` (usage)."""
        main = asyncio.current_task()
        assert main is not None
        self.signals = Signals(main, self.console)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, self.signals)
        try:
            async with open_session(self.settings) as session:
                if self.scraper is not None:
                    await self.scraper.start(session)
                try:
                    with Sender(self.settings) as sender:
                        if self.scenario.shard is not None:
                            await self._clock(session)
                        if self.pool is not None:
                            await self._stage(self.pool.start())
                        probe_e2e_s = None
                        if self.scenario.warmup or self.scenario.auto:
                            probe_e2e_s = await self._warmup(sender)
                        await self._levels(sender, writer, probe_e2e_s)
                        if self.pool is not None:
                            return self.pool.include_usage
                        return sender.shape.include_usage
                finally:
                    if self.pool is not None:
                        await self.pool.close()
                    if self.scraper is not None:
                        await self.scraper.stop()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                    loop.remove_signal_handler(sig)

    async def _clock(self, session: aiohttp.ClientSession) -> None:
        """A shard's clock against the server's ``Date`` (for ``qpsweep merge``), and its
        timeline."""
        shard, sc = self.scenario.shard, self.scenario
        assert shard is not None
        offset = await measure_offset_s(session, probe_urls(self.settings.url)[0])
        clock = replace(ClockInfo(**asdict(offset)), url=mask_url(offset.url)) if offset else None
        self.metadata = dataclasses.replace(self.metadata, clock=clock)
        slot_s = sc.duration_s + self.drain_s
        start = datetime.fromtimestamp(shard.start_at_epoch).astimezone()
        print(
            f"shard {shard.index}/{shard.count}: level 1 starts at {start.isoformat()} "
            f"(in {shard.start_at_epoch - time.time():.1f} s), a level every {slot_s:g} s "
            "(--duration + the longest a request may take: lower --timeout to shorten it)",
            file=self.console,
        )
        if offset is None:
            print(
                "note: the server's clock could not be read from its Date header; qpsweep merge "
                "will not be able to check this shard's clock",
                file=self.console,
            )

    async def _levels(
        self, sender: Sender, writer: RecordWriter | None, probe_e2e_s: float | None
    ) -> None:
        """Run levels until the list (or the adaptive search) ends, or a stop rule fires."""
        sc, started = self.scenario, perf_counter()
        history: list[tuple[float, str]] = []
        verdict: Verdict | None = None
        index = position = 0  # levels run / place in a fixed list
        while not self.halted:
            qps = sc.qps[position] if not sc.auto and position < len(sc.qps) else None
            factor = 1.0
            if sc.auto:
                ran = sorted(verdict.levels, key=lambda st: st.index) if verdict else []
                sat = verdict.saturation if verdict else None
                step = next_level(ran, sc.auto, sat, sc.rerun_client_limited)
                qps, factor = step if step else (None, 1.0)
            elif sc.rerun_client_limited and rerun_due(history):
                qps = history[-1][0]
            else:
                position += 1
            if qps is None:
                break
            if history and history[-1] == (qps, "client_limited"):
                print(
                    f"the load generator fell behind at {qps:g} QPS (see the WARNING below); "
                    "running that level once more",
                    file=self.console,
                )
            duration_s = sc.duration_s
            if sc.auto:
                duration_s = factor * level_duration_s(qps, sc.duration_s, probe_e2e_s)
                needed_s = 1.2 * duration_s + 2 * (probe_e2e_s or 0.0)
                if perf_counter() - started + needed_s > sc.auto.budget_s:
                    self._stop(f"the --budget of {sc.auto.budget_s:g} s would be exceeded")
                    break
            _quiet_gc()
            await self._level(sender, writer, index, qps, duration_s)
            if self.records_lost or self.write_failure is not None:
                break
            verdict, reason = self._judge(index)
            history = [(st.qps_target, st.state) for st in verdict.levels]
            failure = self.pool.failure if self.pool is not None else None
            if failure or (reason and not sc.auto):
                self._stop(failure or reason or "")
                break
            index += 1

    def _judge(self, index: int) -> tuple[Verdict, str | None]:
        """The verdict so far (levels in the order run), and why the sweep must stop after
        level ``index``."""
        analysis = analyze_run(self.run_dir)
        ran = tuple(sorted(analysis.verdict.levels, key=lambda st: st.index))
        judged = dataclasses.replace(analysis.verdict, levels=ran)
        level = next((s for s in analysis.summaries if s.index == index), None)
        t = self.metadata.thresholds
        if level is None:
            return judged, None
        failures = round(level.first_try_error_rate * level.n_sent)
        low, _ = share_bounds(failures, level.n_sent, t.confidence)
        if low > t.max_error_rate:  # proved over the limit, not a Poisson draw over it
            retried = " at the first try" if level.n_retried else ""
            return judged, (
                f"{level.first_try_error_rate:.1%} of the requests at {level.qps_target:g} QPS "
                f"failed{retried} (--max-error-rate {t.max_error_rate:g}; "
                f"{t.confidence:.0%} lower bound {low:.1%})"
            )
        e2e_p95 = level.e2e_s.get(95.0)
        limit = t.max_p95_latency_s
        if limit is not None and e2e_p95 is not None and e2e_p95 > limit:
            return judged, (
                f"p95 E2E at {level.qps_target:g} QPS was {e2e_p95:.2f} s "
                f"(--max-p95-latency {limit:g} s)"
            )
        return judged, None

    def _put_level(self, entry: LevelEntry) -> None:
        """Record ``entry`` (new, or the level's latest state) and rewrite ``metadata.json``;
        when that cannot be written, the sweep stops as when records cannot be."""
        self.metadata = self.metadata.with_level(entry)
        if self.write_failure is not None:
            return
        try:
            write_metadata(self.run_dir, self.metadata)
        except WriteFailed as err:
            self.write_failure = err
            self._halt()

    def _stop(self, reason: str) -> None:
        self.metadata = dataclasses.replace(self.metadata, stopped_early=reason)
        print(f"stopping the sweep: {reason}", file=self.console)

    async def _warmup(self, sender: Sender) -> float | None:
        """Warmup / probe requests at the first level's rate; returns their median E2E."""
        sc = self.scenario
        n = max(sc.warmup, PROBE_REQUESTS if sc.auto else 0)
        qps = sc.auto.start_qps if sc.auto else sc.qps[0]
        offsets = arrival_offsets_s(
            qps, 3 * n / qps + 10, sc.arrival, sc.burstiness, sc.seed, self.trace_s
        )[:n]
        done: list[RequestRecord] = []
        attack = LevelAttack(-1, qps, offsets.tolist(), self._prompts_for(n), sender, done.append)
        print(f"warmup: {n} requests at {qps:g} QPS (not counted)", file=self.console)
        await self._attack(attack, float(offsets[-1]) if n else 0.0)
        e2e_s = [r.done_s - r.sent_s for r in done if r.ok]
        median = float(np.median(e2e_s)) if e2e_s else None
        warmup = Warmup(len(done), len(e2e_s), median)
        self.metadata = dataclasses.replace(self.metadata, warmup=warmup)
        print(f"warmup: {len(e2e_s)}/{len(done)} succeeded", file=self.console)
        return median

    async def _level(
        self,
        sender: Sender,
        writer: RecordWriter | None,
        index: int,
        qps: float,
        duration_s: float,
    ) -> None:
        sc = self.scenario
        session_qps, offsets, sessions = self._session_starts(qps, duration_s)
        part = sc.shard.part if sc.shard else Part()  # a shard schedules its part alone
        offsets_list = offsets.tolist()
        # with sessions: at most; each turn is scheduled when the one before it ends
        n_mine = sum(s.n_turns for s in sessions) or len(part.offsets(offsets_list))
        passes = self._passes(qps, duration_s, len(offsets))
        entry = LevelEntry(index, qps, duration_s, n_mine, time.time(), trace_passes=passes)
        self._put_level(entry)
        bar = tqdm(
            total=n_mine,
            desc=f"QPS {qps:g}",
            unit="req",
            file=self.console,
            disable=not _isatty(self.console),
            leave=True,
            dynamic_ncols=True,
        )
        counts = {"ok": 0, "failed": 0}
        shown = not bar.disable  # off a terminal the bar is off: nothing to format per record

        def draw(n_sent: int) -> None:
            n_ok, n_failed = counts["ok"], counts["failed"]
            bar.set_postfix_str(f"sent={n_sent} ok={n_ok} failed={n_failed}", refresh=False)
            bar.update(n_ok + n_failed - bar.n)

        def progress(n_sent: int, n_ok: int, n_failed: int) -> None:  # the workers' totals
            counts.update(ok=n_ok, failed=n_failed)
            if shown:
                draw(n_sent)

        def sink(record: RequestRecord) -> None:
            assert writer is not None
            writer.write(record)
            counts["ok" if record.ok else "failed"] += 1
            if shown:
                draw(attack.n_sent)

        attack: LevelAttack | RemoteLevel | SessionLevel
        if sc.sessions is not None:
            thinks = think_times_s(sc.sessions, n_mine - len(sessions), sc.seed, qps)
            attack = SessionLevel(
                index, qps, session_qps, offsets_list, sessions, thinks, sc.sessions, duration_s,
                sender, sink,
            )  # fmt: skip
        elif self.pool is not None:
            attack = self.pool.level(index, qps, offsets_list, self.drain_s, progress)
        else:
            prompts = self._prompts_for(len(offsets))[part.index :: part.count]
            mine = part.offsets(offsets_list)
            attack = LevelAttack(index, qps, mine, prompts, sender, sink, part.index, part.count)
        try:
            window_s = await self._attack(attack, duration_s)
            entry = dataclasses.replace(entry, arrival_window_s=window_s, completed=not self.halted)
        finally:
            entry = _sent(entry, attack)
            bar.close()
            self._put_level(entry)
        of = "" if sc.auto or index >= len(sc.qps) else f"/{len(sc.qps)}"
        print(
            f"level {index + 1}{of} QPS {qps:g}: sent {attack.n_sent}"
            f"{f' in {entry.sessions.started} sessions' if entry.sessions else ''}, "
            f"ok {counts['ok']}, failed {counts['failed']}",
            file=self.console,
        )
        if not len(offsets):
            print(
                f"note: the {sc.arrival} schedule drew no arrival in {duration_s:g} s at "
                f"{qps:g} QPS (seed {sc.seed}): nothing to send; give the level a longer "
                "--duration",
                file=self.console,
            )


def _passes_line(
    qps: float, trace_rate_qps: float | None, passes: float, n: int, duration_s: float
) -> str:
    """What a trace level replays: the share of the trace, or how often it wraps around."""
    times = f"{qps / trace_rate_qps:.3g}x the trace's rate" if trace_rate_qps else "trace"
    if passes < 1:
        what = (
            f"the first {passes:.1%} of the trace (its own rate may differ from the whole "
            f"trace's; --duration {duration_s / passes:.4g} replays it all)"
        )
    else:
        what = f"the trace {passes:.2f} times over (it wraps around, keeping its gaps)"
    return f"QPS {qps:g} ({times}): {n} arrivals, {what}"


def _sent(entry: LevelEntry, attack: LevelAttack | RemoteLevel | SessionLevel) -> LevelEntry:
    """``entry`` with what ``attack`` sent (per worker; with sessions, their counts and the
    turns released as the scheduled ones: a turn is scheduled at its release)."""
    by_worker = attack.sent_by_worker if isinstance(attack, RemoteLevel) else None
    entry = dataclasses.replace(
        entry,
        n_sent=attack.n_sent,
        n_sent_by_worker=tuple(by_worker) if by_worker is not None else None,
    )
    if isinstance(attack, SessionLevel):
        entry = dataclasses.replace(entry, n_scheduled=attack.n_sent, sessions=attack.counts())
    return entry


def _quiet_gc() -> None:
    """Collect now, between levels, and freeze what survives: a full collection during a level
    then scans only objects made since, instead of pausing the scheduler for tens of ms
    (measured: 24 ms for a generation-2 pass in the demo).  ``run_sweep`` unfreezes at the end."""
    gc.collect()
    gc.freeze()


def _trace_rows(scenario: Scenario, trace: ArrivalTrace) -> int:
    """How many trace rows the sweep may send: every row for ``--qps auto`` (its levels are
    not known), else the most arrivals of any level (warmup included), at most the trace's."""
    if scenario.auto:
        return trace.n_requests
    sizes = [scenario.warmup] + [
        len(arrival_offsets_s(q, scenario.duration_s, "trace", trace_s=trace.times_s))
        for q in scenario.qps
    ]
    return min(max(sizes), trace.n_requests)


def _trace_info(trace: ArrivalTrace) -> TraceInfo:
    return TraceInfo(
        path=trace.path,
        sha256=trace.sha256,
        format=trace.format,
        requests=trace.n_requests,
        span_s=trace.span_s,
        mean_rate_qps=trace.mean_rate_qps,
        input_tokens=trace.input_tokens is not None,
        output_tokens=trace.output_tokens is not None,
        hash_ids=trace.hash_ids is not None,
    )


def _lost_message(run_dir: Path, n_lost: int, path: Path, error: OSError) -> str:
    """The one line that says records were lost, how many, and what to do."""
    return (
        f"{n_lost} records could not be written to {path} ({error.strerror or error}): the "
        f"sweep stopped; the records before them are intact, and `qpsweep report {run_dir}` "
        "reads them once there is room"
    )


def _raise_losses(sweep: _Sweep, writer: RecordWriter | None) -> None:
    """After the sweep: ``RecordsLost`` when records could not be written (by ``writer`` or
    a worker), else ``WriteFailed`` when another file could not be, in one line each."""
    run_dir = sweep.run_dir
    if writer is not None and writer.error is not None:
        raise RecordsLost(_lost_message(run_dir, writer.n_lost, writer.path, writer.error))
    pool = sweep.pool
    if pool is not None and pool.lost_error is not None:
        where = part_path(run_dir, 0).parent
        raise RecordsLost(_lost_message(run_dir, pool.n_lost, where, pool.lost_error))
    if sweep.write_failure is not None:
        raise WriteFailed(
            f"{sweep.write_failure}: the sweep stopped; `qpsweep report {run_dir}` reads what "
            "was written once there is room"
        )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _attach_metrics(sweep: _Sweep, metrics: MetricsPlan) -> None:
    """Give ``sweep`` a scraper of ``metrics.url`` and note the scrape in its metadata (the
    URL with any password masked)."""
    sweep.metadata = dataclasses.replace(
        sweep.metadata,
        metrics_url=mask_url(metrics.url),
        metrics_gauges=metrics.names,
        metrics_preset=metrics.preset,
    )
    sweep.scraper = MetricsScraper(
        metrics.url,
        metrics.names,
        sweep.run_dir / METRICS_FILE,
        mean_names=metrics.mean_names,
        narrow=metrics.narrowed,
    )


def _finish_metadata(sweep: _Sweep, scenario: Scenario, interrupted: bool) -> None:
    """Write the run's final ``metadata.json``: the levels run (for ``--qps auto``), the status
    and the finish time; a failed write is kept as the sweep's ``write_failure``."""
    done = sweep.metadata
    sweep.metadata = dataclasses.replace(
        done,
        qps_levels=tuple(lv.qps_target for lv in done.levels) if scenario.auto else done.qps_levels,
        status="interrupted" if interrupted else "complete",
        interrupted=interrupted,
        finished_at=datetime.now().isoformat(),
    )
    try:
        write_metadata(sweep.run_dir, sweep.metadata)
    except WriteFailed as err:
        sweep.write_failure = sweep.write_failure or err


def run_sweep(
    target: Target,
    scenario: Scenario,
    prompts: Sequence[Prompt],
    *,
    dataset: str,
    dataset_sha256: str,
    argv: list[str],
    results_dir: Path,
    files: RunFiles = DEFAULT_FILES,
    console: TextIO | None = None,
    notes: dict[str, Any] | None = None,
    metrics: MetricsPlan | None = None,
    name: str | None = None,
    trace: ArrivalTrace | None = None,
) -> SweepResult:
    """Run every level against ``target`` into a new directory under ``results_dir``.

    Never raises for request failures; raises ``RunDirError`` before any traffic when the
    directory cannot be written.  ``notes`` are added to ``metadata.json`` as they are.  The
    outputs are rebuilt from the run directory at the end.  ``name`` names the run directory
    (default: a timestamp).  ``trace`` (``--arrival trace``) gives the arrival times; with
    token counts in the trace, ``prompts`` has one prompt per trace row
    (``qpsweep.datasets.traces.trace_prompts``) and request ``k`` sends row ``k % n``.
    """
    console = console or sys.stderr
    run_dir = create_run_dir(results_dir, name)
    try:
        check_space(run_dir, expected_requests(scenario))
    except RunDirError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    fd_note = file_limit_note(scenario)
    if fd_note:
        print(fd_note, file=console)
    metadata = new_metadata(
        target, scenario, dataset, dataset_sha256, len(prompts), argv, files, notes,
        None if trace is None else _trace_info(trace),
    )  # fmt: skip
    print(
        f"qpsweep {__version__}: {len(scenario.qps)} levels x {scenario.duration_s:g} s against "
        f"{metadata.endpoint} (model {metadata.model}); writing {run_dir}",
        file=console,
    )
    if trace is not None and isinstance(prompts, TracePrompts):
        prompts.build(_trace_rows(scenario, trace))  # before workers get them, not mid-level
    settings = settings_for(target, scenario)
    sweep = _Sweep(settings, scenario, prompts, run_dir, metadata, console, trace)
    if metrics is not None:
        _attach_metrics(sweep, metrics)
    write_metadata(run_dir, sweep.metadata)
    writer = None
    if sweep.pool is None:
        writer = RecordWriter(run_dir / REQUESTS_FILE, on_loss=sweep.lose_records)
    aborted = False
    try:
        include_usage = run_loop(sweep.run(writer))
        sweep.metadata = dataclasses.replace(sweep.metadata, include_usage=include_usage)
    except asyncio.CancelledError:
        aborted = True
    finally:
        gc.unfreeze()
        if writer is not None:
            writer.close()
        try:
            merge_parts(run_dir, run_dir / REQUESTS_FILE)
        except WriteFailed as err:  # the parts stay, and report reads them
            sweep.write_failure = sweep.write_failure or err
        interrupted = sweep.interrupted or aborted
        _finish_metadata(sweep, scenario, interrupted)
    _raise_losses(sweep, writer)
    with finish_writing_first(console) as received:
        analysis, table = rebuild(run_dir)
        if files.csv:
            from qpsweep.output.export import append_summary

            append_summary(results_dir, run_dir, analysis)
    return SweepResult(run_dir, analysis, table, interrupted or bool(received))
