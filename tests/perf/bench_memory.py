"""Does the generator's memory stay bounded over a long level?  RSS per finished request.

``python tests/perf/bench_memory.py [--rate 1000] [--duration 600] [--variant fast]``

One qpsweep level (the same pieces as ``bench_generator.py``: ``LevelAttack``, ``Sender``,
``RecordWriter`` to a temporary ``requests.jsonl``) at ``--rate`` for ``--duration`` seconds
against the nginx target, this process pinned to ``--gen-cpu`` and nginx to ``--nginx-cpu``.
``VmRSS`` (``/proc/self/status``) is sampled before the level is built (``rss_base``), once its
``LevelAttack`` with its offset and prompt lists exists (``rss_built``, as ``_Sweep._level``
builds it before the first send), every ``SAMPLE_S`` = 10 s while it runs, and
after the drain (``rss_end``, the level's objects still alive).  Printed:

* ``growth_per_request_B`` = (rss_end - rss_built) / requests finished: what each finished
  request leaves behind (the goal: at most a few hundred bytes, ``GOAL_B_PER_REQUEST``);
* ``with_schedule_B`` = (rss_end - rss_base) / requests finished: the same, counting the
  level's precomputed schedule (offsets and prompt lists, made before the first send);
* ``slope_B_per_request`` = least-squares slope of RSS over time (bytes/s), over the second
  half of the samples, / the offered rate: steady growth, which a leak shows and a one-time
  warm-up of allocator pools does not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np
import uvloop
from bench_generator import (
    WARMUP_S,
    bench_settings,
    build_attack,
    qpsweep_level,
    run_attack,
    schedule_for,
)
from nginx_target import MissingNginx, nginx_target

from qpsweep.http.client import Sender
from qpsweep.records.record import RecordWriter

SAMPLE_S = 10.0
GOAL_B_PER_REQUEST = 500.0


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS`` of ``/proc/self/status``), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Samples:
    """(seconds since the level start, RSS bytes) over time."""

    t_s: list[float] = field(default_factory=list)
    rss_b: list[int] = field(default_factory=list)

    def take(self, t_s: float) -> None:
        """Record the RSS now, at ``t_s``."""
        self.t_s.append(t_s)
        self.rss_b.append(rss_bytes())

    def slope_b_per_s(self) -> float:
        """Least-squares slope of RSS over the second half of the samples (bytes/s)."""
        half = len(self.t_s) // 2
        t, r = np.array(self.t_s[half:]), np.array(self.rss_b[half:], dtype=float)
        if t.size < 2:
            return float("nan")
        return float(np.polyfit(t, r, 1)[0])


async def sampler(samples: Samples, t0: float, stop: asyncio.Event) -> None:
    """Take a sample every ``SAMPLE_S`` until ``stop`` is set, printing each."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_S)
        except asyncio.TimeoutError:
            samples.take(perf_counter() - t0)
            print(
                f"  t={samples.t_s[-1]:6.0f} s  rss={samples.rss_b[-1] / 2**20:8.1f} MiB",
                flush=True,
            )


@dataclass(frozen=True)
class MemoryResult:
    """The RSS readings of one level and its request count."""

    rss_base: int
    rss_built: int
    rss_end: int
    n_sent: int
    duration_s: float
    samples: Samples


async def memory_level(url: str, rate: float, duration_s: float, workdir: Path) -> MemoryResult:
    """Warm up, then one sampled level at ``rate`` for ``duration_s``."""
    settings = bench_settings(url)
    with Sender(settings) as sender:
        warm = schedule_for(rate, WARMUP_S, "poisson")
        await qpsweep_level(sender, -1, rate, warm, workdir / "warmup.jsonl")
        gc.collect()
        gc.freeze()
        rss_base = rss_bytes()
        writer = RecordWriter(workdir / "requests.jsonl")
        attack = build_attack(sender, 0, rate, schedule_for(rate, duration_s, "poisson"), writer)
        samples, stop = Samples(), asyncio.Event()
        t0 = perf_counter()
        samples.take(0.0)
        rss_built = samples.rss_b[0]
        task = asyncio.create_task(sampler(samples, t0, stop))
        try:
            await run_attack(attack)
        finally:
            writer.close()
            stop.set()
            await task
        samples.take(perf_counter() - t0)
        gc.unfreeze()
        rss_end = samples.rss_b[-1]
        return MemoryResult(rss_base, rss_built, rss_end, attack.n_sent, duration_s, samples)


def print_result(r: MemoryResult, rate: float) -> None:
    """The figures of the module docstring, and PASS/FAIL for the goal."""
    n = max(r.n_sent, 1)
    growth = (r.rss_end - r.rss_built) / n
    with_schedule = (r.rss_end - r.rss_base) / n
    slope = r.samples.slope_b_per_s() / rate
    mib = 2**20
    print(
        f"rate {rate:g}/s for {r.duration_s:g} s: {r.n_sent} requests; rss_base "
        f"{r.rss_base / mib:.1f} MiB, rss_built {r.rss_built / mib:.1f} MiB, rss_end "
        f"{r.rss_end / mib:.1f} MiB"
    )
    print(f"growth_per_request_B {growth:.1f}")
    print(f"with_schedule_B      {with_schedule:.1f}")
    print(f"slope_B_per_request  {slope:.1f}  (second half of the samples)")
    ok = "PASS" if growth <= GOAL_B_PER_REQUEST else "FAIL"
    print(f"{ok} memory per finished request <= {GOAL_B_PER_REQUEST:g} B: {growth:.1f} B")


def main() -> int:
    """Run the level; 0 whatever the goal says, 2 when nginx is missing."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=600.0, help="seconds (at most 3600)")
    p.add_argument("--variant", choices=("fast", "flush", "ttft50"), default="fast")
    p.add_argument("--gen-cpu", type=int, default=0)
    p.add_argument("--nginx-cpu", type=int, default=1)
    args = p.parse_args()
    if not 0 < args.duration <= 3600:
        p.error("--duration must be in (0, 3600] seconds")
    os.sched_setaffinity(0, {args.gen_cpu})
    try:
        with (
            nginx_target(args.variant, args.nginx_cpu) as target,
            tempfile.TemporaryDirectory(prefix="qpsweep-mem-") as tmp,
        ):
            print(f"variant {args.variant} ({target.url}); RSS every {SAMPLE_S:g} s", flush=True)
            result = uvloop.run(memory_level(target.url, args.rate, args.duration, Path(tmp)))
    except MissingNginx as err:
        print(err, file=sys.stderr)
        return 2
    print_result(result, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
