"""A real server on 127.0.0.1 for the ``--metrics-preset`` tests: streamed chat completions
plus a ``/metrics`` page rendered from a recorded sample (``tests/metrics_samples/*.prom``,
written by the project in each server's exposition format).

The page is the sample as written, except that the lines of the preset's queue gauges carry
the live state: ``running = min(in_flight, slots) + extra_running`` and ``waiting =
max(0, in_flight - slots)``, where ``in_flight`` counts the chat requests being answered now and
``extra_running`` plays a second client (requests qpsweep did not send).  For ``vllm`` the
prefix-cache counters move with finished requests: queries += 100, hits += 25 each (a hit rate
of 0.25 over any stretch).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from qpsweep.sim.app import AppServer

SAMPLES = Path(__file__).parent / "metrics_samples"
QUEUE_NAMES = {
    "vllm": ("vllm:num_requests_running", "vllm:num_requests_waiting"),
    "sglang": ("sglang:num_running_reqs", "sglang:num_queue_reqs"),
    "tgi": ("tgi_batch_current_size", "tgi_queue_size"),
    "llamacpp": ("llamacpp:requests_processing", "llamacpp:requests_deferred"),
}
COUNTERS = {  # name -> (start, step per finished request)
    "vllm:prefix_cache_queries_total": (1000.0, 100.0),
    "vllm:prefix_cache_hits_total": (500.0, 25.0),
}


@dataclass
class State:
    preset: str
    slots: int = 4
    extra_running: int = 0
    itl_s: float = 0.1
    tokens: int = 5
    in_flight: int = 0
    finished: int = 0


STATE = web.AppKey("state", State)


def _set(text: str, name: str, value: float) -> str:
    """Every sample line of ``name`` with its value replaced by ``value``."""
    line = re.compile(rf"^({re.escape(name)}(?:\{{[^}}]*\}})?[ \t]+)\S+", re.MULTILINE)
    return line.sub(lambda m: f"{m.group(1)}{value!r}", text)


def render(state: State) -> str:
    """The preset's sample with the live values (see the module doc)."""
    text = (SAMPLES / f"{state.preset}.prom").read_text(encoding="utf-8")
    if state.preset in QUEUE_NAMES:
        running, waiting = QUEUE_NAMES[state.preset]
        text = _set(text, running, float(min(state.in_flight, state.slots) + state.extra_running))
        text = _set(text, waiting, float(max(0, state.in_flight - state.slots)))
    if state.preset == "vllm":
        for name, (start, step) in COUNTERS.items():
            text = _set(text, name, start + step * state.finished)
    return text


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(text=render(request.app[STATE]), content_type="text/plain")


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    await request.read()
    state.in_flight += 1
    try:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk({"role": "assistant"}))
        for i in range(state.tokens):
            await asyncio.sleep(state.itl_s)
            await resp.write(_chunk({"content": f"w{i} "}))
        await resp.write(_chunk({}, finish="length"))
        await resp.write(b"data: [DONE]\n\n")
        state.finished += 1
        return resp
    finally:
        state.in_flight -= 1


def metrics_server(state: State) -> AppServer:
    """The app (chat + ``/metrics``) for ``state``, to serve with ``with``."""
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/metrics", _metrics)
    return AppServer(app)
