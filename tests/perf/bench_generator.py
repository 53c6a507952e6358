"""How fast qpsweep's attack loop can offer load: one generator process on one core.

``python tests/perf/bench_generator.py [--rates 250,500,1000,2000] [--duration 10]
[--rounds 1] [--variant fast|flush|ttft50] [--arrival poisson,trace] [--trace FILE]
[--clients qpsweep,reference] [--profile FILE]``

Starts the nginx echo target (``nginx_target.py``) pinned to core ``--nginx-cpu`` (1), pins
this process to core ``--gen-cpu`` (0), and for each rate runs one level of the product's own
pieces, as ``sweep._level`` wires them: ``arrival_offsets_s`` (Poisson by default),
``prompt_order``, ``LevelAttack`` with a ``Sender`` (its own HTTP/1.1 connections) on a uvloop
loop, a sink that writes each record with ``RecordWriter`` (to a temporary ``requests.jsonl``)
and counts it, as the sweep's does off a terminal (its tqdm bar disabled),
``gc.collect(); gc.freeze()`` before the level.  Then the
same schedule is sent by a minimal reference client (aiohttp + uvloop, ``async for chunk in
resp.content.iter_any()``, nothing else but one ``perf_counter`` at the send, the first chunk and
the end).  Each measured level is preceded by ``WARMUP_S`` of unmeasured traffic at the same rate
(connections opened).

``--arrival`` takes a comma-separated list (``poisson``, ``constant``, ``trace``); each rate runs
with each in turn, its rows labelled ``arrival``.  ``trace`` is ``--arrival trace`` as the
sweep runs it: the offsets of ``--trace FILE`` (default: the shipped Mooncake-format sample)
with their gaps scaled to the rate and wrapping around, and one prompt per trace row built to
its token counts (``trace_prompts``; request ``k`` sends row ``k % n``), so its bodies are the
trace's (hundreds to thousands of words) where the plain mode's are a short question.

Per level (times from the records, seconds since the level start ``t0``):

* ``scheduled_qps`` = (n_scheduled - 1) / (last offset - first offset): the schedule's own rate
  (a Poisson schedule differs from the target by chance, about 1/sqrt(n));
* ``offered_qps`` = (n_sent - 1) / (last sent_s - first sent_s): requests sent / span of sends;
* ``achieved_qps`` = n_ok / (last done_s): successful completions per second since ``t0``;
* ``lag_ms`` = 1000 * (sent_s - scheduled_s), p50 / p99 / max over every sent request;
* ``ttft_err_ms`` = 1000 * (first_token_s - sent_s - injected), p50 / p99 over ok requests
  (injected = 0.050 s for ``ttft50``, 0 otherwise, where it is simply the TTFT);
* ``cpu_s_per_1k`` = 1000 * (process CPU time over schedule + drain) / requests finished
  (``time.process_time``: user + system of every thread of this process); the same for nginx
  (``/proc/PID/stat``) in ``nginx_s_per_1k``;
* ``others_pct`` = 100 * (busy time of the generator's core from ``/proc/stat`` - this
  process's CPU time) / wall time: other work on that core (other processes, softirq of the
  loopback traffic); high values mean the figures are disturbed;
* ``steal_ms`` = 1000 * the generator core's steal time over the level (``/proc/stat``, 10 ms
  ticks): time the hypervisor gave the virtual core to someone else; each tick of it can hold
  up every send due meanwhile, so a round with steal has a higher send lag p99 that is not
  the generator's doing (also counted in ``others_pct``);
* ``conns`` = new TCP connections nginx accepted during the level (``stub_status``): few while
  the keep-alive pool opened by the warm-up suffices, up to one per request when it does not;
* ``cpu_ratio`` = qpsweep ``cpu_s_per_1k`` / reference ``cpu_s_per_1k`` at the same rate.

With ``--rounds N`` each rate runs N times, qpsweep and the reference taking turns (qpsweep,
reference, qpsweep, ...), so that both see the same drift of a shared machine; every round gets
its own row, and ``cpu_ratio`` is taken per round (round k of qpsweep over round k of the
reference).

Goals checked (PASS/FAIL lines; the exit status is 0 whatever they say, 2 without nginx):
offered within 1% of the schedule's rate and lag p99 <= 2 ms at 2,000 req/s (fast), TTFT error
p50 within 1 ms at 500 req/s (ttft50), cpu_ratio <= 1.3 at every rate.  With several rounds a
goal is judged on the median of its rounds' values, and the line gives every round's value.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import math
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
import numpy as np
import uvloop
from nginx_target import MissingNginx, accepted_connections, nginx_target

from qpsweep.datasets.prompts import Prompt, prompt_order
from qpsweep.datasets.traces import ArrivalTrace, load_trace, trace_prompts
from qpsweep.http.client import ClientSettings, Sender
from qpsweep.load.attack import LevelAttack
from qpsweep.load.schedule import arrival_offsets_s
from qpsweep.records.record import RecordWriter, RequestRecord, read_records

WARMUP_S = 1.0
TIMEOUT_S = 30.0
DRAIN_GRACE_S = 5.0
N_PROMPTS = 64
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "datasets" / "trace_mooncake.jsonl"
SEED = 0
GOAL_RATE_QPS = 2000.0
GOAL_OFFERED_TOL = 0.01
GOAL_LAG_P99_MS = 2.0
GOAL_TTFT_RATE_QPS = 500.0
GOAL_TTFT_ERR_MS = 1.0
GOAL_CPU_RATIO = 1.3
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- CPU and wall-clock meters -------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (``/proc/PID/stat`` fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def core_times_s(core: int) -> tuple[float, float]:
    """(busy, steal) time of one core since boot, seconds, from ``/proc/stat``: busy is every
    state but idle and iowait (steal included), steal the time the hypervisor ran something
    else while this virtual core had work."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == f"cpu{core}":
            ticks = [int(v) for v in values]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK, ticks[7] / CLK_TCK
    raise ValueError(f"no cpu{core} in /proc/stat")


