"""Checks before any traffic: disk space and a writable results directory, open-file limits."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from qpsweep.errors import RunDirError
from qpsweep.load.resources import RESERVED_FDS, peak_streams
from qpsweep.records.run_files import MIN_FREE_BYTES, RECORD_BYTES, bytes_needed, check_space

from conftest import DATASET


def test_worst_case_streams_and_bytes() -> None:
    assert peak_streams(100.0, 60.0, 300.0) == 6000  # a level's whole arrivals in flight
    assert peak_streams(100.0, 600.0, 30.0) == 3000  # ... or a timeout's worth of them
    assert bytes_needed(1000) == MIN_FREE_BYTES + 1000 * RECORD_BYTES


def test_too_little_space_is_refused(tmp_path: Path) -> None:
    check_space(tmp_path, 1000)  # plenty here
    with pytest.raises(RunDirError, match="MiB free"):
        check_space(tmp_path, 1e15)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_a_sweep_that_cannot_fit_on_disk_stops_before_traffic(qpsweep, tmp_path: Path) -> None:
    # five levels of 9e7 requests (each under the 1e8 a level may hold): 900 GB of records
    args = ["--endpoint", "http://127.0.0.1:9", "--model", "m", "--qps", ",".join(["10000"] * 5)]
    args += ["--duration", "9000", "--results-dir", str(tmp_path / "r")]
    run = qpsweep(*args, results=False)
    assert run.code == 2 and "this run needs about" in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert list((tmp_path / "r").iterdir()) == []  # no half-made run directory


def _sweep_with_file_limit(url: str, tmp_path: Path, soft: int, hard: int) -> str:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    cmd = [sys.executable, "-m", "qpsweep", "--endpoint", url, "--model", "m"]
    cmd += ["--qps", "200", "--duration", "1", "--timeout", "5", "--no-plot"]
    cmd += ["--dataset", str(DATASET), "--results-dir", str(tmp_path)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, preexec_fn=limit, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
def test_the_open_files_limit_is_raised_or_stated_before_the_run(
    server_process: str, tmp_path: Path
) -> None:
    url = f"{server_process}/ok/v1/chat/completions?tokens=2"
    # 200 QPS x min(1 s, 5 s) = 200 requests could be in flight
    hard, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"this machine's open files limit is only {hard}")
    stuck = _sweep_with_file_limit(url, tmp_path / "a", 200, 200)
    assert f"allows about {200 - RESERVED_FDS} requests in flight" in stuck
    assert "could hold up to 200" in stuck
    raised = _sweep_with_file_limit(url, tmp_path / "b", 200, 1024)
    assert "requests in flight at once" not in raised
