"""``qpsweep demo``: the built-in simulator in-process and a two-minute sweep across its capacity.

The simulator runs with its defaults (16 slots, decode step 10 ms + 0.5 ms per sequence) and
the demo asks for ``DEMO_MAX_TOKENS`` output tokens from ``DEMO_PROMPT_WORDS``-word synthetic
prompts, so its capacity is known in advance (``sim.capacity_rps``, about 13.5 req/s).  The
default levels are ``DEMO_LOAD_FACTORS`` times that capacity: three below it, two above, so the
knee is crossed.  Levels last 20 s: the verdict's growth test reads the second half of each,
and with 10 s levels a 1.5x overload of this server stays ``inconclusive`` (its finishes come
in decode-step waves, and 5 s hold only two or three batches of its ~1 s service time).
Nothing outside the package is needed: no dataset file, no network.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from qpsweep.cli.parser import Parser
from qpsweep.config.scenario import Scenario, Target, normalize_endpoint, parse_qps, positive
from qpsweep.datasets.prompts import prompts_sha256, synthetic_prompts
from qpsweep.load.sweep import SweepResult, run_sweep
from qpsweep.sim.server import SimConfig, SimServer, capacity_rps

DEMO_SIM = SimConfig()
DEMO_MAX_TOKENS = 64
DEMO_PROMPT_WORDS = 40
DEMO_PROMPTS = 64
DEMO_LOAD_FACTORS = (0.3, 0.6, 0.9, 1.2, 1.5)
_PREAMBLE_WORDS = 3  # "Please answer briefly:" before the synthetic words


def demo_capacity_rps() -> float:
    """The simulator's saturated throughput for the demo's request shape (requests/s)."""
    return capacity_rps(DEMO_SIM, DEMO_MAX_TOKENS, DEMO_PROMPT_WORDS + _PREAMBLE_WORDS)


def demo_levels(capacity: float) -> tuple[float, ...]:
    """``DEMO_LOAD_FACTORS`` x ``capacity``, rounded to whole QPS (at least 1)."""
    return tuple(float(max(1, round(f * capacity))) for f in DEMO_LOAD_FACTORS)


def run_demo(
    results_dir: Path,
    duration_s: float = 20.0,
    qps: tuple[float, ...] | None = None,
    seed: int = 0,
    console: TextIO | None = None,
) -> SweepResult:
    """Start the simulator on a free loopback port, sweep it, stop it; returns the sweep."""
    console = console or sys.stderr
    capacity = demo_capacity_rps()
    levels = qps or demo_levels(capacity)
    prompts = synthetic_prompts(DEMO_PROMPTS, DEMO_PROMPT_WORDS, seed)
    scenario = Scenario(
        qps=levels, duration_s=duration_s, max_tokens=DEMO_MAX_TOKENS, timeout_s=60.0, seed=seed
    )
    with SimServer(DEMO_SIM) as sim:
        print(
            f"qpsweep demo: simulator at {sim.base_url} with {DEMO_SIM.max_num_seqs} slots, "
            f"capacity about {capacity:.1f} req/s at {DEMO_MAX_TOKENS} output tokens; "
            f"sweeping {', '.join(f'{q:g}' for q in levels)} QPS for {duration_s:g} s each",
            file=console,
        )
        target = Target(url=normalize_endpoint(sim.base_url), model=DEMO_SIM.model)
        return run_sweep(
            target,
            scenario,
            prompts,
            dataset=f"built-in synthetic prompts ({DEMO_PROMPTS} x ~{DEMO_PROMPT_WORDS} words)",
            dataset_sha256=prompts_sha256(prompts),
            argv=["qpsweep", "demo"],
            results_dir=results_dir,
            console=console,
            notes={"simulator": asdict(DEMO_SIM), "simulator_capacity_rps": round(capacity, 3)},
        )


def _show(result: SweepResult) -> int:
    """Print a finished sweep's table and directory; the exit code (130 if interrupted)."""
    print(result.table)
    print(f"Results: {result.run_dir}")
    return 130 if result.interrupted else 0


def main_demo(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep demo",
        description="Start the built-in LLM server simulator on a free 127.0.0.1 port, sweep it "
        "across its capacity (about two minutes), write a normal result directory, print the "
        "table.",
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds per level (default: 20)")
    p.add_argument("--qps", help="levels (default: 0.3x to 1.5x the simulator's capacity)")
    p.add_argument("--seed", type=int, default=0, help="schedule and prompt seed (default: 0)")
    p.add_argument("--results-dir", default="results", help="default: %(default)s")
    ns = p.parse_args(argv)
    duration_s = positive("--duration", ns.duration)
    qps = parse_qps(ns.qps) if ns.qps else None
    result = run_demo(Path(ns.results_dir), duration_s, qps, ns.seed)
    return _show(result)