@dataclass(frozen=True)
class Usage:
    """Resources used over one measured interval."""

    wall_s: float
    cpu_s: float
    nginx_cpu_s: float
    others_s: float  # busy time of the generator core not spent by this process
    steal_s: float  # time the hypervisor took the generator's core away
    connections: int  # TCP connections nginx accepted


class Meter:
    """Reads the clocks at ``start()`` and returns the differences at ``stop()``."""

    def __init__(self, core: int, nginx_pid: int, nginx_base_url: str) -> None:
        self.core, self.nginx_pid, self.base_url = core, nginx_pid, nginx_base_url
        self._t = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._accepts = 0

    def _read(self) -> tuple[float, float, float, float, float]:
        return (
            perf_counter(),
            time.process_time(),
            proc_cpu_s(self.nginx_pid),
            *core_times_s(self.core),
        )

    def start(self) -> None:
        """Take the starting readings."""
        self._accepts = accepted_connections(self.base_url)
        self._t = self._read()

    def stop(self) -> Usage:
        """The interval's usage since ``start()``."""
        wall, cpu, ngx, busy, steal = (b - a for a, b in zip(self._t, self._read(), strict=True))
        accepts = accepted_connections(self.base_url) - self._accepts
        return Usage(wall, cpu, ngx, max(busy - cpu, 0.0), steal, accepts)


# --- one level's outcome ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Per-request times (seconds since ``t0``) of one level; NaN where absent."""

    scheduled_s: np.ndarray
    sent_s: np.ndarray
    first_s: np.ndarray
    done_s: np.ndarray
    ok: np.ndarray  # bool


