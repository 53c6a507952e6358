"""How long ``qpsweep report`` takes on a large run: a synthetic 1,000,000-record directory.

``python tests/perf/bench_report.py [--records 1000000] [--levels 10] [--chunks 16]
[--keep DIR] [--profile]``

Writes a result directory the way a sweep does (``new_metadata`` + one ``levels`` entry
per level as ``sweep._level`` fills it, and ``requests.jsonl`` with one
``RequestRecord.to_json()`` line per request) into a temporary directory, then times, each in
a fresh child process:

* ``report, no requests.npz (as a run's end)``: ``python -m qpsweep report DIR`` with
  ``metadata.plot = true`` (PNGs, ``plots/``, ``report.html``) on the directory as written:
  ``requests.jsonl`` parsed, ``requests.npz`` kept, as at the end of a sweep (and as the first
  report of a killed run);
* ``report (plots on, the default run)``: the same once more: the goal's step, reading the
  records from ``requests.npz``, as every report after a run's end does;
* ``report (run made with --no-plot)``: the same with ``metadata.plot = false`` (``report.html``
  still written);
* ``analyze_run only``: ``qpsweep.output.rebuild.analyze_run(DIR)`` (read + summaries +
  verdict, no files written);
* ``read_table only``: ``qpsweep.records.table.read_table`` of ``requests.jsonl`` (parse the
  JSON lines into columns);
* ``load_records only``: ``qpsweep.records.run_files.load_records(DIR)`` (parse the JSON lines
  into ``RequestRecord`` objects).

Printed per step: ``wall_s`` (``perf_counter`` around the child), ``cpu_s`` (the child's user +
system time) and ``peak_rss_mib`` (the child's ``ru_maxrss`` from ``os.wait4``, KiB / 1024),
plus ``bytes_per_record`` = peak RSS / records.  Goal: the default report under ``GOAL_S`` = 10 s.

Synthetic records: level k of ``--levels`` has target rate ``RATE_STEP_QPS * (k + 1)`` and gets a
share of the records proportional to its rate; arrivals uniform over the level given their
number (a Poisson process conditioned on n), send lag 0.1-1 ms, TTFT log-normal around 80 ms,
``--chunks`` content chunks 10-30 ms apart, 1% failures (HTTP 503 without chunks, as a
saturated server gives).  ``--profile`` also runs the default report under cProfile and prints
the top 15 functions by cumulative time and by own time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qpsweep.config.scenario import Scenario, Target
from qpsweep.records.columns import COLUMNS_FILE
from qpsweep.records.metadata import new_metadata
from qpsweep.records.record import RequestRecord
from qpsweep.records.run_files import METADATA_FILE, REQUESTS_FILE, RunFiles, write_json

GOAL_S = 10.0
RATE_STEP_QPS = 100.0
FAILURE_SHARE = 0.01
SEED = 0
WRITE_BATCH = 10_000


@dataclass(frozen=True)
class LevelPlan:
    """One synthetic level: its index, target rate, duration and number of records."""

    index: int
    qps: float
    duration_s: float
    n: int


def plan_levels(n_records: int, n_levels: int) -> list[LevelPlan]:
    """Levels at 100, 200, ... req/s sharing ``n_records`` in proportion to their rate, with
    one common duration ``n_records / sum(rates)`` seconds."""
    rates = [RATE_STEP_QPS * (k + 1) for k in range(n_levels)]
    duration_s = n_records / sum(rates)
    counts = [int(rate * duration_s) for rate in rates]
    counts[-1] += n_records - sum(counts)
    return [
        LevelPlan(k, r, duration_s, n) for k, (r, n) in enumerate(zip(rates, counts, strict=True))
    ]


def level_records(
    plan: LevelPlan, n_chunks: int, rng: np.random.Generator
) -> Iterator[RequestRecord]:
    """``plan.n`` plausible records of one level (see the module docstring)."""
    n = plan.n
    scheduled = np.sort(rng.uniform(0.0, plan.duration_s, n))  # Poisson, given n arrivals
    sent = scheduled + rng.uniform(1e-4, 1e-3, n)
    ttft = rng.lognormal(np.log(0.08), 0.4, n)
    gaps = rng.uniform(0.010, 0.030, (n, max(n_chunks - 1, 0)))
    chunks = (sent + ttft)[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, 1)], 1)
    failed = rng.random(n) < FAILURE_SHARE
    for k in range(n):
        if failed[k]:
            yield RequestRecord(
                level=plan.index,
                level_qps=plan.qps,
                seq=k,
                prompt_id=k % 1000,
                scheduled_s=float(scheduled[k]),
                sent_s=float(sent[k]),
                done_s=float(sent[k] + 0.002),
                status=503,
                error_kind="http_503",
                error="HTTP 503: Service Unavailable",
            )
            continue
        times = chunks[k].tolist()
        yield RequestRecord(
            level=plan.index,
            level_qps=plan.qps,
            seq=k,
            prompt_id=k % 1000,
            scheduled_s=float(scheduled[k]),
            sent_s=float(sent[k]),
            done_s=times[-1] + 0.0005,
            first_token_s=times[0],
            status=200,
            input_tokens=200,
            output_tokens=n_chunks,
            token_counted_by="usage",
            chunk_s=tuple(times),
        )


def level_entry(plan: LevelPlan) -> dict[str, Any]:
    """The ``metadata.json`` entry that ``sweep._level`` leaves for a completed level."""
    return {
        "index": plan.index,
        "qps_target": plan.qps,
        "duration_s": plan.duration_s,
        "n_scheduled": plan.n,
        "started_at": time.time(),
        "arrival_window_s": plan.duration_s,
        "n_sent": plan.n,
        "completed": True,
    }


def write_run(run_dir: Path, n_records: int, n_levels: int, n_chunks: int) -> None:
    """A complete synthetic result directory in ``run_dir`` (which must exist)."""
    plans = plan_levels(n_records, n_levels)
    target = Target(url="http://127.0.0.1:8000/v1/chat/completions", model="bench")
    scenario = Scenario(qps=tuple(p.qps for p in plans), duration_s=plans[0].duration_s)
    argv = ["qpsweep", "--qps", ",".join(f"{p.qps:g}" for p in plans)]
    metadata = new_metadata(target, scenario, "synthetic", "0" * 64, 1000, argv, RunFiles())
    levels = [level_entry(p) for p in plans]
    data = metadata.to_json() | {"levels": levels, "status": "complete", "interrupted": False}
    write_json(run_dir / METADATA_FILE, data)
    rng = np.random.default_rng(SEED)
    with (run_dir / REQUESTS_FILE).open("w", encoding="utf-8") as out:
        for plan in plans:
            batch: list[str] = []
            for record in level_records(plan, n_chunks, rng):
                batch.append(record.to_json())
                if len(batch) >= WRITE_BATCH:
                    out.write("\n".join(batch) + "\n")
                    batch.clear()
            if batch:
                out.write("\n".join(batch) + "\n")


def set_plot(run_dir: Path, plot: bool) -> None:
    """Make the run look like one made with (``True``) or without ``--no-plot``."""
    path = run_dir / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata["plot"] = plot
    write_json(path, metadata)


@dataclass(frozen=True)
class ChildRun:
    """Wall time, CPU time and peak RSS of one child process."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    status: int


