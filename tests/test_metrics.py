"""Tests of the server-metrics scraper against real servers on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from qpsweep.http.prometheus import DEFAULT_GAUGES, MetricsScraper, parse_prometheus
from qpsweep.records.server_metrics import METRICS_FILE, read_samples, summarize_metrics
from qpsweep.sim.app import app_url, start_app
from qpsweep.sim.server import SimConfig

from conftest import sim_process

RUNNING, WAITING, KV = DEFAULT_GAUGES
TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a",engine="0"} 3.0
vllm:num_requests_running{model_name="b {x}",engine="1"} 2
vllm:num_requests_running_total{model_name="a"} 99
vllm:num_requests_waiting{model_name="a"} NaN
vllm:num_requests_waiting{model_name="b"} 4 1700000000000
vllm:gpu_cache_usage_perc{model_name="a"} +Inf
vllm:gpu_cache_usage_perc{model_name="a" 0.5
vllm:gpu_cache_usage_perc{model_name="b"} abc
vllm:gpu_cache_usage_perc{model_name="c",path="a\\"}"} 0.25
vllm:prompt_tokens_total{model_name="a"} 1e3 # {trace_id="t"} 1.0
 # a stray comment mentioning vllm:num_requests_running 7
vllm:request_success_total NaN"""


def run(coro: Coroutine[Any, Any, Any], loop_kind: str = "asyncio") -> Any:
    """``asyncio.run``, or the same on a uvloop loop (the sweep's)."""
    if loop_kind == "asyncio":
        return asyncio.run(coro)
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_parse_prometheus() -> None:
    names = [RUNNING, WAITING, KV, "vllm:prompt_tokens_total", "vllm:request_success_total"]
    values = parse_prometheus(TEXT, [*names, "vllm:absent", "vllm:num_requests"])
    assert values == {
        RUNNING: 5.0,  # two label sets summed; the _total line and the comment are other lines
        WAITING: 4.0,  # NaN ignored, timestamp ignored
        KV: 0.25,  # +Inf ignored, broken labels and "abc" skipped, escaped quote in a label
        "vllm:prompt_tokens_total": 1000.0,  # exemplar ignored
    }  # only-NaN, absent names and a bare prefix of a name are absent (not 0)
    assert parse_prometheus("", names) == {}
    assert parse_prometheus(f"{RUNNING} 1", [RUNNING]) == {RUNNING: 1.0}  # no labels, no "\n"
    assert parse_prometheus(f"{RUNNING} 1\r\n", [RUNNING]) == {RUNNING: 1.0}