@dataclass(frozen=True)
class LevelResult:
    """One client at one rate: the figures of the module docstring."""

    client: str
    round: int
    target_qps: float
    arrival: str
    n_scheduled: int
    scheduled_qps: float
    n_sent: int
    n_ok: int
    offered_qps: float
    achieved_qps: float
    lag_ms: tuple[float, float, float]  # p50, p99, max
    ttft_err_ms: tuple[float, float]  # p50, p99
    usage: Usage

    @property
    def n_failed(self) -> int:
        """Requests sent that did not succeed."""
        return self.n_sent - self.n_ok

    @property
    def cpu_s_per_1k(self) -> float:
        """Generator CPU seconds per 1,000 finished requests."""
        return 1000 * self.usage.cpu_s / max(self.n_sent, 1)

    @property
    def nginx_s_per_1k(self) -> float:
        """nginx CPU seconds per 1,000 finished requests."""
        return 1000 * self.usage.nginx_cpu_s / max(self.n_sent, 1)

    @property
    def others_pct(self) -> float:
        """Share of the generator core busy with work not of this process, percent."""
        return 100 * self.usage.others_s / self.usage.wall_s


def rate_of(times_s: np.ndarray) -> float:
    """(n - 1) / (last - first) of the finite ``times_s``: events per second over their span."""
    t = times_s[np.isfinite(times_s)]
    if t.size < 2 or t.max() <= t.min():
        return math.nan
    return float((t.size - 1) / (t.max() - t.min()))


def pct(values: np.ndarray, *ps: float) -> list[float]:
    """Percentiles of the finite ``values`` (NaN when there are none)."""
    v = values[np.isfinite(values)]
    return [float(np.percentile(v, p)) if v.size else math.nan for p in ps]


def summarize(
    client: str,
    target_qps: float,
    offsets_s: np.ndarray,
    t: Timings,
    injected_s: float,
    u: Usage,
    round_: int = 1,
    arrival: str = "poisson",
) -> LevelResult:
    """A ``LevelResult`` from the per-request timings, by the module docstring's formulas."""
    lag_ms = 1000 * (t.sent_s - t.scheduled_s)
    ttft_err_ms = 1000 * (t.first_s - t.sent_s - injected_s)
    ttft_err_ms[~t.ok] = math.nan
    n_ok = int(t.ok.sum())
    last_done_s = float(np.nanmax(t.done_s)) if np.isfinite(t.done_s).any() else math.nan
    p50, p99, mx = pct(lag_ms, 50, 99, 100)
    e50, e99 = pct(ttft_err_ms, 50, 99)
    return LevelResult(
        client=client,
        round=round_,
        target_qps=target_qps,
        arrival=arrival,
        n_scheduled=len(offsets_s),
        scheduled_qps=rate_of(offsets_s),
        n_sent=int(np.isfinite(t.sent_s).sum()),
        n_ok=n_ok,
        offered_qps=rate_of(t.sent_s),
        achieved_qps=n_ok / last_done_s if last_done_s > 0 else math.nan,
        lag_ms=(p50, p99, mx),
        ttft_err_ms=(e50, e99),
        usage=u,
    )


def timings_of(records: Sequence[RequestRecord]) -> Timings:
    """Per-request times from qpsweep's records."""
    nan = math.nan
    return Timings(
        scheduled_s=np.array([r.scheduled_s for r in records]),
        sent_s=np.array([r.sent_s for r in records]),
        first_s=np.array([nan if r.first_token_s is None else r.first_token_s for r in records]),
        done_s=np.array([r.done_s for r in records]),
        ok=np.array([r.ok for r in records], dtype=bool),
    )


# --- the product's level ---------------------------------------------------------------------


def bench_prompts(n: int = N_PROMPTS) -> tuple[Prompt, ...]:
    """``n`` short chat prompts (ids 0..n-1), the kind a dataset file gives."""
    system = ("system", "You are a helpful assistant. Answer briefly.")
    return tuple(
        Prompt(k, (system, ("user", f"Question {k}: what is {k} + {k}? Explain the steps.")))
        for k in range(n)
    )


