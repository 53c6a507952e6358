"""The generator in ``--multi-turn`` mode beside the plain mode: send lag and CPU per request.

``python tests/perf/bench_sessions.py [--rate 1000] [--duration 10] [--rounds 1]
[--modes plain,real,dataset] [--turns 4]``

Same set-up as ``bench_generator.py`` (its pieces are reused): nginx's ``fast`` echo target
pinned to core ``--nginx-cpu``, this process to ``--gen-cpu``, one measured level per mode after
``WARMUP_S`` of unmeasured traffic, records written with ``RecordWriter`` through the sweep's
sink, ``gc.collect(); gc.freeze()`` before the level.  Modes, at the same request rate:

* ``plain``: ``LevelAttack`` on a Poisson schedule at ``--rate`` (``bench_generator``'s level);
* ``real`` / ``dataset``: ``SessionLevel`` as ``_Sweep._level`` wires it: conversations of
  ``--turns`` user turns (short ones, like ``bench_generator``'s prompts, the dataset's answers
  one sentence), sessions starting Poisson at ``rate / turns``, think time 0, the history with
  the answers the target streamed (``real``: the text collected from every event, a body
  encoded per turn) or the dataset's (``dataset``).  nginx answers at once, so a session's
  turns follow each other within milliseconds and the request rate is about ``--rate``.

Per mode (records' times, seconds since the level start): ``sent`` requests, ``offered/s`` =
sent / ``--duration``, ``lag`` = ``sent_s - scheduled_s`` p50 / p99 / max in ms (for a session
turn ``scheduled_s`` is its release, so this is the generator's own delay, as in plain mode),
``cpu_s/1k`` = 1000 x process CPU time over the level / requests sent, ``others%`` and
``steal_ms`` as in ``bench_generator`` (other work on the generator's core; the hypervisor's
steal), and for sessions the requests per session and the history words per turn.  No goal is
judged: the figures go to ``docs/benchmarks.md`` beside the plain mode's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import uvloop
from bench_generator import (
    DRAIN_GRACE_S,
    SEED,
    TIMEOUT_S,
    WARMUP_S,
    Bench,
    Meter,
    Usage,
    bench_settings,
    build_attack,
    measured,
    pct,
    run_attack,
    schedule_for,
    sweep_sink,
)
from nginx_target import MissingNginx, nginx_target

from qpsweep.config.sessions import SessionPlan
from qpsweep.datasets.prompts import Prompt, prompt_order
from qpsweep.datasets.sessions import Session, mean_turns, sessions_of
from qpsweep.http.client import Sender
from qpsweep.load.sessions import SessionLevel, session_starts_s, think_times_s
from qpsweep.records.record import RecordWriter, RequestRecord, read_records

N_CONVERSATIONS = 64


def bench_sessions(turns: int, n: int = N_CONVERSATIONS) -> tuple[Session, ...]:
    """``n`` conversations of ``turns`` short user turns, one-sentence dataset answers."""
    prompts = []
    for k in range(n):
        messages: list[tuple[str, str]] = [("system", "You are a helpful assistant.")]
        for t in range(turns):
            messages.append(("user", f"Question {k}.{t}: what is {k} + {t}? Explain the steps."))
            if t < turns - 1:
                messages.append(("assistant", f"It is {k + t}: add the ones, then the tens."))
        prompts.append(Prompt(k, tuple(messages)))
    return sessions_of(prompts, "bench")


def session_level(
    sender: Sender, rate: float, duration_s: float, history: str, turns: int, writer: RecordWriter
) -> SessionLevel:
    """The level's ``SessionLevel`` as ``_Sweep._level`` builds it."""
    sessions = bench_sessions(turns)
    session_qps, starts = session_starts_s(
        rate, mean_turns(sessions), duration_s, "poisson", 1.0, SEED
    )
    order = prompt_order(len(sessions), SEED)
    chosen = [sessions[order[k % len(sessions)]] for k in range(len(starts))]
    plan = SessionPlan(0.0, False, history)
    thinks = think_times_s(plan, sum(s.n_turns - 1 for s in chosen), SEED, rate)
    return SessionLevel(
        0, rate, session_qps, starts.tolist(), chosen, thinks, plan, duration_s, sender,
        sweep_sink(writer),
    )  # fmt: skip


async def run_sessions(level: SessionLevel) -> None:
    """Schedule, drain, cancel the rest: ``_Sweep._attack`` without the signal handling."""
    try:
        await level.schedule(perf_counter())
        await level.drain(TIMEOUT_S + DRAIN_GRACE_S)
    finally:
        await level.cancel_rest()