@pytest.mark.slow
def test_scrapes_the_simulator_under_load(tmp_path: Path) -> None:
    # 4 slots, 8 requests of 200 tokens at ~7 ms a step: two waves of ~1.4 s, so requests run
    # and wait for most of the 3 s
    config = SimConfig(max_num_seqs=4, decode_ms=5.0)
    path = tmp_path / METRICS_FILE
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "count to two hundred"}],
        "max_tokens": 200,
        "stream": True,
    }

    async def stream(session: aiohttp.ClientSession, url: str) -> int:
        async with session.post(url, json=body) as resp:
            return len(await resp.read()) if resp.status == 200 else -resp.status

    async def main(base_url: str) -> tuple[float, float]:
        scraper = MetricsScraper(base_url + "/metrics", DEFAULT_GAUGES, path, interval_s=1 / 3)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await scraper.start(session)
            t0 = time.perf_counter()
            scraper.mark_level(0, t0)
            await asyncio.sleep(0.1)
            url = base_url + "/v1/chat/completions"
            load = [asyncio.ensure_future(stream(session, url)) for _ in range(8)]
            await asyncio.sleep(1.4)
            scraper.mark_level(1, time.perf_counter())
            await asyncio.sleep(1.5)
            began = time.perf_counter()
            await scraper.stop()
            stop_s = time.perf_counter() - began
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
            return time.perf_counter() - t0, stop_s

    with sim_process(config) as base_url:
        elapsed_s, stop_s = run(main(base_url))
    assert stop_s < 0.5
    samples = read_samples(path)
    assert 2 * elapsed_s <= len(samples) <= 4 * elapsed_s, len(samples)
    assert all(s["error"] is None and set(s["values"]) == set(DEFAULT_GAUGES) for s in samples)
    assert max(s["values"][RUNNING] for s in samples) == 4
    assert max(s["values"][WAITING] for s in samples) > 0
    assert 0 < max(s["values"][KV] for s in samples) <= 1
    levels = [s["level"] for s in samples]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == 1
    for s in samples:
        assert s["level_t_s"] >= 0
    t_s = [s["t_s"] for s in samples]  # absolute ticks of 1/3 s
    assert all(abs(t * 3 - round(t * 3)) < 0.1 for t in t_s), t_s
    summary = summarize_metrics(samples)
    assert set(summary) == {0, 1}
    for per_name in summary.values():
        assert set(per_name) == set(DEFAULT_GAUGES)
        for stats in per_name.values():
            assert stats["n"] >= 2 and stats["max"] >= stats["mean"] >= 0
    assert summary[0][RUNNING]["max"] == 4
    assert summary[1][RUNNING]["last"] == samples[-1]["values"][RUNNING]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port_keeps_ticking(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    url = f"http://127.0.0.1:{free_port()}/metrics"

    async def main() -> float:
        scraper = MetricsScraper(url, DEFAULT_GAUGES, path, interval_s=0.2, timeout_s=0.15)
        async with aiohttp.ClientSession() as session:
            await scraper.start(session)
            await asyncio.sleep(1.1)
            began = time.perf_counter()
            await scraper.stop()
            await scraper.stop()  # idempotent
            return time.perf_counter() - began

    assert run(main()) < 0.2
    samples = read_samples(path)
    assert 5 <= len(samples) <= 7
    for s in samples:
        assert s["values"] == {} and s["level"] is None and s["level_t_s"] is None
        assert "ClientConnectorError" in s["error"] and len(s["error"]) <= 160
    assert summarize_metrics(samples) == {}


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_hung_endpoint_does_not_delay_ticks(tmp_path: Path, loop_kind: str) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text=f"{RUNNING} 1\n")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/hang", hang)
    app.router.add_get("/fail", fail)

    async def main() -> tuple[MetricsScraper, ...]:
        runner, port = await start_app(app, "127.0.0.1", 0)
        base = app_url("127.0.0.1", port)
        scrapers = (  # on time / slower than its interval / an HTTP error
            MetricsScraper(base + "/hang", [RUNNING], tmp_path / "a", 0.3, 0.2),
            MetricsScraper(base + "/hang", [RUNNING], tmp_path / "b", 0.1, 0.25),
            MetricsScraper(base + "/fail", [RUNNING], tmp_path / "c", 0.3, 0.2),
        )
        try:
            async with aiohttp.ClientSession() as session:
                for scraper in scrapers:
                    await scraper.start(session)
                    scraper.mark_level(3, time.perf_counter() - 10)
                # stop just as scraper a's scrape of 1.2 s times out: aiohttp may turn the
                # cancel into a timeout (aio-libs/aiohttp#5979); stop() must still end it
                await asyncio.sleep(1.4)
                began = time.perf_counter()
                await asyncio.gather(*(scraper.stop() for scraper in scrapers))
                assert time.perf_counter() - began < 0.2  # scrapes in flight are abandoned
        finally:
            await runner.cleanup()
        return scrapers

    on_time, slow, failing = run(main(), loop_kind)
    samples = read_samples(tmp_path / "a")
    assert [round(s["t_s"] / 0.3) for s in samples] == list(range(len(samples)))
    assert len(samples) >= 4
    for s in samples:
        assert abs(s["t_s"] - 0.3 * round(s["t_s"] / 0.3)) < 0.05  # on its tick
        assert s["error"] == "timeout after 0.2 s" and 0.19 <= s["scrape_s"] < 0.3
        assert s["level"] == 3 and s["level_t_s"] >= 10
    # each scrape takes 0.25 s > 0.1 s: the ticks in between are skipped, not made up in a burst
    samples = read_samples(tmp_path / "b")
    ticks = [round(s["t_s"] / 0.1) for s in samples]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert ticks[0] == 0 and len(samples) >= 4 and set(gaps) <= {3, 4}, ticks
    assert all(0.24 <= s["scrape_s"] < 0.35 for s in samples)
    assert slow.skipped_ticks >= sum(g - 1 for g in gaps) and on_time.skipped_ticks == 0
    samples = read_samples(tmp_path / "c")
    assert len(samples) >= 4 and {s["error"] for s in samples} == {"HTTP 500"}
    assert failing.write_error is None