def prompts_for(prompts: Sequence[Prompt], n: int, seed: int = SEED) -> list[Prompt]:
    """Prompt of each of ``n`` requests, cycled in the seeded order (as ``_Sweep._prompts_for``)."""
    order = prompt_order(len(prompts), seed)
    return [prompts[order[k % len(prompts)]] for k in range(n)]


def bench_settings(url: str) -> ClientSettings:
    """The client settings of a sweep with ``--timeout TIMEOUT_S --max-tokens 16``."""
    return ClientSettings(url=url, model="bench", timeout_s=TIMEOUT_S, max_tokens=16)


def sweep_sink(writer: RecordWriter) -> Callable[[RequestRecord], None]:
    """The sweep's per-record sink off a terminal: write the record and count it (its progress
    bar is disabled there, so nothing is drawn)."""
    counts = {"ok": 0, "failed": 0}

    def sink(record: RequestRecord) -> None:
        writer.write(record)
        counts["ok" if record.ok else "failed"] += 1

    return sink


async def run_attack(attack: LevelAttack) -> None:
    """Schedule, drain, cancel the rest: ``_Sweep._attack`` without the signal handling."""
    try:
        await attack.schedule(perf_counter())
        await attack.drain(TIMEOUT_S + DRAIN_GRACE_S)
    finally:
        await attack.cancel_rest()


def level_prompts(n: int, trace: ArrivalTrace | None = None) -> list[Prompt]:
    """The prompt of each of ``n`` requests as ``_Sweep._prompts_for`` picks them: the bench
    prompts in the seeded order, or with a trace that has token counts, row ``k % rows``."""
    built = None if trace is None else trace_prompts(trace, bench_prompts(), SEED)
    if built is None:
        return prompts_for(bench_prompts(), n)
    return [built[k % len(built)] for k in range(n)]


def build_attack(
    sender: Sender,
    index: int,
    rate: float,
    offsets_s: np.ndarray,
    writer: RecordWriter,
    trace: ArrivalTrace | None = None,
) -> LevelAttack:
    """The level's ``LevelAttack`` as ``_Sweep._level`` builds it (offset and prompt lists)."""
    prompts = level_prompts(len(offsets_s), trace)
    return LevelAttack(index, rate, offsets_s.tolist(), prompts, sender, sweep_sink(writer))


async def qpsweep_level(
    sender: Sender,
    index: int,
    rate: float,
    offsets_s: np.ndarray,
    path: Path,
    trace: ArrivalTrace | None = None,
) -> int:
    """One level of the product into ``path``; returns the number of requests sent."""
    writer = RecordWriter(path)
    try:
        attack = build_attack(sender, index, rate, offsets_s, writer, trace)
        await run_attack(attack)
    finally:
        writer.close()
    return attack.n_sent


# --- the reference client --------------------------------------------------------------------


def reference_session() -> aiohttp.ClientSession:
    """A plain aiohttp session: unlimited pool, total timeout ``TIMEOUT_S``."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def reference_level(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], offsets_s: np.ndarray
) -> Timings:
    """Send ``bodies[k]`` at ``t0 + offsets_s[k]`` and read each stream, nothing else."""
    n = len(offsets_s)
    sent, first, done = [math.nan] * n, [math.nan] * n, [math.nan] * n
    ok = [False] * n
    headers = {"Content-Type": "application/json"}

    async def one(k: int, t0: float) -> None:
        sent[k] = perf_counter() - t0
        try:
            async with session.post(url, data=bodies[k], headers=headers) as resp:
                async for _chunk in resp.content.iter_any():
                    if first[k] != first[k]:  # NaN: the first chunk
                        first[k] = perf_counter() - t0
                ok[k] = resp.status == 200
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            pass
        done[k] = perf_counter() - t0

    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    t0 = perf_counter()
    for k, offset in enumerate(offsets_s.tolist()):
        delay = t0 + offset - perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(k, t0))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=TIMEOUT_S + DRAIN_GRACE_S)
    arr = np.array
    return Timings(offsets_s, arr(sent), arr(first), arr(done), arr(ok, dtype=bool))


# --- driving the levels ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """What every level needs: the target, the cores, where records go, the schedule kind."""

    url: str
    injected_s: float
    meter: Meter
    workdir: Path
    arrival: str
    profiler: cProfile.Profile | None = None
    trace: ArrivalTrace | None = None  # with arrival "trace"


def schedule_for(
    rate: float, duration_s: float, arrival: str, trace: ArrivalTrace | None = None
) -> np.ndarray:
    """The level's arrival offsets, as the sweep computes them."""
    times = None if trace is None else trace.times_s
    return arrival_offsets_s(rate, duration_s, arrival, 1.0, SEED, times)


