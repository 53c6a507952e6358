"""Files that cannot be written mid-run (a full disk, a file-size limit) stop the run loudly.

The sweep runs in its own process under a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ``
ignored so that a write past it fails with ``EFBIG`` as on a full disk) that
``requests.jsonl`` (or, with ``--workers``, a worker's part file) reaches during the level:
the run must stop, say in one line how many records were lost, exit 1, and leave files that
``qpsweep report`` reads.  The same for ``metadata.json`` reaching the limit during a run, and
for ``qpsweep report`` writing its report under it: one line, exit 1, no traceback.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qpsweep.cli.main import main

from conftest import DATASET
from servers import ServerThread

LIMIT_BYTES = 128 * 1024  # above the 64 KiB probe; requests.jsonl: ~370 records


def _limited(limit_bytes: int = LIMIT_BYTES) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def _qpsweep(*args: str, limit_bytes: int = LIMIT_BYTES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qpsweep", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limited(limit_bytes),
    )


def _one_line(stderr: str, words: str) -> str:
    """The one ``qpsweep: error:`` line holding ``words``; no traceback anywhere."""
    assert "Traceback" not in stderr and "never retrieved" not in stderr, stderr
    (line,) = [ln for ln in stderr.splitlines() if words in ln]
    assert line.startswith("qpsweep: error: "), line
    return line


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_records_that_cannot_be_written_stop_the_run_with_one_line(
    server: ServerThread, tmp_path: Path, workers: int
) -> None:
    results = tmp_path / "results"
    rate = "300,600" if workers == 1 else "600,900"  # each worker's part reaches the limit
    args = ["--endpoint", server.url("ok", tokens=2), "--model", "m", "--qps", rate]
    args += ["--duration", "2", "--arrival", "constant", "--workers", str(workers)]
    args += ["--dataset", str(DATASET), "--results-dir", str(results)]
    done = _qpsweep(*args, "--no-check", "--no-plot", "--no-rerun")
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr, "could not be written")
    found = re.search(r"(\d+) records could not be written", line)
    assert found, line
    n_lost = int(found.group(1))
    (run_dir,) = results.iterdir()
    files = [run_dir / "requests.jsonl"] if workers == 1 else sorted(run_dir.glob("parts/*"))
    if workers > 1 and (run_dir / "requests.jsonl").exists():  # the parts were joined
        files = [run_dir / "requests.jsonl"]
    n_written = 0
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"\n") and len(data) <= LIMIT_BYTES  # whole lines only
        n_written += data.count(b"\n")
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert len(metadata["levels"]) == 1  # the level stopped, and no other started
    (level,) = metadata["levels"]
    assert not level["completed"] and "could not be written" in metadata["stopped_early"]
    assert n_lost > 0 and n_written + n_lost == level["n_sent"]
    assert main(["report", str(run_dir)]) == 0


@pytest.mark.slow
def test_metadata_that_cannot_be_written_stops_the_run_with_one_line(
    server: ServerThread, tmp_path: Path
) -> None:
    """A header of 40 KB makes ``metadata.json`` (which holds it twice: in the command line
    and the headers) about 80 KB; the limit lies between its size before the level and its
    size with the level, as a calibration run measures."""
    pad = ["-H", "X-Pad: " + "p" * 40_000]
    args = ["--endpoint", server.url("ok", tokens=2), "--model", "m", "--qps", "5"]
    args += ["--duration", "0.4", "--arrival", "constant", "--dataset", str(DATASET)]
    args += [*pad, "--no-check", "--no-plot", "--no-rerun"]
    calibration = _qpsweep(*args, "--results-dir", str(tmp_path / "full"), limit_bytes=2**30)
    assert calibration.returncode == 0, calibration.stderr
    (full,) = (tmp_path / "full").iterdir()
    whole = json.loads((full / "metadata.json").read_text())
    one_level = len(json.dumps(whole, indent=2)) + 1
    no_level = len(json.dumps({**whole, "levels": []}, indent=2)) + 1
    limit = (no_level + one_level) // 2
    assert one_level - no_level > 200 and limit > 64 * 1024  # the disk probe's size
    results = tmp_path / "results"
    done = _qpsweep(*args, "--results-dir", str(results), limit_bytes=limit)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr, "metadata.json could not be written")
    assert "File too large" in line and "qpsweep report" in line
    (run_dir,) = results.iterdir()
    assert not list(run_dir.glob("*.tmp"))
    json.loads((run_dir / "metadata.json").read_text())  # the last whole one
    assert main(["report", str(run_dir)]) == 0


@pytest.mark.slow
def test_a_report_that_cannot_be_written_is_one_line(server: ServerThread, tmp_path: Path) -> None:
    args = ["--endpoint", server.url("ok", tokens=2), "--model", "m", "--qps", "20"]
    args += ["--duration", "0.5", "--dataset", str(DATASET), "--results-dir", str(tmp_path)]
    made = _qpsweep(*args, "--no-check", "--no-plot", "--no-rerun", limit_bytes=2**30)
    assert made.returncode == 0, made.stderr
    (run_dir,) = tmp_path.iterdir()
    sizes = {p.name: p.stat().st_size for p in run_dir.iterdir()}
    limit = sizes["report.html"] - 1  # every other file fits; the report does not
    for path in run_dir.glob("report.*"):
        path.unlink()
    done = _qpsweep("report", str(run_dir), limit_bytes=limit)
    assert done.returncode == 1, done.stderr
    line = _one_line(done.stderr, "could not be written")
    assert "report.html" in line and "File too large" in line
    assert not list(run_dir.glob("*.tmp"))
