"""``--workers N``: the level's schedule split over worker processes, records merged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qpsweep.cli.main import main

from conftest import DATASET, REPO

FAST = "/ok/v1/chat/completions?ttft_ms=5&itl_ms=2&tokens=3"


def _sent(run_dir: Path) -> dict[int, set[tuple[int, float, int]]]:
    """Per level: (seq, scheduled_s, prompt_id) of every record; every record succeeded."""
    out: dict[int, set[tuple[int, float, int]]] = {}
    for line in (run_dir / "requests.jsonl").read_text().splitlines():
        r = json.loads(line)
        assert r["error_kind"] is None, r
        out.setdefault(r["level"], set()).add((r["seq"], r["scheduled_s"], r["prompt_id"]))
    return out


@pytest.mark.slow
def test_two_workers_send_exactly_the_schedule_of_one_process(qpsweep, server_process) -> None:
    args = ("--endpoint", server_process + FAST, "--model", "m", "--qps", "15,30")
    one = qpsweep(*args, "--duration", "3", "--seed", "7")
    two = qpsweep(*args, "--duration", "3", "--seed", "7", "--workers", "2")
    assert one.code == 0 and two.code == 0, two.err
    assert two.run_dir is not None and not (two.run_dir / "parts").exists()
    alone, split = _sent(one.run_dir), _sent(two.run_dir)  # type: ignore[arg-type]
    assert alone == split  # the same requests, numbers, send times and prompts
    meta = two.json("metadata.json")
    assert meta["workers"] == 2
    for level in meta["levels"]:
        n = level["n_sent"]
        assert len(split[level["index"]]) == n
        assert level["n_sent_by_worker"] == [(n + 1) // 2, n // 2]  # every 2nd arrival each
    results = {lv["qps_target"]: lv for lv in two.json("benchmark_qps_results.json")}
    assert results[30.0]["n_ok"] == meta["levels"][1]["n_sent"]


def _start(args: list[str], results: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "qpsweep", *args, "--model", "m", "--no-check"]
    cmd += ["--dataset", str(DATASET), "--results-dir", str(results), "--no-plot"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )


def _wait_for_parts(results: Path, n: int, timeout_s: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run_dir in results.glob("*"):
            parts = list(run_dir.glob("parts/requests-*.jsonl"))
            if sum(len(p.read_text().splitlines()) for p in parts) >= n:
                return run_dir
        time.sleep(0.05)
    raise AssertionError("the workers did not record requests in time")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_ctrl_c_with_workers_drains_and_records_every_request_sent(
    server_process, tmp_path: Path
) -> None:
    url = server_process + "/ok/v1/chat/completions?ttft_ms=50&itl_ms=20&tokens=10"
    proc = _start(
        ["--endpoint", url, "--qps", "20", "--duration", "30", "--workers", "2"], tmp_path
    )
    run_dir = _wait_for_parts(tmp_path, 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [run_dir]  # one run: the workers did not run the CLI
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and not (run_dir / "parts").exists()
    records = [json.loads(x) for x in (run_dir / "requests.jsonl").read_text().splitlines()]
    (level,) = meta["levels"]
    assert len(records) == level["n_sent"] == sum(level["n_sent_by_worker"])
    assert all(r["error_kind"] is None for r in records)  # drained, not cut
    assert len({r["seq"] for r in records}) == len(records)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_of_a_killed_run_exit_and_leave_a_readable_run(
    server_process, tmp_path: Path
) -> None:
    url = server_process + "/ok/v1/chat/completions?ttft_ms=200&itl_ms=50&tokens=10"
    proc = _start(
        ["--endpoint", url, "--qps", "20", "--duration", "30", "--workers", "2"], tmp_path
    )
    run_dir = _wait_for_parts(tmp_path, 10)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.kill()  # no chance to clean up: the workers must notice on their own
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    parts = sorted(run_dir.glob("parts/requests-*.jsonl"))
    records = [json.loads(x) for p in parts for x in p.read_text().splitlines()]
    kinds = {r["error_kind"] for r in records}
    assert "interrupted" in kinds  # what was in flight when the main process died
    assert main(["report", str(run_dir)]) == 0
    (level,) = json.loads((run_dir / "benchmark_qps_results.json").read_text())
    assert level["n_ok"] + level["n_failed"] == len(records) > 10


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers: '0' must be a whole number >= 1, or auto"),
        (["--workers", "two"], "--workers: 'two' must be a whole number >= 1, or auto"),
        (["--shard", "2/2", "--start-at", "1800000000"], "--shard: '2/2' must be I/N with"),
        (["--shard", "0/2"], "--shard needs --start-at EPOCH"),
        (["--start-at", "1800000000"], "--start-at: only with --shard I/N"),
        (["--shard", "0/2", "--start-at", "soon"], "--start-at: 'soon' is neither"),
        (
            ["--shard", "0/2", "--start-at", "2030-01-01T00:00:00Z", "--qps", "auto"],
            "--shard: --qps auto cannot be sharded",
        ),
    ],
)
def test_bad_scale_out_flags_get_one_line_and_exit_2(qpsweep, flags, message) -> None:
    run = qpsweep("--endpoint", "http://127.0.0.1:9/v1", "--model", "m", *flags)
    assert run.code == 2 and run.run_dir is None
    assert run.err.startswith(f"qpsweep: error: {message}") and run.err.count("\n") == 1


@pytest.mark.slow
def test_a_level_order_larger_than_a_pipe_buffer_reaches_every_worker(qpsweep) -> None:
    # 16,000 arrivals: each worker's order (8,000 offsets) is larger than a 64 KiB pipe buffer.
    # Sent to a closed port, every request fails at once: cheap, and still one record each.
    run = qpsweep(
        "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--qps", "8000",
        "--duration", "2", "--workers", "2", "--max-error-rate", "0.99", "--timeout", "5",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "ended unexpectedly" not in run.err
    (level,) = run.json("metadata.json")["levels"]
    assert level["n_sent"] == level["n_scheduled"] == sum(level["n_sent_by_worker"]) > 15_000
    assert len(run.records()) == level["n_sent"]
    assert {r["error_kind"] for r in run.records()} == {"connection"}