async def measured(
    bench: Bench, coro: Coroutine[Any, Any, Any], profile: bool = False
) -> tuple[Any, Usage]:
    """Run ``coro`` between ``gc.collect(); gc.freeze()`` and the meter's readings (under
    ``bench.profiler`` when ``profile``)."""
    profiler = bench.profiler if profile else None
    gc.collect()
    gc.freeze()
    bench.meter.start()
    if profiler is not None:
        profiler.enable()
    try:
        result = await coro
    finally:
        if profiler is not None:
            profiler.disable()
        usage = bench.meter.stop()
        gc.unfreeze()
    return result, usage


async def bench_qpsweep(
    bench: Bench, rate: float, duration_s: float, round_: int = 1
) -> LevelResult:
    """Warm up, then one measured level of the product at ``rate``."""
    offsets_s = schedule_for(rate, duration_s, bench.arrival, bench.trace)
    warm = schedule_for(rate, WARMUP_S, bench.arrival, bench.trace)
    path = bench.workdir / f"requests-{rate:g}.jsonl"
    with Sender(bench_settings(bench.url)) as sender:
        warmup = bench.workdir / "warmup.jsonl"
        await qpsweep_level(sender, -1, rate, warm, warmup, bench.trace)
        level = qpsweep_level(sender, 0, rate, offsets_s, path, bench.trace)
        _, usage = await measured(bench, level, profile=True)
    records = sorted(read_records(path), key=lambda r: r.seq)
    path.unlink()
    timings = timings_of(records)
    return summarize(
        "qpsweep", rate, offsets_s, timings, bench.injected_s, usage, round_, bench.arrival
    )


async def bench_reference(
    bench: Bench, rate: float, duration_s: float, round_: int = 1
) -> LevelResult:
    """Warm up, then one measured level of the reference client at ``rate``."""
    offsets_s = schedule_for(rate, duration_s, bench.arrival, bench.trace)
    warm = schedule_for(rate, WARMUP_S, bench.arrival, bench.trace)
    async with reference_session() as session:
        sender = Sender(bench_settings(bench.url))  # only to encode the same bodies
        prompts = level_prompts(len(offsets_s), bench.trace)
        bodies = [sender.body(p, True) for p in prompts]
        await reference_level(session, bench.url, bodies, warm)
        timings, usage = await measured(
            bench, reference_level(session, bench.url, bodies, offsets_s)
        )
    return summarize(
        "reference", rate, offsets_s, timings, bench.injected_s, usage, round_, bench.arrival
    )


# --- output ----------------------------------------------------------------------------------

COLUMNS = (
    "client    arrival  round target  sched/s offered/s off/sched achiev/s lag50ms lag99ms "
    "lagmaxms ttfterr50 ttfterr99 cpu_s/1k ngx_s/1k others% steal_ms     ok failed  conns"
)


