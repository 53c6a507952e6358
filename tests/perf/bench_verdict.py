"""The verdict against servers of known capacity: truth vs. qpsweep's figures, per case.

``python tests/perf/bench_verdict.py [--cases fifo8,refuse8,...] [--seeds 1,2] [--long]``
runs each case through the real CLI (``python -m qpsweep``) against its own server process on
127.0.0.1 and prints, per case, the truth, ``saturation_qps``, ``capacity_qps``,
``max_sustainable_qps`` and ``recommended_qps`` with their errors relative to the truth, and
the wall time; then one line per goal (docs/verdict.md).  Cases (truth in requests/s):

* ``fifo8``: FIFO, 8 slots x 0.5 s (16); ``fifo32``: 32 x 0.5 s (64); ``fifo4``: 4 x 1 s (4);
* ``refuse8``: 503 above 8 in flight, 0.5 s service: the rate where Erlang-B reaches 5%;
* ``sim``: ``qpsweep sim`` with 4 slots x 20 tokens of 5 ms (``sim.capacity_rps``).

Each runs a fixed list around the truth (``--duration`` 8 s, 15 s for ``fifo4``; 60 s with
``--long``); ``fifo8``, ``fifo32`` and ``refuse8`` also run ``--qps auto``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from capacity_servers import rate_at_blocking  # noqa: E402

from qpsweep.sim import SimConfig, capacity_rps  # noqa: E402

QUEUE_FACTORS = (0.25, 0.5, 0.75, 0.875, 1.0, 1.125, 1.25, 1.5)
REFUSE_FACTORS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
SIM = SimConfig(max_num_seqs=4, decode_ms=5.0, decode_ms_per_seq=0.0, prefill_ms_per_token=0.0)
CASES = {  # name: (server command, truth, queueing?, factors, duration_s, auto?)
    "fifo8": (["fifo", "--slots", "8", "--service-s", "0.5"], 16.0, True, QUEUE_FACTORS, 8, True),
    "fifo32": (["fifo", "--slots", "32", "--service-s", "0.5"], 64.0, True, QUEUE_FACTORS, 8, True),
    "fifo4": (["fifo", "--slots", "4", "--service-s", "1"], 4.0, True, QUEUE_FACTORS, 15, False),
    "refuse8": (
        ["refuse", "--slots", "8", "--service-s", "0.5"],
        rate_at_blocking(8, 0.5, 0.05),
        False,
        REFUSE_FACTORS,
        10,
        True,
    ),
    "sim": (["sim"], capacity_rps(SIM, 20), True, (0.4, 0.7, 0.9, 1.1, 1.25, 1.5), 8, False),
}


@contextlib.contextmanager
def serving(command: list[str]) -> Iterator[str]:
    """The case's server in its own process; yields its base URL."""
    if command == ["sim"]:
        flags = ["--max-num-seqs=4", "--decode-ms=5", "--decode-ms-per-seq=0"]
        cmd = [sys.executable, "-m", "qpsweep", "sim", "--port", "0", *flags]
        cmd.append("--prefill-ms-per-token=0")
    else:
        cmd = [sys.executable, str(REPO / "tests" / "capacity_servers.py"), *command]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        if command == ["sim"]:
            yield line.split(" listening on ")[1].split()[0]
        else:
            yield f"http://127.0.0.1:{int(line)}/v1"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def run_case(name: str, mode: str, seed: int, duration_s: float) -> dict[str, object]:
    """One sweep; returns its row."""
    command, truth, queueing, factors, default_s, _ = CASES[name]
    duration_s = duration_s or default_s
    if mode == "fixed":
        levels = ["--qps", ",".join(f"{truth * f:.3g}" for f in factors)]
    else:
        levels = ["--qps", "auto", "--start-qps", f"{truth / 8:.3g}"]
    tokens = "20" if name == "sim" else "8"
    with tempfile.TemporaryDirectory() as tmp, serving(command) as url:
        argv = [sys.executable, "-m", "qpsweep", "--endpoint", url, "--model", "m"]
        argv += ["--max-tokens", tokens, *levels, "--duration", f"{duration_s:g}", "--seed"]
        argv += [str(seed), "--no-plot", "--no-check", "--results-dir", tmp]
        argv += ["--dataset", str(REPO / "datasets" / "short_prompts.jsonl")]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall_s = time.perf_counter() - start
        runs = sorted(p for p in Path(tmp).glob("*") if p.is_dir())
        if done.returncode != 0 or not runs:
            return {"case": name, "mode": mode, "seed": seed, "error": done.stderr[-500:]}
        verdict = json.loads((runs[-1] / "saturation.json").read_text())
    saturated = [lv["offered_qps"] for lv in verdict["levels"] if lv["state"] == "saturated"]
    return {
        "case": name,
        "mode": mode,
        "seed": seed,
        "duration_s": duration_s,
        "truth": truth,
        "queueing": queueing,
        **{k: verdict.get(k) for k in ("saturation_qps", "capacity_qps")},
        **{k: verdict.get(k) for k in ("max_sustainable_qps", "recommended_qps")},
        "lowest_saturated": min(saturated) if saturated else None,
        "states": " ".join(lv["state"][:4] for lv in verdict["levels"]),
        "wall_s": round(wall_s, 1),
    }


