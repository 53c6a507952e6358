"""The verdict against servers of known capacity: truth vs. qpsweep's figures, case by case.

``python tests/perf/bench_verdict.py [--cases fifo8x0.5,refuse8x0.5,...] [--modes fixed,auto]
[--seeds 1,2] [--duration S] [--long] [--json FILE] [--qpsweep-src DIR] [--keep DIR]``

Each run is one ``python -m qpsweep`` process (``--no-plot --no-check``, ``--results-dir`` in a
temporary directory, ``--dataset datasets/short_prompts.jsonl``, ``--max-tokens 8``, 20 for
``sim``, ``--seed SEED``) against its own server process on 127.0.0.1
(``tests/capacity_servers.py``, or ``qpsweep sim``); the figures are read from the run's
``saturation.json`` with ``.get`` (``capacity_qps`` and the intervals exist only in newer
verdicts).  Cases (truth in requests/s):

* ``fifo8x0.5``: FIFO, 8 slots x 0.5 s, truth 16 (N / S); fixed ``4,8,12,14,16,18,20,24`` for
  8 s a level; auto from 2 QPS with 15 s levels.
* ``fifo32x0.5``: 32 x 0.5 s, truth 64; fixed at ``QUEUE_FACTORS`` x truth, 8 s; auto from
  truth / 8, 15 s.
* ``fifo4x1``: 4 x 1 s, truth 4; fixed at ``QUEUE_FACTORS`` x truth, 15 s.
* ``refuse8x0.5``: 503 above 8 in flight, 0.5 s service; truth ``rate_at_blocking(8, 0.5,
  0.05)`` (Erlang-B reaches the default ``--max-error-rate`` 0.05: 9.08/s); fixed at
  ``REFUSE_FACTORS`` x truth, 10 s; auto from truth / 4, 15 s.
* ``sim``: ``qpsweep sim`` with 4 slots, 5 ms steps, no per-sequence or prefill cost,
  ``--max-output-tokens 20`` and ``--max-tokens 20``; fixed at ``SIM_FACTORS`` x truth, 8 s.
  Truth ``B / (mean(L) * step_s)`` (the sim's formula, ``capacity_rps``, for the mean output
  length): each step gives every one of the B busy slots a token, so a saturated engine
  finishes ``B / (E[L] step_s)`` requests/s.  ``L`` per prompt is ``min(its max_tokens or 20,
  20)``: the dataset's per-prompt ``max_tokens`` override ``--max-tokens`` (3 of 50 ask 16,
  so the truth is 40.5, not ``capacity_rps(config, 20)`` = 40; without the cap it would be
  34.6).
* ``--long`` adds ``fixed60``: ``fifo8x0.5``'s fixed list with 60 s levels.

``--duration`` overrides every level duration.  Columns: each figure and its relative error
``figure / truth - 1``; ``lowest sat.`` the lowest offered rate of a ``saturated`` level;
``wall s`` the qpsweep process's wall time; ``levels`` ``offered:state`` in the order run
(``SAT`` saturated, ``ok``, ``deg`` degraded, ``inc`` inconclusive, ``cli`` client-limited),
then the stop rule that ended the sweep early, if one did (``metadata.json``).
Then one line per goal (docs/verdict.md), PASS or FAIL with the rows that miss it:

1. ``saturation_qps`` within 10% of the truth in every run;
2. no level saturated below 0.9 x the truth (offered rate);
3. ``recommended_qps`` below the truth always, and within [0.6, 0.8] x the truth for the
   queueing cases (``fifo*``, ``sim``);
4. every ``--qps auto`` run's wall time within its ``--budget`` (qpsweep's default 900 s).

``--keep DIR`` keeps each run's result directory under ``DIR/CASE-MODE-SEED/`` (else they go
to a temporary directory), so that a later verdict can be recomputed from the same records
with ``qpsweep report``.  ``--qpsweep-src DIR`` runs the qpsweep of another source tree (its
``qpsweep`` package put first on ``PYTHONPATH``, e.g. a ``git archive`` of an older commit)
against the same servers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from capacity_servers import rate_at_blocking  # noqa: E402

DATASET = REPO / "datasets" / "short_prompts.jsonl"
QUEUE_FACTORS = (0.25, 0.5, 0.75, 0.875, 1.0, 1.125, 1.25, 1.5)
REFUSE_FACTORS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
SIM_FACTORS = (0.4, 0.7, 0.9, 1.1, 1.25, 1.5)
SIM_SLOTS, SIM_STEP_MS, SIM_TOKENS = 4, 5.0, 20
SIM_FLAGS = (
    f"--max-num-seqs={SIM_SLOTS}",
    f"--decode-ms={SIM_STEP_MS:g}",
    "--decode-ms-per-seq=0",
    "--prefill-ms-per-token=0",
    f"--max-output-tokens={SIM_TOKENS}",
)
DEFAULT_BUDGET_S = 900.0  # qpsweep's --budget default
STATE_ABBREV = {
    "saturated": "SAT",
    "ok": "ok",
    "degraded": "deg",
    "inconclusive": "inc",
    "client_limited": "cli",
    "no_requests": "none",
}


def sim_truth_rps(dataset: Path = DATASET, max_tokens: int = SIM_TOKENS) -> float:
    """``SIM_SLOTS / (mean(L) * step_s)`` with ``L = min(prompt max_tokens or max_tokens,
    SIM_TOKENS)`` over the dataset's prompts (each is sent equally often in the long run)."""
    lengths = []
    for line in dataset.read_text().splitlines():
        if line.strip():
            asked = json.loads(line).get("max_tokens") or max_tokens
            lengths.append(min(int(asked), SIM_TOKENS))
    return SIM_SLOTS / (sum(lengths) / len(lengths) * SIM_STEP_MS / 1000)


