"""Records that cannot be written mid-run (a full disk, a file-size limit) stop the run loudly.

The sweep runs in its own process under a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ``
ignored so that a write past it fails with ``EFBIG`` as on a full disk) that
``requests.jsonl`` reaches during the level: the run must stop, say in one line how many
records were lost, exit 1, and leave a file that ``qpsweep report`` reads.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

from qpsweep.cli.main import main

from conftest import DATASET
from servers import ServerThread

LIMIT_BYTES = 128 * 1024  # above the 64 KiB probe; requests.jsonl: ~370 records


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def test_records_that_cannot_be_written_stop_the_run_with_one_line(
    server: ServerThread, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "qpsweep", "--endpoint", server.url("ok", tokens=2)]
    cmd += ["--model", "m", "--qps", "300,600", "--duration", "2", "--arrival", "constant"]
    cmd += ["--dataset", str(DATASET), "--results-dir", str(results)]
    cmd += ["--no-check", "--no-plot", "--no-rerun"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, preexec_fn=_limited
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if "could not be written" in ln]
    assert line.startswith("qpsweep: error: ")
    found = re.search(r"(\d+) records could not be written", line)
    assert found, line
    n_lost = int(found.group(1))
    (run_dir,) = results.iterdir()
    data = (run_dir / "requests.jsonl").read_bytes()
    assert data.endswith(b"\n") and len(data) <= LIMIT_BYTES  # whole lines only
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert len(metadata["levels"]) == 1  # the level stopped, and no other started
    (level,) = metadata["levels"]
    assert not level["completed"] and "could not be written" in metadata["stopped_early"]
    assert n_lost > 0 and data.count(b"\n") + n_lost == level["n_sent"]
    assert main(["report", str(run_dir)]) == 0