def row(r: LevelResult) -> str:
    """One table line for ``r`` (see ``COLUMNS``)."""
    off = 100 * (r.offered_qps / r.scheduled_qps - 1)
    return (
        f"{r.client:<10}{r.arrival:<8}{r.round:5d} {r.target_qps:6g} {r.scheduled_qps:8.1f} "
        f"{r.offered_qps:9.1f} "
        f"{off:+8.2f}% {r.achieved_qps:8.1f} {r.lag_ms[0]:7.3f} {r.lag_ms[1]:7.3f} "
        f"{r.lag_ms[2]:8.2f} {r.ttft_err_ms[0]:9.3f} {r.ttft_err_ms[1]:9.3f} "
        f"{r.cpu_s_per_1k:8.3f} {r.nginx_s_per_1k:8.3f} {r.others_pct:7.1f} "
        f"{1000 * r.usage.steal_s:8.0f} {r.n_ok:6d} {r.n_failed:6d} {r.usage.connections:6d}"
    )


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def median_of(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    return float(np.median(values))


def each(values: Sequence[float], form: str) -> str:
    """``values`` formatted and joined with " / " (one per round)."""
    return " / ".join(format(v, form) for v in values)


def goal_lines(results: Sequence[LevelResult], variant: str) -> list[str]:
    """PASS/FAIL for each goal that the runs measured (on the median of the rounds)."""
    mine: dict[float, list[LevelResult]] = {}
    ref: dict[float, list[LevelResult]] = {}
    for r in results:
        (mine if r.client == "qpsweep" else ref).setdefault(r.target_qps, []).append(r)
    lines = []
    runs = mine.get(GOAL_RATE_QPS)
    if runs and variant == "fast":
        offs = [100 * (r.offered_qps / r.scheduled_qps - 1) for r in runs]
        offs_t = [100 * (r.offered_qps / r.target_qps - 1) for r in runs]
        lags = [r.lag_ms[1] for r in runs]
        off = median_of(offs)
        lines.append(
            f"{verdict(abs(off) <= 100 * GOAL_OFFERED_TOL)} offered at {GOAL_RATE_QPS:g}/s "
            f"within 1% of the schedule's rate: {off:+.2f}% ({each(offs, '+.2f')}; "
            f"vs target: {each(offs_t, '+.2f')})"
        )
        lag = median_of(lags)
        steals = [1000 * r.usage.steal_s for r in runs]
        lines.append(
            f"{verdict(lag <= GOAL_LAG_P99_MS)} send lag p99 at {GOAL_RATE_QPS:g}/s "
            f"<= {GOAL_LAG_P99_MS:g} ms: {lag:.3f} ms ({each(lags, '.3f')}; "
            f"the core stolen by the hypervisor: {each(steals, '.0f')} ms)"
        )
    runs = mine.get(GOAL_TTFT_RATE_QPS)
    if runs and variant == "ttft50":
        errs = [r.ttft_err_ms[0] for r in runs]
        err = median_of(errs)
        base = ref.get(GOAL_TTFT_RATE_QPS)
        floor = (
            ""
            if not base
            else f"; reference client: {each([b.ttft_err_ms[0] for b in base], '+.3f')} ms"
        )
        lines.append(
            f"{verdict(abs(err) <= GOAL_TTFT_ERR_MS)} TTFT error p50 at "
            f"{GOAL_TTFT_RATE_QPS:g}/s within {GOAL_TTFT_ERR_MS:g} ms: {err:+.3f} ms "
            f"({each(errs, '+.3f')}{floor})"
        )
    for rate in sorted(set(mine) & set(ref)):
        pairs = list(zip(mine[rate], ref[rate], strict=False))
        ratios = [q.cpu_s_per_1k / b.cpu_s_per_1k for q, b in pairs]
        ratio = median_of(ratios)
        lines.append(
            f"{verdict(ratio <= GOAL_CPU_RATIO)} CPU per request at {rate:g}/s within "
            f"{GOAL_CPU_RATIO:g}x the reference: cpu_ratio {ratio:.2f} ({each(ratios, '.2f')}; "
            f"s per 1k: {each([q.cpu_s_per_1k for q, _ in pairs], '.3f')} / "
            f"{each([b.cpu_s_per_1k for _, b in pairs], '.3f')})"
        )
    return lines


def print_profile(profiler: cProfile.Profile, out: Path | None, top: int = 15) -> None:
    """Top ``top`` functions by tottime and by cumtime; the raw stats to ``out`` if given."""
    stats = pstats.Stats(profiler, stream=sys.stdout)
    if out is not None:
        stats.dump_stats(out)
    for key in ("tottime", "cumulative"):
        print(f"\n--- cProfile, top {top} by {key} (qpsweep levels only) ---")
        stats.sort_stats(key).print_stats(top)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="250,500,1000,2000", help="req/s, comma-separated")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals per level")
    p.add_argument("--rounds", type=int, default=1, help="runs of each rate, clients alternating")
    p.add_argument("--variant", choices=("fast", "flush", "ttft50"), default="fast")
    p.add_argument(
        "--arrival", default="poisson", help="poisson, constant and/or trace, comma-separated"
    )
    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="the trace of 'trace'")
    p.add_argument("--clients", default="qpsweep,reference", help="qpsweep and/or reference")
    p.add_argument("--gen-cpu", type=int, default=0, help="core of this process")
    p.add_argument("--nginx-cpu", type=int, default=1, help="core of nginx")
    p.add_argument("--profile", type=Path, default=None, help="cProfile the qpsweep levels")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 600:
        p.error("--duration must be in (0, 600] seconds")
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be in [1, 20]")
    if not set(args.arrival.split(",")) <= {"poisson", "constant", "trace"}:
        p.error("--arrival: each must be poisson, constant or trace")
    return args