@dataclass(frozen=True)
class Case:
    """A server of known capacity and the sweeps run against it."""

    server: tuple[str, ...]  # capacity_servers.py arguments, or ("sim",)
    truth_rps: float
    queueing: bool  # requests wait (fifo, sim) rather than being refused
    fixed_qps: tuple[float, ...]
    fixed_duration_s: float
    auto_start_qps: float | None = None  # None: no auto run
    auto_duration_s: float = 15.0
    max_tokens: int = 8


def _times(truth: float, factors: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(f"{truth * f:.3g}") for f in factors)


REFUSE_TRUTH = rate_at_blocking(8, 0.5, 0.05)
SIM_TRUTH = sim_truth_rps()
CASES = {
    "fifo8x0.5": Case(
        ("fifo", "--slots", "8", "--service-s", "0.5"),
        16.0,
        True,
        (4, 8, 12, 14, 16, 18, 20, 24),
        8,
        auto_start_qps=2.0,
    ),
    "fifo32x0.5": Case(
        ("fifo", "--slots", "32", "--service-s", "0.5"),
        64.0,
        True,
        _times(64.0, QUEUE_FACTORS),
        8,
        auto_start_qps=64.0 / 8,
    ),
    "fifo4x1": Case(
        ("fifo", "--slots", "4", "--service-s", "1"), 4.0, True, _times(4.0, QUEUE_FACTORS), 15
    ),
    "refuse8x0.5": Case(
        ("refuse", "--slots", "8", "--service-s", "0.5"),
        REFUSE_TRUTH,
        False,
        _times(REFUSE_TRUTH, REFUSE_FACTORS),
        10,
        auto_start_qps=float(f"{REFUSE_TRUTH / 4:.3g}"),
    ),
    "sim": Case(("sim",), SIM_TRUTH, True, _times(SIM_TRUTH, SIM_FACTORS), 8, max_tokens=20),
}
LONG_CASES = ("fifo8x0.5",)  # --long: their fixed list again with 60 s levels (mode fixed60)


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def serving(case: Case, src: Path | None) -> Iterator[tuple[str, str | None]]:
    """The case's server in its own process; yields its base URL and, for the capacity
    servers, their ``/stats`` URL."""
    if case.server == ("sim",):
        cmd = [sys.executable, "-m", "qpsweep", "sim", "--port", "0", *SIM_FLAGS]
    else:
        cmd = [sys.executable, str(REPO / "tests" / "capacity_servers.py"), *case.server]
    cwd = src or REPO
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=cwd, env=_env(src))
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if case.server == ("sim",):
            yield line.split(" listening on ")[1].split()[0], None
        else:
            base = f"http://127.0.0.1:{int(line)}"
            yield f"{base}/v1", f"{base}/stats"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def _stats(url: str | None) -> dict[str, Any] | None:
    if url is None:
        return None
    with urllib.request.urlopen(url, timeout=5) as resp:
        stats: dict[str, Any] = json.load(resp)
        return stats


