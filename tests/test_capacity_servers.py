"""``capacity_servers``: its Erlang-B helpers, and the servers themselves on 127.0.0.1 (their
stream shape, the FIFO queue, refusals, clients that leave, a short qpsweep run)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from capacity_servers import capacity_server, erlang_b, rate_at_blocking

from conftest import REPO, Run


def _closed_form(servers: int, erlangs: float) -> float:
    """``(A^N / N!) / sum_{k<=N} A^k / k!``: fine for small N."""
    terms = [erlangs**k / math.factorial(k) for k in range(servers + 1)]
    return terms[-1] / sum(terms)


@pytest.mark.parametrize(
    ("servers", "erlangs", "blocking"),
    [
        (0, 3.0, 1.0),
        (5, 0.0, 0.0),
        (1, 1.0, 0.5),
        (2, 1.0, 0.2),
        (3, 1.0, 0.0625),
        (8, 4.0, 0.03042),
        (10, 5.0, 0.01838),
        # Erlang-B tables: the load each trunk group carries at 1% / 5% blocking
        (10, 4.461, 0.01),
        (20, 12.03, 0.01),
        (50, 37.90, 0.01),
        (8, 4.543, 0.05),
    ],
)
def test_erlang_b_known_values(servers: int, erlangs: float, blocking: float) -> None:
    assert erlang_b(servers, erlangs) == pytest.approx(blocking, abs=5e-5)


@pytest.mark.parametrize("servers", [1, 2, 4, 8, 12])
@pytest.mark.parametrize("erlangs", [0.1, 0.5, 1.0, 3.0, 7.5, 20.0])
def test_erlang_b_is_the_closed_form(servers: int, erlangs: float) -> None:
    assert erlang_b(servers, erlangs) == pytest.approx(_closed_form(servers, erlangs), rel=1e-12)


def test_erlang_b_is_stable_and_monotone_for_large_groups() -> None:
    """1000 servers (A^N / N! overflows a float): finite, more load blocks more, more servers
    block less; at A = N it is close to the asymptote ``1 / sqrt(pi N / 2)``."""
    loads = [erlang_b(1000, a) for a in (800.0, 900.0, 1000.0, 1100.0)]
    assert loads == sorted(loads) and 0 < loads[0] < loads[-1] < 1
    assert erlang_b(1001, 1000.0) < erlang_b(1000, 1000.0)
    assert erlang_b(1000, 1000.0) == pytest.approx(1 / math.sqrt(math.pi * 1000 / 2), rel=0.03)


@pytest.mark.parametrize(
    ("servers", "service_s", "share", "rate"),
    [(10, 1.0, 0.01, 4.461), (20, 1.0, 0.01, 12.03), (50, 1.0, 0.01, 37.90), (8, 1.0, 0.05, 4.543)],
)
def test_rate_at_blocking_reads_the_table_backwards(
    servers: int, service_s: float, share: float, rate: float
) -> None:
    assert rate_at_blocking(servers, service_s, share) == pytest.approx(rate, rel=1e-3)


def test_rate_at_blocking_inverts_erlang_b() -> None:
    for servers, service_s, share in [(1, 1.0, 0.5), (8, 0.5, 0.05), (32, 0.25, 0.2), (3, 2, 0.9)]:
        rate = rate_at_blocking(servers, service_s, share)
        assert erlang_b(servers, rate * service_s) == pytest.approx(share, rel=1e-9)
    assert rate_at_blocking(1, 1.0, 0.5) == pytest.approx(1.0, rel=1e-9)  # A / (1 + A) = 1/2
    assert rate_at_blocking(8, 0.5, 0.05) == pytest.approx(2 * rate_at_blocking(8, 1.0, 0.05))


@pytest.mark.parametrize(
    "args", [(0, 1.0, 0.05), (4, 0.0, 0.05), (4, 1.0, 0.0), (4, 1.0, 1.0), (4, -1.0, 0.5)]
)
def test_rate_at_blocking_rejects_what_has_no_answer(args: tuple[int, float, float]) -> None:
    with pytest.raises(ValueError):
        rate_at_blocking(*args)


def test_erlang_b_rejects_negatives() -> None:
    with pytest.raises(ValueError):
        erlang_b(-1, 1.0)
    with pytest.raises(ValueError):
        erlang_b(1, -1.0)


async def _stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, list[tuple[float, bytes]]]:
    """POST ``body`` with ``stream: true``; the status and every SSE ``data:`` payload with
    its arrival time (s since the send)."""
    start_s = time.perf_counter()
    events: list[tuple[float, bytes]] = []
    async with session.post(url, json={"stream": True, **body}) as resp:
        async for raw in resp.content:
            if raw.startswith(b"data: "):
                events.append((time.perf_counter() - start_s, raw[6:].strip()))
        return resp.status, events


def _stats(base: str) -> Any:
    """``GET /stats`` with the standard library (outside any event loop)."""
    with urllib.request.urlopen(f"{base}/stats", timeout=5) as resp:
        return json.load(resp)


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


def test_fifo_streams_openai_chunks_over_the_service_time() -> None:
    """Token i at i S / T after admission, the end at S; a usage chunk when asked, then
    ``[DONE]``; ``/v1/completions`` streams ``text`` choices; ``/v1/models`` lists ``m``."""

    async def scenario(base: str) -> None:
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "max_tokens": 4, "stream_options": {"include_usage": True}}
            status, events = await _stream(session, f"{base}/v1/chat/completions", body)
            assert status == 200 and events[-1][1] == b"[DONE]"
            chunks = [json.loads(data) for _, data in events[:-1]]
            texts = [c["choices"][0]["delta"].get("content") for c in chunks[:-2]]
            assert texts == ["w0 ", "w1 ", "w2 ", "w3 "]
            assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
            assert chunks[-2]["choices"][0]["finish_reason"] == "length"
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
            times_s = [t for t, _ in events]
            assert times_s[0] < 0.1  # the first token at admission
            for i in range(4):
                assert times_s[i] == pytest.approx(i * 0.4 / 4, abs=0.08)
            assert times_s[-1] == pytest.approx(0.4, abs=0.1)
            status, events = await _stream(session, f"{base}/v1/completions", {"max_tokens": 99})
            chunks = [json.loads(data) for _, data in events[:-1]]
            assert status == 200 and len(chunks) == 16 + 1  # capped at MAX_TOKENS, no usage
            assert chunks[0]["choices"][0]["text"] == "w0 "
            models = await _get(session, f"{base}/v1/models")
            assert [m["id"] for m in models["data"]] == ["m"]

    with capacity_server("fifo", 1, 0.4) as base:
        asyncio.run(scenario(base))


def test_fifo_serves_in_arrival_order_one_slot_at_a_time() -> None:
    async def scenario(base: str) -> None:
        url = f"{base}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            tasks = []
            for _ in range(3):
                tasks.append(asyncio.create_task(_stream(session, url, {"max_tokens": 2})))
                await asyncio.sleep(0.02)  # a definite arrival order
            done = await asyncio.gather(*tasks)
            ends_s = [events[-1][0] for _, events in done]
            firsts_s = [events[0][0] for _, events in done]
            for k in range(3):  # admitted when the one before ends: (k + 1) x 0.25 s
                assert ends_s[k] + 0.02 * k == pytest.approx(0.25 * (k + 1), abs=0.1)
                assert firsts_s[k] + 0.02 * k == pytest.approx(0.25 * k, abs=0.1)
            stats = await _get(session, f"{base}/stats")
            assert stats["completed"] == 3 and stats["max_queued"] == 2 and stats["queued"] == 0

    with capacity_server("fifo", 1, 0.25) as base:
        asyncio.run(scenario(base))


def test_refuse_answers_503_at_once_when_every_slot_is_busy() -> None:
    async def scenario(base: str) -> None:
        url = f"{base}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            first = asyncio.create_task(_stream(session, url, {"max_tokens": 2}))
            await asyncio.sleep(0.1)
            start_s = time.perf_counter()
            async with session.post(url, json={"stream": True}) as resp:
                assert resp.status == 503
                assert "busy" in (await resp.json())["error"]["message"]
            assert time.perf_counter() - start_s < 0.2
            status, _ = await first
            assert status == 200
            status, _ = await _stream(session, url, {"max_tokens": 2})  # free again
            assert status == 200
            stats = await _get(session, f"{base}/stats")
            assert (stats["refused"], stats["completed"], stats["max_queued"]) == (1, 2, 0)

    with capacity_server("refuse", 1, 0.5) as base:
        asyncio.run(scenario(base))


@pytest.mark.slow
def test_a_client_that_leaves_gives_up_its_place_and_its_slot() -> None:
    async def scenario(base: str) -> None:
        url = f"{base}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            running = asyncio.create_task(_stream(session, url, {"max_tokens": 2}))
            await asyncio.sleep(0.1)
            queued = asyncio.create_task(_stream(session, url, {"max_tokens": 2}))
            await asyncio.sleep(0.1)
            assert (await _get(session, f"{base}/stats"))["queued"] == 1
            queued.cancel()  # leaves the queue
            running.cancel()  # leaves its slot
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(running, queued)
            await asyncio.sleep(0.1)
            stats = await _get(session, f"{base}/stats")
            assert (stats["gone_queued"], stats["gone_running"]) == (1, 1)
            assert (stats["queued"], stats["running"]) == (0, 0)
            status, events = await _stream(session, url, {"max_tokens": 2})
            assert status == 200 and events[0][0] < 0.2  # admitted at once, not at 1 s

    with capacity_server("fifo", 1, 1.0) as base:
        asyncio.run(scenario(base))


@pytest.mark.slow
def test_qpsweep_check_passes_and_a_sweep_gets_every_request_served(
    qpsweep_process: Callable[..., Run],
) -> None:
    """2 slots x 0.2 s (10/s) at 2 QPS: ``qpsweep check`` passes (health, models, stream) and
    every request of a 2 s level succeeds, each served by the server to the end."""
    with capacity_server("fifo", 2, 0.2) as base:
        check = subprocess.run(
            [sys.executable, "-m", "qpsweep", "check", f"{base}/v1", "--model", "m"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        run = qpsweep_process(
            "--endpoint", f"{base}/v1", "--model", "m", "--qps", "2", "--duration", "2",
            "--max-tokens", "8", "--seed", "1", "--no-check", "--no-plot",
            dataset=REPO / "datasets" / "short_prompts.jsonl", timeout_s=60,
        )  # fmt: skip
        served = _stats(base)["completed"]
    seen = f"qpsweep printed:\n{run.out}\n{run.err}"
    assert run.code == 0, seen
    records = run.records()
    assert len(records) >= 1, seen
    assert all(r["status"] == 200 and r["error_kind"] is None for r in records), seen
    assert served == len(records) + 1  # + the probe's stream
    e2e_s = sorted(r["done_s"] - r["sent_s"] for r in records)
    assert e2e_s[len(e2e_s) // 2] == pytest.approx(0.2, abs=0.1)  # never queued at 2 QPS
