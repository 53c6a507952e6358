"""What a user sees: help, exit codes, one-line errors, files written, secrets kept out."""

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
from qpsweep.records.run_files import create_run_dir

from conftest import DATASET, REPO

QUICK = ("--model", "m", "--qps", "10", "--duration", "0.3", "--arrival", "constant")


def test_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out and "--qps 1,5,10,20 --duration 60" in out
    for flag in (
        "--api-key-env",
        "--arrival",
        "--burstiness",
        "--warmup",
        "--no-verify-tls",
        "--percentiles",
        "--plot-output",
        "--show-tokens",
        "--results-dir",
    ):
        assert flag in out


def test_python_dash_m_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qpsweep", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("qpsweep ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--qps", "0"), "--qps: '0' must be a positive number"),
        (("--qps", "-5"), "--qps: '-5' must be a positive number"),
        (("--duration", "0"), "--duration: 0 must be greater than 0"),
        (("--percentiles", "50,97"), "--percentiles: '97' is not one of"),
        (("-H", "no-colon"), "--header: 'no-colon' must look like 'Name: value'"),
        (("-H", "X-Team: a\r\nX-Injected: 1"), "--header: 'X-Team' must be on one line"),
        (("--api-key", "sk-line-break\n"), "the API key contains a line break"),
        (("--endpoint", "localhost:8000"), "--endpoint: 'localhost:8000' needs an http://"),
        (("--max-tokens", "0"), "--max-tokens: 0 must be at least 1"),
        (("--arrival", "uniform"), "argument --arrival: invalid choice"),
        (("--dataset", "missing.json"), "missing.json: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    argv = [
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--dataset",
        str(DATASET),
        "--results-dir",
        str(tmp_path),
        *args,
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "qpsweep", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("qpsweep: error: ") and message in proc.stderr
    assert not list(tmp_path.glob("20*")), "no run directory before input is valid"


def test_dataset_error_names_file_sample_and_field(qpsweep, tmp_path: Path) -> None:
    bad = tmp_path / "datasets.json"
    bad.write_text(
        json.dumps(
            [
                {
                    "prompt_content": "s",
                    "cut_chat_history": [
                        {"role": "user", "content": "a"},
                        {"role": "bot", "content": "b"},
                    ],
                }
            ]
        )
    )
    run = qpsweep("--endpoint", "http://127.0.0.1:9", *QUICK, dataset=bad)
    assert run.code == 2 and run.run_dir is None
    field = "cut_chat_history[1].role must be user/assistant/system"
    assert run.err == f"qpsweep: error: {bad}: sample 0: {field}\n"


def test_result_directory_contract(qpsweep, server) -> None:
    run = qpsweep(
        "--endpoint",
        server.url("ok"),
        *QUICK,
        "--output",
        "res.json",
        "--percentiles",
        "50,99.9",
        "--show-tokens",
    )
    assert run.code == 0 and run.run_dir is not None
    assert "deprecated" in run.err
    assert sorted(p.name for p in run.run_dir.iterdir()) == [
        "metadata.json",
        "report.html",
        "report.txt",
        "requests.jsonl",
        "requests.npz",
        "res.json",
        "saturation.json",
    ]
    meta = run.json("metadata.json")
    for key in (
        "timestamp",
        "endpoint",
        "model",
        "dataset",
        "qps_levels",
        "duration",
        "max_tokens",
        "temperature",
        "percentiles",
        "qpsweep_version",
        "argv",
        "dataset_sha256",
        "seed",
        "arrival",
        "python",
        "platform",
        "metric_formulas",
    ):
        assert key in meta
    assert meta["status"] == "complete" and meta["interrupted"] is False
    (level,) = run.json("res.json")
    assert level["ttft"].keys() >= {"p50", "p90", "p95", "p99", "p99.9"}
    assert level["n_sent"] == len(run.records()) == 3
    assert (run.run_dir / "report.txt").read_text() in run.out
    assert f"Results: {run.run_dir}" in run.out


def test_two_runs_in_one_second_get_distinct_directories(tmp_path: Path) -> None:
    first, second = create_run_dir(tmp_path), create_run_dir(tmp_path)
    assert first != second and second.name.startswith(first.name)


@pytest.mark.slow
def test_api_key_never_reaches_any_file_or_output(qpsweep, server, monkeypatch) -> None:
    flag_key, env_key = "sk-qpsweepFLAGSECRET0123456789", "sk-qpsweepENVSECRET0123456789"
    monkeypatch.setenv("MY_KEY", env_key)
    runs = [
        qpsweep("--endpoint", server.url("echo_auth"), *QUICK, "--api-key", flag_key),
        qpsweep(
            "--endpoint", server.url("echo_auth"), *QUICK, "--api-key-env", "MY_KEY", plots=True
        ),
        qpsweep(
            "--endpoint", server.url("echo_auth"), *QUICK, "-H", f"Authorization: Bearer {flag_key}"
        ),
    ]
    for run in runs:
        assert run.run_dir is not None
        errors = {r["error"] for r in run.records()}
        assert len(errors) == 1 and errors.pop().startswith("HTTP 401: invalid credentials: ")
        assert all("***" in r["error"] for r in run.records())  # the server echoed the key
        files = [p for p in run.run_dir.rglob("*") if p.is_file()]  # plots and HTML included
        blobs = [p.read_bytes() for p in files] + [run.out.encode(), run.err.encode()]
        assert not any(flag_key.encode() in b or env_key.encode() in b for b in blobs)
    assert any(p.name == "report.html" for p in runs[1].run_dir.rglob("*"))  # type: ignore[union-attr]
    assert len(list(runs[1].run_dir.rglob("*.png"))) == 4  # type: ignore[union-attr]


def test_report_rebuilds_from_metadata_and_records(qpsweep, server) -> None:
    run = qpsweep("--endpoint", server.url("ok"), *QUICK)
    assert run.run_dir is not None
    results = run.run_dir / "benchmark_qps_results.json"
    original = results.read_text()
    results.unlink()
    (run.run_dir / "report.txt").unlink()
    again = qpsweep("report", str(run.run_dir))
    assert again.code == 0
    assert results.read_text() == original
    assert "QPS BENCHMARK RESULTS" in again.out


def test_report_on_a_directory_that_is_not_a_run(qpsweep, tmp_path: Path) -> None:
    run = qpsweep("report", str(tmp_path))
    assert run.code == 2
    assert (
        run.err
        == f"qpsweep: error: {tmp_path}: not a qpsweep result directory (no metadata.json)\n"
    )


def _start(args: list[str], results: Path) -> subprocess.Popen[str]:
    """``python -m qpsweep`` in its own process, with ``--no-rerun``: these tests time their
    signals by the levels printed, so a level rerun after a stall of the shared machine (as on
    a CI machine once: level 2 rerun as level 3, the signal then fell in its arrivals) must not
    change the list of levels."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "qpsweep",
        *args,
        "--dataset",
        str(DATASET),
        "--results-dir",
        str(results),
        "--model",
        "m",
        "--no-rerun",
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )


def _wait_for_records(results: Path, n: int, timeout_s: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in results.glob("*/requests.jsonl"):
            if len(path.read_text().splitlines()) >= n:
                return path.parent
        time.sleep(0.05)
    raise AssertionError("the run did not record requests in time")


def _wait_for_run(results: Path, timeout_s: float = 20.0) -> Path:
    """The run directory, once its ``metadata.json`` is written (just before level 1)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in results.glob("*/metadata.json"):
            return path.parent
        time.sleep(0.05)
    raise AssertionError("the run did not start in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_drains_and_leaves_a_readable_run(server_process, tmp_path: Path, sig) -> None:
    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=50&itl_ms=20&tokens=10"
    proc = _start(["--endpoint", url, "--qps", "20", "--duration", "30"], tmp_path)
    run_dir = _wait_for_records(tmp_path, 5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["interrupted"] is True and meta["status"] == "interrupted"
    records = [json.loads(x) for x in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(records) == meta["levels"][0]["n_sent"]  # every sent request has a record
    assert all(r["error_kind"] is None for r in records)  # drained, not cut
    assert main(["report", str(run_dir)]) == 0
    (level,) = json.loads((run_dir / "benchmark_qps_results.json").read_text())
    assert level["n_sent"] == len(records) and level["arrival_window_s"] < 30


@pytest.mark.slow
def test_second_signal_aborts_and_records_in_flight_as_interrupted(
    server_process, tmp_path
) -> None:
    proc = _start(
        [
            "--endpoint",
            f"{server_process}/hang",
            "--qps",
            "20",
            "--duration",
            "30",
            "--timeout",
            "60",
            "--no-check",  # the probe's one request would hang for the whole --timeout
        ],
        tmp_path,
    )
    _wait_for_run(tmp_path)  # not sooner: a busy VM can still be importing qpsweep after 1.5 s
    time.sleep(1.5)  # about 30 requests sent, none answered
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Aborting" in err and "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "metadata.json").read_text())
    records = [json.loads(x) for x in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert meta["interrupted"] is True
    assert len(records) == meta["levels"][0]["n_sent"] > 10
    assert {r["error_kind"] for r in records} == {"interrupted"}


@pytest.mark.slow
def test_killed_run_is_still_readable(server_process, tmp_path: Path) -> None:
    url = f"{server_process}/ok/v1/chat/completions?tokens=3"
    proc = _start(["--endpoint", url, "--qps", "20", "--duration", "30"], tmp_path)
    run_dir = _wait_for_records(tmp_path, 5)
    proc.kill()
    proc.communicate(timeout=10)
    assert main(["report", str(run_dir)]) == 0
    (level,) = json.loads((run_dir / "benchmark_qps_results.json").read_text())
    assert level["n_ok"] >= 5
    assert "did not finish" in (run_dir / "report.txt").read_text()


def _read_stderr_until(proc: subprocess.Popen[str], text: str, timeout_s: float = 30.0) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never printed {text!r}")


@pytest.mark.parametrize(
    ("phase", "marker", "delay_s"),
    [
        ("arrivals", "level 1/2", 0.0),  # early in level 2's arrivals
        ("drain", "level 2/2", -1.0),  # level 2's arrivals are over, its streams still run
        ("writing", "level 2/2", 0.0),  # after the last level: plots and HTML being written
    ],
)
@pytest.mark.slow
def test_a_signal_in_any_phase_leaves_a_complete_readable_run(
    server_process, tmp_path: Path, phase: str, marker: str, delay_s: float
) -> None:
    """Each record finished is on disk, every request sent has a record, nothing half-written,
    no traceback, and ``report`` rebuilds everything."""
    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=100&itl_ms=60&tokens=20"
    args = ["--endpoint", url, "--qps", "20,20", "--duration", "1.5", "--arrival", "constant"]
    proc = _start([*args, "--plot"], tmp_path)
    if delay_s < 0:  # during the drain: level 2 has 1.5 s of arrivals, then ~1.3 s of streams
        _read_stderr_until(proc, "level 1/2")
        time.sleep(1.5 + 0.4)
    else:
        _read_stderr_until(proc, marker)
        # writing the plots and HTML takes ~4 s here; the judging of level 2 before it, ~20 ms
        time.sleep(0.3 if phase == "arrivals" else 0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "metadata.json").read_text())
    records = [json.loads(x) for x in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(records) == sum(level["n_sent"] for level in meta["levels"])
    for name in ("benchmark_qps_results.json", "saturation.json"):
        if (run_dir / name).exists():
            json.loads((run_dir / name).read_text())  # complete, never half-written
    assert not list(run_dir.glob("*.tmp"))
    if phase == "writing":
        assert "finishing them first" in err and meta["status"] == "complete"
        assert (run_dir / "report.html").exists() and (run_dir / "benchmark_qps.png").exists()
    else:
        assert meta["interrupted"] is True and proc.returncode == 130
        assert all(r["error_kind"] is None for r in records)  # drained, not cut
    assert main(["report", str(run_dir)]) == 0


@pytest.mark.slow
def test_a_level_whose_schedule_drew_no_arrival_is_no_requests_not_client_limited(  # type: ignore[no-untyped-def]
    qpsweep, server
) -> None:
    # seed 0 at 2 QPS for 2 s: the Poisson draw has no arrival in the window (e^-4, ~2%)
    argv = ["--endpoint", server.url("ok"), "--model", "m", "--qps", "2,4", "--duration", "2"]
    run = qpsweep(*argv, "--seed", "0", rerun=True)
    assert run.code == 0, run.err
    assert "note: the poisson schedule drew no arrival in 2 s at 2 QPS (seed 0)" in run.err
    assert "fell behind at 2 QPS" not in run.err  # no rerun of a level with nothing to send
    assert "WARNING: at QPS 2 " not in run.out
    levels = run.json("benchmark_qps_results.json")
    assert (levels[0]["qps_target"], levels[0]["state"], levels[0]["n_sent"]) == (
        2,
        "no_requests",
        0,
    )
    assert levels[1]["qps_target"] == 4 and levels[1]["n_sent"] == 10


@pytest.mark.slow
def test_on_a_terminal_the_progress_bar_counts_the_requests(
    server_process: str, tmp_path: Path
) -> None:
    """On a terminal each level has a tqdm bar whose postfix counts what was sent, succeeded
    and failed (off a terminal the bar is off and nothing is formatted per record)."""
    import fcntl
    import pty
    import struct
    import termios

    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=5&itl_ms=5&tokens=5"
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # rows, cols
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "qpsweep", "--endpoint", url, *QUICK, "--dataset", str(DATASET)]
    proc = subprocess.Popen(
        [*cmd, "--results-dir", str(tmp_path), "--no-rerun"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
        cwd=REPO,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            piece = os.read(primary, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not piece:
            break
        seen += piece
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    assert b"QPS 10" in seen and b"sent=3 ok=3 failed=0" in seen, seen[-2000:]
