"""Tests of the built-in simulator against a real server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from qpsweep.sim.server import SimConfig, SimServer, capacity_rps

FAST = {"decode_ms": 2.0, "decode_ms_per_seq": 0.1}
Start = Callable[..., SimServer]


@pytest.fixture
def sim() -> Iterator[Start]:
    """Factory: ``sim(**config_fields)`` starts a SimServer that stops after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda config=None, **kw: stack.enter_context(SimServer(config or SimConfig(**kw)))


def chat_body(max_tokens: int, stream: bool = True, **extra: Any) -> dict[str, Any]:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hi"}]
    return {"model": "m", "messages": msgs, "max_tokens": max_tokens, "stream": stream, **extra}


def events(raw: bytes) -> list[Any]:
    """SSE payloads of a complete body: parsed JSON, or the literal string ``[DONE]``."""
    out: list[Any] = []
    for block in raw.decode().split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def post(url: str, body: Any) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with session.post(url, data=data) as resp:
            return resp.status, await resp.read()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def metrics(base_url: str) -> dict[str, float]:
    status, text = await get(base_url + "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample, value = line.rsplit(" ", 1)
            name, labels = sample.split("{", 1)
            assert labels == 'model_name="qpsweep-sim"}'
            out[name] = float(value)
    return out


def assert_error(status: int, raw: bytes, expected: int) -> None:
    assert status == expected
    err = json.loads(raw)["error"]
    assert err["code"] == expected and err["message"] and err["type"]


def test_streaming_chat_shape(sim: Start) -> None:
    srv = sim(**FAST)
    url = srv.base_url + "/v1/chat/completions"
    body = chat_body(7, stream_options={"include_usage": True})
    status, raw = asyncio.run(post(url, body))
    assert status == 200
    ev = events(raw)
    assert ev[-1] == "[DONE]"
    chunks = ev[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["model"] == "m"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    content = chunks[1:-2]
    assert len(content) == 7
    assert all(c["choices"][0]["delta"]["content"].endswith(" ") for c in content)
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}
    # without include_usage: no usage chunk
    ev = events(asyncio.run(post(url, chat_body(3)))[1])
    assert len(ev) == 1 + 3 + 1 + 1 and all("usage" not in e for e in ev[:-1])


def test_non_streaming_json(sim: Start) -> None:
    srv = sim(**FAST)
    status, raw = asyncio.run(post(srv.base_url + "/v1/chat/completions", chat_body(5, False)))
    assert status == 200
    body = json.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert len(body["choices"][0]["message"]["content"].split()) == 5
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    status, raw = asyncio.run(
        post(
            srv.base_url + "/v1/completions",
            {"prompt": "one two three", "max_completion_tokens": 2},
        )
    )
    body = json.loads(raw)
    assert status == 200 and body["object"] == "text_completion"
    assert len(body["choices"][0]["text"].split()) == 2
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_completions_streaming(sim: Start) -> None:
    srv = sim(**FAST)
    body = {
        "prompt": "a b c d e",
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, raw = asyncio.run(post(srv.base_url + "/v1/completions", body))
    assert status == 200
    ev = events(raw)
    assert ev[-1] == "[DONE]" and ev[-2]["usage"]["prompt_tokens"] == 5
    texts = [e["choices"][0]["text"] for e in ev[:-3]]
    assert len(texts) == 6 and all(texts)
    assert {e["object"] for e in ev[:-1]} == {"text_completion"}
    assert ev[-3]["choices"][0]["finish_reason"] == "length"


def test_output_length_options(sim: Start) -> None:
    srv = sim(max_output_tokens=4, **FAST)
    ev = events(asyncio.run(post(srv.base_url + "/v1/chat/completions", chat_body(10)))[1])
    assert len(ev) == 1 + 4 + 1 + 1 and ev[-2]["choices"][0]["finish_reason"] == "stop"

    def lengths(server: SimServer) -> list[int]:
        url = server.base_url + "/v1/completions"
        bodies = [asyncio.run(post(url, {"prompt": "x", "max_tokens": 40})) for _ in range(12)]
        return [json.loads(raw)["usage"]["completion_tokens"] for _, raw in bodies]

    first = lengths(sim(output_tokens_mean=10, seed=7, **FAST))
    assert first == lengths(sim(output_tokens_mean=10, seed=7, **FAST))
    assert all(1 <= n <= 40 for n in first) and len(set(first)) > 3


def test_models_and_health(sim: Start) -> None:
    srv = sim()
    status, text = asyncio.run(get(srv.base_url + "/health"))
    assert status == 200
    status, text = asyncio.run(get(srv.base_url + "/v1/models"))
    body = json.loads(text)
    assert status == 200 and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["qpsweep-sim"]
    assert body["data"][0]["object"] == "model"


def test_metrics_move(sim: Start) -> None:
    srv = sim(max_num_seqs=4, decode_ms=10.0, decode_ms_per_seq=0.0)

    async def run() -> None:
        before = await metrics(srv.base_url)
        assert before["vllm:num_requests_running"] == 0
        url = srv.base_url + "/v1/chat/completions"
        calls = [asyncio.create_task(post(url, chat_body(30))) for _ in range(6)]
        await asyncio.sleep(0.15)
        during = await metrics(srv.base_url)
        assert during["vllm:num_requests_running"] == 4
        assert during["vllm:num_requests_waiting"] == 2
        assert during["vllm:gpu_cache_usage_perc"] == pytest.approx(4 * 34 / 65536)
        assert all(status == 200 for status, _ in await asyncio.gather(*calls))
        after = await metrics(srv.base_url)
        assert after["vllm:num_requests_running"] == after["vllm:num_requests_waiting"] == 0
        assert after["vllm:gpu_cache_usage_perc"] == 0
        assert after["vllm:generation_tokens_total"] == 6 * 30
        assert after["vllm:prompt_tokens_total"] == 6 * 4
        assert after["vllm:request_success_total"] == 6

    asyncio.run(run())
    text = asyncio.run(get(srv.base_url + "/metrics"))[1]
    assert "# TYPE vllm:num_requests_running gauge" in text
    assert "# HELP vllm:generation_tokens_total" in text


def test_bad_requests_get_400(sim: Start) -> None:
    srv = sim(kv_tokens=100, **FAST)
    chat, text = srv.base_url + "/v1/chat/completions", srv.base_url + "/v1/completions"
    cases: list[tuple[str, Any]] = [
        (chat, b"{not json"),
        (chat, b"[1, 2]"),
        (chat, {"model": "m", "prompt": "hi"}),
        (chat, {"messages": []}),
        (text, {"messages": [{"role": "user", "content": "x"}]}),
        (text, {"prompt": "x", "max_tokens": 0}),
        (text, {"prompt": "x", "max_tokens": 100}),
    ]
    for url, body in cases:
        status, raw = asyncio.run(post(url, body))
        assert_error(status, raw, 400)
        assert json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_queue_full_503_and_disconnect_frees_slot(sim: Start) -> None:
    srv = sim(max_num_seqs=1, max_queue=1, decode_ms=10.0)
    url = srv.base_url + "/v1/chat/completions"

    async def run() -> None:
        long_calls = [asyncio.create_task(post(url, chat_body(500)))]
        await asyncio.sleep(0.1)
        long_calls.append(asyncio.create_task(post(url, chat_body(500))))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        status, raw = await post(url, chat_body(5))
        assert time.monotonic() - t0 < 0.5
        assert_error(status, raw, 503)
        m = await metrics(srv.base_url)
        assert (m["vllm:num_requests_running"], m["vllm:num_requests_waiting"]) == (1, 1)
        for call in long_calls:  # clients disconnect: slot, queue place and KV come back
            call.cancel()
        await asyncio.gather(*long_calls, return_exceptions=True)
        await asyncio.sleep(0.2)
        m = await metrics(srv.base_url)
        assert m["vllm:num_requests_running"] == m["vllm:num_requests_waiting"] == 0
        assert m["vllm:gpu_cache_usage_perc"] == 0
        assert (await post(url, chat_body(3)))[0] == 200

    asyncio.run(run())


def test_reject_over_503(sim: Start) -> None:
    srv = sim(max_num_seqs=8, reject_over=2, decode_ms=10.0)
    url = srv.base_url + "/v1/chat/completions"

    async def run() -> None:
        calls = [asyncio.create_task(post(url, chat_body(20))) for _ in range(2)]
        await asyncio.sleep(0.08)
        status, raw = await post(url, chat_body(20))
        assert_error(status, raw, 503)
        assert [s for s, _ in await asyncio.gather(*calls)] == [200, 200]
        assert (await post(url, chat_body(2)))[0] == 200

    asyncio.run(run())


def test_fail_rate_gives_500(sim: Start) -> None:
    srv = sim(fail_rate=1.0)
    for body in (chat_body(3), chat_body(3, stream=False)):
        status, raw = asyncio.run(post(srv.base_url + "/v1/chat/completions", body))
        assert_error(status, raw, 500)
    assert asyncio.run(get(srv.base_url + "/health"))[0] == 200


async def read_stream(url: str, body: Any, timeout_s: float) -> tuple[bytes, str]:
    """Body bytes read until EOF, a connection error or no data for ``timeout_s``."""
    got = b""
    timeout = aiohttp.ClientTimeout(sock_read=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.post(url, json=body) as resp:
                async for piece in resp.content.iter_any():
                    got += piece
            return got, "eof"
        except asyncio.TimeoutError:
            return got, "timeout"
        except aiohttp.ClientError:
            return got, "error"


def test_stall_stops_stream_before_done(sim: Start) -> None:
    held = sim(stall_rate=1.0, **FAST)
    url = held.base_url + "/v1/chat/completions"
    raw, how = asyncio.run(read_stream(url, chat_body(20), timeout_s=0.5))
    assert how == "timeout" and b"[DONE]" not in raw
    assert raw.count(b'"content"') == 10 and raw.count(b'"role"') == 1
    # a bounded stall: the server cuts the connection after stall_s, still without [DONE]
    cut = sim(stall_rate=1.0, stall_s=0.3, **FAST)
    t0 = time.monotonic()
    raw, how = asyncio.run(read_stream(cut.base_url + "/v1/chat/completions", chat_body(9), 5.0))
    assert how != "timeout" and 0.3 <= time.monotonic() - t0 < 2.0
    assert b"[DONE]" not in raw and raw.count(b'"content"') == 4
    # non-streaming requests are not stalled
    assert asyncio.run(post(url, chat_body(4, stream=False)))[0] == 200


def test_kv_budget_holds_requests_waiting(sim: Start) -> None:
    srv = sim(kv_tokens=100, max_num_seqs=8, decode_ms=5.0)
    url = srv.base_url + "/v1/completions"

    async def run() -> None:
        calls = [
            asyncio.create_task(post(url, {"prompt": "x", "max_tokens": 60})) for _ in range(3)
        ]
        await asyncio.sleep(0.1)
        m = await metrics(srv.base_url)
        assert m["vllm:num_requests_running"] == 1
        assert m["vllm:num_requests_waiting"] == 2
        assert m["vllm:gpu_cache_usage_perc"] == pytest.approx(0.61)
        assert [s for s, _ in await asyncio.gather(*calls)] == [200, 200, 200]

    asyncio.run(run())


def test_config_validation() -> None:
    for bad in (
        {"max_num_seqs": 0},
        {"fail_rate": 1.5},
        {"decode_ms": -1.0},
        {"kv_tokens": 0},
        {"stall_rate": float("nan")},
        {"model": ""},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SimConfig(**bad)
    with pytest.raises(ValueError, match="loopback"):
        SimServer(host="0.0.0.0")


def test_server_lifecycle() -> None:
    with SimServer() as first:
        assert first.base_url.startswith("http://127.0.0.1:") and first.port > 0
        with pytest.raises(OSError), SimServer(port=first.port):
            pass  # port taken: the error reaches the caller and the thread is cleaned up
        assert asyncio.run(get(first.base_url + "/health"))[0] == 200
    with SimServer(port=first.port) as again:  # the port was released on exit
        assert asyncio.run(get(again.base_url + "/health"))[0] == 200


def test_serve_prints_one_line_and_stops_on_ctrl_c() -> None:
    # Ctrl-C as in a terminal: a parent that ignores SIGINT (an xdist worker does) passes the
    # ignoring on across exec, and Python then never raises KeyboardInterrupt.
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from qpsweep.sim.server import SimConfig, serve; serve(SimConfig(max_num_seqs=8), port=0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("qpsweep sim listening on http://127.0.0.1:")
        assert "model qpsweep-sim" in line and "req/s at 128 output tokens" in line
        url = line.split()[4]
        assert asyncio.run(get(url + "/health"))[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_capacity_formula() -> None:
    cfg = SimConfig(max_num_seqs=16, decode_ms=10.0, decode_ms_per_seq=0.5)
    assert capacity_rps(cfg, 128) == pytest.approx(16 / (128 * 0.018))
    assert capacity_rps(cfg, 64, 100) == pytest.approx(1000 / (64 * 18 / 16 + 0.05 * 100))
    small_kv = SimConfig(max_num_seqs=16, kv_tokens=4 * 128)
    assert capacity_rps(small_kv, 128) == pytest.approx(4 / (128 * (10 + 0.5 * 4) / 1000))


async def overload(url: str, body: dict[str, Any], rate: float, duration_s: float) -> list[float]:
    """Open-loop arrivals at ``rate`` for ``duration_s``; completion times (s since start)."""
    loop = asyncio.get_running_loop()
    done: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = loop.time()

        async def one() -> None:
            async with session.post(url, json=body) as resp:
                assert resp.status == 200
                tail = b""
                async for piece in resp.content.iter_any():
                    tail = (tail + piece)[-16:]
                assert tail.endswith(b"data: [DONE]\n\n")
            done.append(loop.time() - t0)

        tasks = []
        for i in range(int(rate * duration_s)):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(max(0.0, t0 + duration_s - loop.time()))
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [
        r
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    assert not failures, failures[:3]
    return done


@pytest.mark.parametrize(
    ("config", "prompt_words"),
    [
        (SimConfig(max_num_seqs=8, decode_ms=10.0, decode_ms_per_seq=1.0, max_queue=2000), 1),
        (
            SimConfig(
                max_num_seqs=16,
                decode_ms=6.0,
                decode_ms_per_seq=0.5,
                prefill_ms_per_token=0.1,
                max_queue=2000,
            ),
            50,
        ),
    ],
    ids=["B8-step18ms", "B16-step14ms-prefill5ms"],
)
@pytest.mark.slow
def test_capacity_under_overload(sim: Start, config: SimConfig, prompt_words: int) -> None:
    """Open-loop arrivals at 2x capacity: completions/s in the steady window match the formula."""
    out_tokens, duration_s, warmup_s = 32, 7.0, 2.0
    expected = capacity_rps(config, out_tokens, prompt_words)
    srv = sim(config)
    body = {"prompt": " ".join(["w"] * prompt_words), "max_tokens": out_tokens, "stream": True}
    done = asyncio.run(overload(srv.base_url + "/v1/completions", body, 2 * expected, duration_s))
    achieved = sum(warmup_s <= t <= duration_s for t in done) / (duration_s - warmup_s)
    print(f"B={config.max_num_seqs}: formula {expected:.2f} req/s, measured {achieved:.2f} req/s")
    assert achieved == pytest.approx(expected, rel=0.15)
