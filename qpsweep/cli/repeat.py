"""``qpsweep --repeat N [sweep flags]``: the whole sweep N times, one seed each, and the
summary across them (``qpsweep.output.repeats``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from qpsweep.config.scenario import Scenario
from qpsweep.errors import ConfigError
from qpsweep.output.models import ModelRun
from qpsweep.output.repeats import RepeatRun, repeat_seeds, sweep_repeats


class SweepOne(Protocol):
    """The sweep command's ``sweep``: probe (when ``check``), then sweep into
    ``results_dir/name`` with ``scenario``."""

    def __call__(
        self,
        model: str,
        results_dir: Path,
        name: str | None,
        notes: dict[str, Any],
        *,
        scenario: Scenario,
        check: bool,
    ) -> ModelRun: ...


def repeat_count(ns: argparse.Namespace) -> int | None:
    """``--repeat`` checked: ``None`` when not given, else a whole number >= 1 that goes with
    the other flags; ``ConfigError`` naming the flag otherwise."""
    count: int | None = ns.repeat
    if count is None:
        return None
    if count < 1:
        raise ConfigError(f"--repeat: {count} must be a whole number of runs, at least 1")
    if ns.all_models:
        raise ConfigError("--repeat: not with --all-models (repeat one model at a time)")
    if ns.shard is not None:
        raise ConfigError("--repeat: not with --shard (each shard runs once, on one timeline)")
    return count


def sweep_repeated(
    count: int,
    model: str,
    scenario: Scenario,
    where: tuple[Path, str | None],
    sweep: SweepOne,
    check: bool,
    print_error: Callable[[str], None],
) -> int:
    """Run the repeats into one directory (``where`` = results dir, ``--name``), print the
    summary and the directory; the exit code (1: the probe failed before the first repeat,
    130: interrupted)."""
    seeds = repeat_seeds(scenario.seed, count)
    print(
        f"--repeat {count}: the sweep {count} times, seeds {seeds[0]} to {seeds[-1]}",
        file=sys.stderr,
    )

    def once(index: int, seed: int, parent: Path, dir_name: str) -> RepeatRun:
        notes = {"repeat": {"index": index, "count": count, "seed": seed}}
        one = replace(scenario, seed=seed)
        run = sweep(model, parent, dir_name, notes, scenario=one, check=check and index == 1)
        return RepeatRun(index, seed, run.run_dir, run.analysis, run.interrupted, run.reason)

    parent, runs, text = sweep_repeats(count, scenario.seed, where[0], where[1], once)
    print(text, end="")
    print(f"Results: {parent}")
    if runs[-1].status == "not_run":
        print_error(f"the endpoint cannot serve a sweep: {runs[-1].reason}")
        return 1
    return 130 if any(r.interrupted for r in runs) else 0