def run_child(cmd: list[str]) -> ChildRun:
    """Run ``cmd`` (output discarded) and measure it with ``os.wait4``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    if proc.stderr is not None:
        proc.stderr.close()
    return ChildRun(
        wall_s, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode
    )


def py(code: str) -> list[str]:
    """A child command running ``code`` in this interpreter."""
    return [sys.executable, "-c", code]


def steps(run_dir: Path) -> list[tuple[str, bool | None, bool, list[str]]]:
    """(label, metadata.plot to set or None, remove requests.npz first, command) of every
    timed step."""
    report = [sys.executable, "-m", "qpsweep", "report", str(run_dir)]
    pre = (
        "from pathlib import Path; import qpsweep.output.rebuild as r; "
        "import qpsweep.records.run_files as f; import qpsweep.records.table as t; "
        f"d = Path({str(run_dir)!r}); "
    )
    return [
        ("report, no requests.npz (as a run's end)", True, True, report),
        ("report (plots on, the default run)", True, False, report),
        ("report (run made with --no-plot)", False, False, report),
        ("analyze_run only", None, False, py(pre + "r.analyze_run(d)")),
        (
            "read_table only (requests.jsonl)",
            None,
            False,
            py(pre + "t.read_table(d / 'requests.jsonl')"),
        ),
        ("load_records only", None, False, py(pre + "f.load_records(d)")),
    ]


def profile_report(run_dir: Path, top: int = 15) -> None:
    """The default report under cProfile; print the top ``top`` by cumulative time."""
    import pstats

    set_plot(run_dir, True)
    out = run_dir.parent / "report.prof"
    cmd = [
        sys.executable,
        "-m",
        "cProfile",
        "-o",
        str(out),
        "-m",
        "qpsweep",
        "report",
        str(run_dir),
    ]
    run_child(cmd)
    print(f"\n--- cProfile of the default report, top {top} by cumulative time ---")
    stats = pstats.Stats(str(out), stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"--- top {top} by tottime ---")
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    """Build the directory, time each step, print PASS/FAIL for the goal; exit 0."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--levels", type=int, default=10)
    p.add_argument("--chunks", type=int, default=16, help="content chunks per ok request")
    p.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    p.add_argument("--profile", action="store_true", help="cProfile the default report too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="qpsweep-report-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        write_run(run_dir, args.records, args.levels, args.chunks)
        size_mib = (run_dir / REQUESTS_FILE).stat().st_size / 2**20
        print(
            f"wrote {args.records} records ({args.levels} levels, {args.chunks} chunks per ok "
            f"request), requests.jsonl {size_mib:.0f} MiB, in {time.perf_counter() - start:.1f} s"
        )
        print(f"{'step':<38} {'wall_s':>7} {'cpu_s':>7} {'peak_rss_mib':>12} {'B/record':>9}")
        default_s = float("nan")
        for label, plot, fresh, cmd in steps(run_dir):
            if plot is not None:
                set_plot(run_dir, plot)
            if fresh:
                (run_dir / COLUMNS_FILE).unlink(missing_ok=True)
            r = run_child(cmd)
            per_record = r.peak_rss_mib * 2**20 / args.records
            failed = "" if r.status == 0 else f"  (exit {r.status})"
            print(
                f"{label:<38} {r.wall_s:7.2f} {r.cpu_s:7.2f} {r.peak_rss_mib:12.0f} "
                f"{per_record:9.0f}{failed}",
                flush=True,
            )
            if plot and not fresh:
                default_s = r.wall_s
        verdict = "PASS" if default_s < GOAL_S else "FAIL"
        print(
            f"\n{verdict} qpsweep report on {args.records} records under {GOAL_S:g} s: "
            f"{default_s:.2f} s"
        )
        if args.profile:
            profile_report(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