def test_read_samples_and_summary(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    rows: list[dict[str, Any]] = [
        {"t_s": 0.0, "level": None, "level_t_s": None, "values": {RUNNING: 9.0}, "error": None},
        {"t_s": 1.0, "level": 0, "level_t_s": 0.5, "values": {RUNNING: 2.0}, "error": None},
        {"t_s": 2.0, "level": 0, "level_t_s": 1.5, "values": {}, "error": "HTTP 503"},
        {"t_s": 3.0, "level": 0, "level_t_s": 2.5, "values": {RUNNING: 4.0, KV: 0.5}},
        {"t_s": 4.0, "level": 2, "level_t_s": 0.1, "values": {RUNNING: 1.0}, "error": None},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + '{"t_s": 5.0, "lev')  # a write cut short by a kill
    samples = read_samples(path)
    assert samples == rows
    assert summarize_metrics(samples) == {
        0: {
            RUNNING: {"mean": 3.0, "max": 4.0, "last": 4.0, "n": 2},
            KV: {"mean": 0.5, "max": 0.5, "last": 0.5, "n": 1},
        },
        2: {RUNNING: {"mean": 1.0, "max": 1.0, "last": 1.0, "n": 1}},
    }
    path.write_text('{"t_s": 0}\n' + text)
    with pytest.raises(ValueError, match="line 1"):
        read_samples(path)
    assert summarize_metrics([]) == {}


@pytest.mark.slow
def test_a_sweep_scrapes_the_simulator_gauges_per_level(qpsweep) -> None:
    """``--metrics-url`` end to end: the file, the per-level summary, the plot, the HTML."""
    config = SimConfig(max_num_seqs=4, decode_ms=5.0, decode_ms_per_seq=0.0)
    with sim_process(config) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "sim", "--max-tokens", "40", "--qps", "5,60",
            "--duration", "3", "--metrics-url", f"{url}/metrics", "--max-error-rate", "0.9",
            plots=True,
        )  # fmt: skip
    assert run.code == 0, run.err
    assert run.run_dir is not None
    samples = read_samples(run.run_dir / "server_metrics.jsonl")
    assert len(samples) >= 5 and all(s["error"] is None for s in samples)
    low, high = run.json("benchmark_qps_results.json")
    running = "vllm:num_requests_running"
    assert high["server_metrics"][running]["max"] == 4  # every slot busy past capacity
    assert high["server_metrics"]["vllm:num_requests_waiting"]["max"] > 0
    assert low["server_metrics"][running]["mean"] < high["server_metrics"][running]["mean"]
    assert (run.run_dir / "plots" / "server_metrics.png").stat().st_size > 10_000
    html = (run.run_dir / "report.html").read_text()
    assert "server metrics from --metrics-url beside the requests in flight" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-url", "localhost:9/metrics"], "--metrics-url: 'localhost:9/metrics' must"),
        (["--metrics-gauge", "x"], "--metrics-gauge needs --metrics-url"),
    ],
)
def test_bad_metrics_flags_are_one_line(qpsweep, args: list[str], message: str) -> None:
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", *args)
    assert run.code == 2 and message in run.err and len(run.err.strip().splitlines()) == 1