def level_of(
    sender: Sender, mode: str, rate: float, duration_s: float, turns: int, writer: RecordWriter
) -> Coroutine[Any, Any, None]:
    """The coroutine that runs one level of ``mode`` into ``writer``."""
    if mode == "plain":
        offsets_s = schedule_for(rate, duration_s, "poisson")
        return run_attack(build_attack(sender, 0, rate, offsets_s, writer))
    return run_sessions(session_level(sender, rate, duration_s, mode, turns, writer))


async def one_mode(
    bench: Bench, mode: str, rate: float, duration_s: float, turns: int
) -> tuple[list[RequestRecord], Usage]:
    """Warm up, then one measured level of ``mode``; its records and usage."""
    path = bench.workdir / f"requests-{mode}.jsonl"
    with Sender(bench_settings(bench.url)) as sender:
        warm = RecordWriter(bench.workdir / "warmup.jsonl")
        await level_of(sender, mode, rate, WARMUP_S, turns, warm)
        warm.close()
        writer = RecordWriter(path)
        _, usage = await measured(bench, level_of(sender, mode, rate, duration_s, turns, writer))
        writer.close()
    records = list(read_records(path))
    path.unlink()
    return records, usage


COLUMNS = (
    "mode     round   rate   sent offered/s lag50ms lag99ms lagmaxms cpu_s/1k others% "
    "steal_ms   ok  req/sess hist_words"
)


def row(mode: str, round_: int, rate: float, duration_s: float, records: list[RequestRecord],
        usage: Usage) -> str:  # fmt: skip
    """One table line (see ``COLUMNS``)."""
    n = len(records)
    lag = 1000 * np.array([r.sent_s - r.scheduled_s for r in records])
    p50, p99, mx = pct(lag, 50, 99, 100)
    sessions = {r.session for r in records if r.session is not None}
    per = f"{n / len(sessions):8.2f}" if sessions else f"{'-':>8}"
    words = [r.history_tokens for r in records if r.history_tokens is not None]
    hist = f"{np.mean(words):10.0f}" if words else f"{'-':>10}"
    others = 100 * usage.others_s / usage.wall_s
    return (
        f"{mode:<8}{round_:6d} {rate:6g} {n:6d} {n / duration_s:9.1f} {p50:7.3f} {p99:7.3f} "
        f"{mx:8.2f} {1000 * usage.cpu_s / max(n, 1):8.3f} {others:7.1f} "
        f"{1000 * usage.steal_s:8.0f} {sum(r.ok for r in records):6d} {per} {hist}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals per level")
    p.add_argument("--rounds", type=int, default=1, help="runs of each mode, modes alternating")
    p.add_argument("--modes", default="plain,real,dataset", help="plain, real and/or dataset")
    p.add_argument("--turns", type=int, default=4, help="user turns per conversation")
    p.add_argument("--gen-cpu", type=int, default=0, help="core of this process")
    p.add_argument("--nginx-cpu", type=int, default=1, help="core of nginx")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 600 or not 1 <= args.rounds <= 20 or args.turns < 1:
        p.error("--duration in (0, 600], --rounds in [1, 20], --turns >= 1")
    return args


async def run_all(args: argparse.Namespace, bench: Bench) -> None:
    """Every mode, ``rounds`` times, modes taking turns; a row each as it comes."""
    print(COLUMNS, flush=True)
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes.split(","):
            records, usage = await one_mode(bench, mode, args.rate, args.duration, args.turns)
            print(row(mode, round_, args.rate, args.duration, records, usage), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 2 when nginx is missing."""
    args = parse_args(argv)
    os.sched_setaffinity(0, {args.gen_cpu})
    try:
        with (
            nginx_target("fast", args.nginx_cpu) as target,
            tempfile.TemporaryDirectory(prefix="qpsweep-bench-") as tmp,
        ):
            print(
                f"nginx fast ({target.url}), {args.rate:g} req/s, {args.duration:g} s per level, "
                f"{args.turns} turns per session, {args.rounds} round(s), generator on core "
                f"{args.gen_cpu}, nginx on core {args.nginx_cpu}, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            meter = Meter(args.gen_cpu, target.pid, target.base_url)
            bench = Bench(target.url, 0.0, meter, Path(tmp), "poisson")
            loop = uvloop.new_event_loop()
            try:
                loop.run_until_complete(run_all(args, bench))
            finally:
                loop.close()
    except MissingNginx as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