def _rel(value: object, truth: float) -> str:
    return (
        "-" if not isinstance(value, (int, float)) else f"{value:7.3g} ({value / truth - 1:+.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--modes", default="fixed,auto")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--duration", type=float, default=0.0, help="override level seconds")
    parser.add_argument("--long", action="store_true", help="60 s levels (fixed lists)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    head = f"{'case':<8} {'mode':<5} {'seed':>4} {'truth':>6}  {'saturation':<15} {'capacity':<15}"
    print(head + f" {'max sust.':<15} {'recommended':<15} {'wall s':>6}  states", flush=True)
    for name in args.cases.split(","):
        for mode in args.modes.split(","):
            if mode == "auto" and not CASES[name][5]:
                continue
            for seed in (int(s) for s in args.seeds.split(",")):
                duration = 60.0 if args.long and mode == "fixed" else args.duration
                row = run_case(name, mode, seed, duration)
                rows.append(row)
                if "error" in row:
                    print(f"{name:<8} {mode:<5} {seed:>4} failed: {row['error']}", flush=True)
                    continue
                truth = float(row["truth"])  # type: ignore[arg-type]
                cells = [_rel(row[k], truth) for k in ("saturation_qps", "capacity_qps")]
                cells += [_rel(row[k], truth) for k in ("max_sustainable_qps", "recommended_qps")]
                print(
                    f"{name:<8} {mode:<5} {seed:>4} {truth:6.3g}  "
                    + " ".join(f"{c:<15}" for c in cells)
                    + f" {row['wall_s']:>6}  {row['states']}",
                    flush=True,
                )
    _goals([r for r in rows if "error" not in r])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _goals(rows: list[dict[str, object]]) -> None:
    """One line per goal of docs/verdict.md."""

    def ratio(row: dict[str, object], key: str) -> float | None:
        value = row.get(key)
        return None if not isinstance(value, (int, float)) else value / float(row["truth"])  # type: ignore[arg-type]

    sat = [ratio(r, "saturation_qps") for r in rows]
    low = [ratio(r, "lowest_saturated") for r in rows]
    rec = [(ratio(r, "recommended_qps"), r["queueing"]) for r in rows]
    goals = {
        "saturation within 10% of the truth": all(s is not None and abs(s - 1) <= 0.1 for s in sat),
        "no level saturated below 0.9x the truth": all(x is None or x >= 0.9 for x in low),
        "recommended below the truth": all(r is not None and r < 1 for r, _ in rec),
        "recommended in [0.6, 0.8]x (queueing)": all(
            r is not None and 0.6 <= r <= 0.8 for r, q in rec if q
        ),
    }
    for goal, held in goals.items():
        print(f"{'PASS' if held else 'FAIL'}  {goal}")


if __name__ == "__main__":
    main()