async def run_all(
    bench: Bench, rates: Sequence[float], duration_s: float, clients: str, rounds: int = 1
) -> list[LevelResult]:
    """Every rate, ``rounds`` times each arrival (``bench.arrival``, comma-separated), qpsweep
    then the reference, printing each row as it comes."""
    results = []
    print(COLUMNS, flush=True)
    for rate in rates:
        for round_ in range(1, rounds + 1):
            for arrival in bench.arrival.split(","):
                one = dataclasses.replace(bench, arrival=arrival)
                if "qpsweep" in clients:
                    results.append(await bench_qpsweep(one, rate, duration_s, round_))
                    print(row(results[-1]), flush=True)
                if "reference" in clients:
                    results.append(await bench_reference(one, rate, duration_s, round_))
                    print(row(results[-1]), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 whatever the goals say, 2 when nginx is missing."""
    args = parse_args(argv)
    rates = [float(x) for x in args.rates.split(",")]
    os.sched_setaffinity(0, {args.gen_cpu})
    profiler = cProfile.Profile() if args.profile else None
    try:
        with (
            nginx_target(args.variant, args.nginx_cpu) as target,
            tempfile.TemporaryDirectory(prefix="qpsweep-bench-") as tmp,
        ):
            print(
                f"variant {args.variant} ({target.url}), arrival {args.arrival}, "
                f"{args.duration:g} s per level, {args.rounds} round(s), generator on core "
                f"{args.gen_cpu}, nginx on core {args.nginx_cpu}, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            meter = Meter(args.gen_cpu, target.pid, target.base_url)
            trace = load_trace(args.trace) if "trace" in args.arrival.split(",") else None
            if trace is not None:
                print(trace.describe())
            bench = Bench(
                target.url,
                target.injected_ttft_s,
                meter,
                Path(tmp),
                args.arrival,
                profiler,
                trace,
            )
            loop = uvloop.new_event_loop()
            try:
                results = loop.run_until_complete(
                    run_all(bench, rates, args.duration, args.clients, args.rounds)
                )
            finally:
                loop.close()
    except MissingNginx as err:
        print(err, file=sys.stderr)
        return 2
    print()
    for arrival in args.arrival.split(","):
        mine = [r for r in results if r.arrival == arrival]
        for line in goal_lines(mine, args.variant):
            print(f"[{arrival}] {line}")
    if profiler is not None:
        print_profile(profiler, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
