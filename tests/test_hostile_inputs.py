"""Hostile inputs (issue 19): one line naming the flag, file or field, exit code 2, no
traceback and nothing sent; a server's undecodable text written safely, the run rebuildable.

Each case is a real argv (``main([...])``, or a subprocess given bytes where the operating
system hands qpsweep undecodable arguments) against a server on 127.0.0.1 that counts every
request it gets, the probe's included.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from qpsweep.sim.app import AppServer

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO / "datasets" / "conversations.json"
QUICK = ("--model", "m", "--qps", "10", "--duration", "0.3", "--arrival", "constant")
HITS = web.AppKey("hits", list)
UNLINK = web.AppKey("unlink", list)
STREAM = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'


async def _ok(request: web.Request) -> web.StreamResponse:
    """A two-event stream; the first request deletes the file named in ``app[UNLINK]``."""
    await request.read()
    request.app[HITS].append(request.path)
    if request.app[UNLINK]:
        os.unlink(request.app[UNLINK].pop())
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(STREAM)
    return resp


async def _surrogate(request: web.Request) -> web.Response:
    """A 400 whose JSON message holds a lone surrogate escape."""
    await request.read()
    request.app[HITS].append(request.path)
    body = b'{"error": {"message": "bad token \\ud83d here"}}'
    return web.Response(status=400, body=body, content_type="application/json")


HUGE = 18446744073709551615  # 2**64 - 1: an unsigned counter gone below zero


async def _huge_usage(request: web.Request) -> web.StreamResponse:
    """Content, then a usage chunk whose completion_tokens no int64 can hold; ``/hugejson``
    sends it as one non-streamed completion."""
    await request.read()
    usage = f'"usage":{{"prompt_tokens":5,"completion_tokens":{HUGE}}}'
    if request.path.startswith("/hugejson/"):
        text = f'{{"choices":[{{"message":{{"content":"hi"}}}}],{usage}}}'
        return web.Response(text=text, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    last = f'data: {{"choices":[{{"delta":{{}},"finish_reason":"stop"}}],{usage}}}\n\n'
    await resp.write(STREAM.replace(b"data: [DONE]", last.encode() + b"data: [DONE]"))
    return resp


async def _get(request: web.Request) -> web.Response:
    request.app[HITS].append(request.path)
    return web.json_response({"data": [{"id": "m"}]})


@pytest.fixture
def counting() -> Iterator[tuple[str, web.Application]]:
    app = web.Application()
    app[HITS], app[UNLINK] = [], []
    app.router.add_post("/ok/v1/chat/completions", _ok)
    app.router.add_post("/surrogate/v1/chat/completions", _surrogate)
    app.router.add_post("/huge/v1/chat/completions", _huge_usage)
    app.router.add_post("/hugejson/v1/chat/completions", _huge_usage)
    app.router.add_get("/{path:.*}", _get)
    with AppServer(app) as srv:
        yield srv.base_url, app


# Each alias of the next level stands for ten of the one before: 10**9 nodes expanded.
BOMB = "laughs:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 10)}]\n" for k in range(8)
)
CASES = {  # argv (TMP: the test's directory) -> what the one line must name
    "negative seed": (["--seed", "-1"], "--seed"),
    "IPv6 with a bad port": (["--endpoint", "http://[::1]:x/v1"], "--endpoint"),
    "unclosed IPv6": (["--endpoint", "http://[::1/v1"], "--endpoint"),
    "port out of range": (["--endpoint", "http://127.0.0.1:99999"], "--endpoint"),
    "a level too big to schedule": (["--qps", "1e306", "--duration", "0.01"], "--qps"),
    "endless dataset": (["--dataset", "/dev/zero"], "/dev/zero"),
    "auto with max-qps nan": (["--qps", "auto", "--max-qps", "nan"], "--max-qps"),
    "auto with an infinite budget": (["--qps", "auto", "--budget", "inf"], "--budget"),
    "YAML alias bomb": (["--config", "TMP/bomb.yaml", "--target", "t"], "bomb.yaml"),
    "metrics URL with a bad port": (["--metrics-url", "http://127.0.0.1:x/m"], "--metrics-url"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2_before_any_traffic(
    qpsweep, counting, tmp_path, case
) -> None:  # type: ignore[no-untyped-def]
    base, app = counting
    (tmp_path / "bomb.yaml").write_text("targets:\n  t:\n    model: m\n" + BOMB)
    flags, named = CASES[case]
    argv = [a.replace("TMP", str(tmp_path)) for a in flags]
    run = qpsweep("--endpoint", f"{base}/ok/v1", *QUICK, *argv, check=True)
    assert run.code == 2, run.err
    assert run.err.startswith("qpsweep: error: ") and run.err.count("\n") == 1, run.err
    assert named in run.err and "Traceback" not in run.err
    assert run.run_dir is None and app[HITS] == []


UNDECODABLE = {  # argv with a byte that is no UTF-8 -> the flag named
    "header value": ([b"-H", b"X-Team: infra\xff"], "--header"),
    "model name": ([b"--model", b"m\xff\xfe"], "--model"),
    "dataset path": ([b"--dataset", b"TMP/data\xff.json"], "--dataset"),
}


@pytest.mark.parametrize("case", UNDECODABLE)
def test_an_undecodable_argument_is_one_line_and_exit_2(counting, tmp_path, case) -> None:  # type: ignore[no-untyped-def]
    base, app = counting
    shutil.copy(DATASET, os.fsencode(tmp_path) + b"/data\xff.json")
    flags, named = UNDECODABLE[case]
    argv = [a.replace(b"TMP", os.fsencode(tmp_path)) for a in flags]
    cmd = [sys.executable.encode(), b"-m", b"qpsweep", b"--endpoint", f"{base}/ok/v1".encode()]
    cmd += [b"--model", b"m", b"--dataset", os.fsencode(DATASET), b"--qps", b"5"]
    cmd += [b"--duration", b"0.2", b"--results-dir", os.fsencode(tmp_path / "results"), *argv]
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert err.startswith("qpsweep: error: ") and err.count("\n") == 1 and named in err, err
    assert app[HITS] == [] and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_lone_surrogate_in_a_server_message_is_written_replaced(qpsweep, counting) -> None:  # type: ignore[no-untyped-def]
    base, _ = counting
    run = qpsweep("--endpoint", f"{base}/surrogate/v1", *QUICK)
    assert run.code == 0, run.err
    records = run.records()
    assert records and {r["error"] for r in records} == {"HTTP 400: bad token ? here"}
    assert json.loads((run.run_dir / "metadata.json").read_text())["status"] == "complete"  # type: ignore[operator]
    (run.run_dir / "report.txt").unlink()  # type: ignore[operator]
    again = qpsweep("report", str(run.run_dir))
    assert again.code == 0, again.err
    assert (run.run_dir / "report.txt").exists()  # type: ignore[operator]


@pytest.mark.slow
def test_a_dataset_deleted_after_it_was_read_is_no_failure(qpsweep, counting, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, app = counting
    dataset = tmp_path / "gone.json"
    shutil.copy(DATASET, dataset)
    app[UNLINK].append(str(dataset))  # the probe's stream deletes it
    run = qpsweep("--endpoint", f"{base}/ok/v1", *QUICK, "--dataset", str(dataset), check=True)
    assert run.code == 0, run.err
    assert not dataset.exists() and "Traceback" not in run.err
    meta = json.loads((run.run_dir / "metadata.json").read_text())  # type: ignore[operator]
    assert meta["dataset_sha256"] == hashlib.sha256(DATASET.read_bytes()).hexdigest()
    assert meta["levels"][0]["n_sent"] == len(run.records()) > 0


@pytest.mark.slow
@pytest.mark.parametrize("route", ["huge", "hugejson"])
def test_a_usage_count_no_record_can_hold_fails_that_request_only(qpsweep, counting, route) -> None:  # type: ignore[no-untyped-def]
    base, _ = counting
    run = qpsweep("--endpoint", f"{base}/{route}/v1", *QUICK)
    assert run.code == 0, run.err
    records = run.records()
    assert records and {r["error_kind"] for r in records} == {"protocol"}
    assert all(str(HUGE) in r["error"] for r in records)
    assert all(r["output_tokens"] < 2**63 for r in records)
    (level,) = run.json("benchmark_qps_results.json")
    assert level["n_sent"] == len(records)
    (run.run_dir / "report.txt").unlink()  # type: ignore[operator]
    again = qpsweep("report", str(run.run_dir))
    assert again.code == 0, again.err
    assert (run.run_dir / "report.txt").exists()  # type: ignore[operator]


@pytest.mark.slow
def test_report_of_a_record_beyond_int64_fails_that_request(qpsweep, counting) -> None:  # type: ignore[no-untyped-def]
    """A run written before the client refused such counts: report rebuilds it, with that
    request a ``protocol`` failure quoting the number."""
    base, _ = counting
    run = qpsweep("--endpoint", f"{base}/ok/v1", *QUICK)
    assert run.code == 0, run.err
    requests = run.run_dir / "requests.jsonl"  # type: ignore[operator]
    lines = requests.read_text().splitlines()
    first = json.loads(lines[0])
    first["output_tokens"] = HUGE
    requests.write_text("\n".join([json.dumps(first, separators=(",", ":")), *lines[1:]]) + "\n")
    (run.run_dir / "requests.npz").unlink()  # type: ignore[operator]
    again = qpsweep("report", str(run.run_dir))
    assert again.code == 0 and "Traceback" not in again.err, again.err
    (level,) = json.loads((run.run_dir / "benchmark_qps_results.json").read_text())  # type: ignore[operator]
    assert level["errors_by_kind"] == {"protocol": 1}, level
    assert level["n_ok"] == len(lines) - 1