def run_case(
    name: str, mode: str, seed: int, duration_s: float, src: Path | None, keep: Path | None = None
) -> dict[str, Any]:
    """One ``qpsweep`` run of case ``name`` (``mode``: fixed, auto or fixed60); its row."""
    case = CASES[name]
    if mode == "auto":
        assert case.auto_start_qps is not None
        levels = ["--qps", "auto", "--start-qps", f"{case.auto_start_qps:g}"]
        level_s = case.auto_duration_s
    else:
        levels = ["--qps", ",".join(f"{q:g}" for q in case.fixed_qps)]
        level_s = 60.0 if mode == "fixed60" else case.fixed_duration_s
    level_s = duration_s or level_s
    row: dict[str, Any] = {"case": name, "mode": mode, "seed": seed, "duration_s": level_s}
    row |= {"truth": case.truth_rps, "queueing": case.queueing, "budget_s": DEFAULT_BUDGET_S}
    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
        else:
            tmp = str(keep / f"{name}-{mode}-{seed}")
            Path(tmp).mkdir(parents=True, exist_ok=True)
        url, stats_url = stack.enter_context(serving(case, src))
        argv = [sys.executable, "-m", "qpsweep", "--endpoint", url, "--model", "m"]
        argv += ["--max-tokens", str(case.max_tokens), *levels, "--duration", f"{level_s:g}"]
        argv += ["--seed", str(seed), "--no-plot", "--no-check", "--results-dir", tmp]
        argv += ["--dataset", str(DATASET)]
        start_s = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, cwd=src or REPO, env=_env(src)
        )
        row["wall_s"] = round(time.perf_counter() - start_s, 1)
        row["server"] = _stats(stats_url)
        runs = sorted(p for p in Path(tmp).glob("*") if p.is_dir())
        path = runs[-1] / "saturation.json" if runs else None
        if done.returncode != 0 or path is None or not path.exists():
            row["error"] = f"exit {done.returncode}: {done.stderr[-800:]}"
            return row
        verdict = json.loads(path.read_text())
    levels_run = verdict.get("levels") or []
    saturated = [lv["offered_qps"] for lv in levels_run if lv.get("state") == "saturated"]
    keys = ("saturation_qps", "capacity_qps", "max_sustainable_qps", "recommended_qps")
    row |= {k: verdict.get(k) for k in (*keys, "certified_qps")}
    row |= {k: verdict.get(k) for k in ("saturation_interval", "capacity_interval")}
    row["lowest_saturated"] = min(saturated) if saturated else None
    row["levels"] = [
        {k: lv.get(k) for k in ("index", "qps_target", "offered_qps", "state", "signals")}
        for lv in levels_run
    ]
    row["reason"] = verdict.get("reason")
    metadata = runs[-1] / "metadata.json"
    if metadata.exists():  # why a fixed list ended early (a stop rule), if it did
        row["stopped_early"] = json.loads(metadata.read_text()).get("stopped_early")
    return row


def _rel(value: Any, truth: float) -> str:
    """``value (value / truth - 1)``, or ``-`` when there is none."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.3g} ({value / truth - 1:+.0%})"


def _states(row: dict[str, Any]) -> str:
    return " ".join(
        f"{lv['offered_qps']:.3g}:{STATE_ABBREV.get(lv['state'], lv['state'])}"
        for lv in row.get("levels", [])
        if isinstance(lv.get("offered_qps"), (int, float))
    )


COLUMNS = (
    ("saturation_qps", "saturation"),
    ("capacity_qps", "capacity"),
    ("max_sustainable_qps", "max sust."),
    ("recommended_qps", "recommended"),
    ("lowest_saturated", "lowest sat."),
)


def header() -> str:
    """The table's first line."""
    cells = " ".join(f"{title:<14}" for _, title in COLUMNS)
    return f"{'case':<12} {'mode':<7} {'seed':>4} {'truth':>6}  {cells} {'wall s':>6}  levels"


