"""``qpsweep dataset synth``: write a synthetic dataset file (``qpsweep.datasets.synth``)."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from qpsweep.cli.parser import Parser
from qpsweep.datasets.prompts import _VOCABULARY, MAX_DATASET_BYTES
from qpsweep.datasets.synth import TOKEN_RULE, synth_samples
from qpsweep.errors import ConfigError

EXAMPLE = (
    "example: qpsweep dataset synth --input-tokens-mean 500 --input-tokens-std 100 "
    "--output-tokens-mean 200 --turns 1-5 --count 500 --seed 1 -o datasets/synth.json"
)


def _synth_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "synth",
        help="write a synthetic conversation dataset of chosen token lengths",
        description="Write a seeded synthetic dataset (seed format, JSON array) whose prompts "
        "have normally distributed lengths and whose samples carry max_tokens drawn from the "
        f"output distribution. Token rule: {TOKEN_RULE}.",
        epilog=EXAMPLE,
    )
    for name, text in (
        ("input", "mean words (= tokens) per sample, all its turns together"),
        ("output", "mean of the per-sample max_tokens"),
    ):
        p.add_argument(f"--{name}-tokens-mean", type=float, required=True, metavar="N", help=text)
        p.add_argument(
            f"--{name}-tokens-std", type=float, default=0.0, metavar="N", help="default: 0"
        )
    p.add_argument(
        "--turns",
        default="1",
        metavar="N|LO-HI",
        help="turns per sample, uniform in LO-HI; T turns = T-1 user/assistant pairs, then the "
        "final user turn (default: %(default)s)",
    )
    p.add_argument(
        "--prefix-tokens",
        type=int,
        default=0,
        metavar="N",
        help="words (= tokens) of a system prompt shared within each prefix group, added to "
        "each sample's input (default: 0, no system prompt)",
    )
    p.add_argument(
        "--prefix-groups",
        type=int,
        default=None,
        metavar="G",
        help="how many different shared prefixes; each sample gets one at random "
        "(default: 1 with --prefix-tokens)",
    )
    p.add_argument("--count", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the JSON file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    return p


def _check_output(path: Path, force: bool) -> None:
    """Refuse a path the dataset cannot be written to or read back from, before any work."""
    if path.suffix.lower() == ".txt":
        raise ConfigError(f"-o: {path}: .txt files are read as plain-text prompts; use .json")
    if path.is_dir():
        raise ConfigError(f"-o: {path} is a directory")
    if path.exists() and not force:
        raise ConfigError(f"-o: {path} exists (add --force to overwrite it)")


def _cmd_synth(ns: argparse.Namespace) -> int:
    input_mean = _number("--input-tokens-mean", ns.input_tokens_mean, 1)
    input_std = _number("--input-tokens-std", ns.input_tokens_std, 0)
    output_mean = _number("--output-tokens-mean", ns.output_tokens_mean, 1)
    output_std = _number("--output-tokens-std", ns.output_tokens_std, 0)
    turns = parse_turns(ns.turns)
    if ns.count < 1:
        raise ConfigError(f"--count: {ns.count} must be a positive integer")
    if ns.seed < 0:
        raise ConfigError(f"--seed: {ns.seed} must be a non-negative integer")
    if ns.prefix_tokens < 0:
        raise ConfigError(f"--prefix-tokens: {ns.prefix_tokens} must be 0 or more")
    if ns.prefix_groups is not None and ns.prefix_tokens == 0:
        raise ConfigError("--prefix-groups: only with --prefix-tokens N (N > 0)")
    groups = 1 if ns.prefix_groups is None else ns.prefix_groups
    if groups < 1:
        raise ConfigError(f"--prefix-groups: {groups} must be at least 1")
    if groups > ns.count:
        raise ConfigError(f"--prefix-groups: {groups} is more than --count {ns.count}")
    word_bytes = 1 + sum(map(len, _VOCABULARY)) / len(_VOCABULARY)  # a lower bound of the size:
    if ns.count * (input_mean + ns.prefix_tokens) * word_bytes > MAX_DATASET_BYTES:  # early
        raise ConfigError(
            f"--count: {ns.count} samples of {input_mean + ns.prefix_tokens:g} words would be "
            "over the "
            f"{MAX_DATASET_BYTES // 2**20} MiB a dataset file may have"
        )
    path = Path(ns.output)
    _check_output(path, ns.force)
    samples = synth_samples(
        ns.count,
        input_mean,
        input_std,
        output_mean,
        output_std,
        turns,
        ns.seed,
        ns.prefix_tokens,
        groups,
    )
    data = ("[\n" + ",\n".join(json.dumps(s) for s in samples) + "\n]\n").encode()
    if len(data) > MAX_DATASET_BYTES:
        size, limit = len(data) / 2**20, MAX_DATASET_BYTES // 2**20
        raise ConfigError(f"--count: {ns.count} samples make {size:.0f} MiB, over {limit} MiB")
    try:
        with path.open("wb" if ns.force else "xb") as out:
            out.write(data)
    except FileExistsError:
        raise ConfigError(f"-o: {path} exists (add --force to overwrite it)") from None
    except OSError as err:
        raise ConfigError(f"-o: cannot write {path} ({err.strerror or err})") from None
    words = [sum(len(t["content"].split()) for t in s["cut_chat_history"]) for s in samples]
    prefix = (
        f", plus a shared prefix of {ns.prefix_tokens} words in {groups} group(s)"
        if ns.prefix_tokens
        else ""
    )
    print(
        f"wrote {ns.count} conversations to {ns.output} (input words mean "
        f"{np.mean(words):.1f}{prefix}, output max_tokens mean "
        f"{np.mean([s['max_tokens'] for s in samples]):.1f})"
    )
    return 0


def main_dataset(argv: list[str]) -> int:
    """``qpsweep dataset SUBCOMMAND ...``; returns the exit code, raises ``ConfigError``."""
    p = Parser(
        prog="qpsweep dataset",
        description=f"Dataset tools. Token rule: {TOKEN_RULE}.",
        epilog=EXAMPLE,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _synth_parser(sub)
    ns = p.parse_args(argv)
    return _cmd_synth(ns)


def parse_turns(text: str) -> tuple[int, int]:
    """``"N"`` or ``"LO-HI"`` with ``1 <= LO <= HI`` -> ``(LO, HI)``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if match:
        low = int(match[1])
        high = int(match[2]) if match[2] is not None else low
        if 1 <= low <= high:
            return low, high
    raise ConfigError(f'--turns: "{text}" must be N or LO-HI with 1 <= LO <= HI')


def _number(flag: str, value: float, minimum: float) -> float:
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{flag}: {value:g} must be a number >= {minimum:g}")
    return value