def line(row: dict[str, Any]) -> str:
    """One row of the table."""
    head = f"{row['case']:<12} {row['mode']:<7} {row['seed']:>4} {row['truth']:6.3g}  "
    if "error" in row:
        return head + "failed: " + " ".join(str(row["error"]).split())
    cells = " ".join(f"{_rel(row.get(key), row['truth']):<14}" for key, _ in COLUMNS)
    stopped = f"  (stopped: {row['stopped_early']})" if row.get("stopped_early") else ""
    return head + f"{cells} {row['wall_s']:>6}  {_states(row)}{stopped}"


def _ratio(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return value / row["truth"] if isinstance(value, (int, float)) else None


def goals(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One ``PASS``/``FAIL`` line per goal (module docstring), naming the rows that miss it
    (a failed run misses every goal)."""

    def tag(row: dict[str, Any]) -> str:
        return f"{row['case']}/{row['mode']}/{row['seed']}"

    def saturation_ok(r: dict[str, Any]) -> bool:
        s = _ratio(r, "saturation_qps")
        return s is not None and abs(s - 1) <= 0.10

    def no_early_saturation(r: dict[str, Any]) -> bool:
        low = _ratio(r, "lowest_saturated")
        return "error" not in r and (low is None or low >= 0.9)

    def below_truth(r: dict[str, Any]) -> bool:
        rec = _ratio(r, "recommended_qps")
        return rec is not None and rec < 1

    def in_band(r: dict[str, Any]) -> bool:
        rec = _ratio(r, "recommended_qps")
        return not r["queueing"] or (rec is not None and 0.6 <= rec <= 0.8)

    def in_budget(r: dict[str, Any]) -> bool:
        return r["mode"] != "auto" or ("error" not in r and r["wall_s"] <= r["budget_s"])

    checks = (
        ("saturation_qps within 10% of the truth", saturation_ok),
        ("no level saturated below 0.9x the truth", no_early_saturation),
        ("recommended_qps below the truth", below_truth),
        ("recommended_qps in [0.6, 0.8]x the truth (fifo*, sim)", in_band),
        ("auto wall time within the budget", in_budget),
    )
    out = []
    for title, held in checks:
        missed = [tag(r) for r in rows if not held(r)]
        status = "PASS" if not missed else "FAIL"
        detail = f" (missed by {len(missed)}/{len(rows)}: {', '.join(missed)})" if missed else ""
        out.append(f"{status}  {title}{detail}")
    return out


def plan(cases: Sequence[str], modes: Sequence[str], long: bool) -> list[tuple[str, str]]:
    """``(case, mode)`` pairs to run, in order: each case's fixed, fixed60, auto as asked."""
    pairs = []
    for name in cases:
        if name not in CASES:
            raise SystemExit(f"--cases: unknown case {name!r} (known: {', '.join(CASES)})")
        case = CASES[name]
        for mode in modes:
            if mode == "auto" and case.auto_start_qps is None:
                continue
            pairs.append((name, mode))
            if mode == "fixed" and long and name in LONG_CASES:
                pairs.append((name, "fixed60"))
    return pairs


def main() -> None:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="default: all")
    parser.add_argument("--modes", default="fixed,auto", help="fixed and/or auto")
    parser.add_argument("--seeds", default="1", help="comma-separated qpsweep --seed values")
    parser.add_argument("--duration", type=float, default=0.0, help="override level seconds")
    parser.add_argument("--long", action="store_true", help=f"add 60 s levels: {LONG_CASES}")
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    parser.add_argument("--qpsweep-src", type=Path, help="a source tree whose qpsweep to run")
    parser.add_argument("--keep", type=Path, help="keep the result directories under this")
    args = parser.parse_args()
    src = args.qpsweep_src.resolve() if args.qpsweep_src else None
    seeds = [int(s) for s in args.seeds.split(",")]
    pairs = plan(args.cases.split(","), args.modes.split(","), args.long)
    print(f"qpsweep from {src or REPO}; {len(pairs) * len(seeds)} runs", flush=True)
    print(header(), flush=True)
    rows = []
    for name, mode in pairs:
        for seed in seeds:
            row = run_case(name, mode, seed, args.duration, src, args.keep)
            rows.append(row)
            print(line(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    for goal in goals(rows):
        print(goal, flush=True)


if __name__ == "__main__":
    main()
