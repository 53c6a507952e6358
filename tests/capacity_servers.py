"""OpenAI-compatible streaming servers of known capacity, for the verdict's tests and benchmark.

``python tests/capacity_servers.py fifo|refuse --slots N --service-s S`` serves on 127.0.0.1
(a free port, printed on the first line) until killed:

* ``fifo``: N slots; a request waits in a FIFO queue for a free one, then streams its tokens
  evenly over exactly S seconds.  Capacity N / S requests/s for any arrival process: the truth
  for both ``saturation_qps`` and ``capacity_qps``.
* ``refuse``: the same service, but a request arriving while N are in flight gets HTTP 503 at
  once.  For Poisson arrivals at rate lambda the refused share is Erlang-B ``B(N, lambda S)``
  (insensitive to the service distribution): the truth for ``saturation_qps`` is the rate where
  it crosses ``--max-error-rate`` (``rate_at_blocking``).

A client that goes away gives up its place in the queue or its slot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

from qpsweep.appserver import start_app

MAX_TOKENS = 16


def erlang_b(servers: int, offered_erlangs: float) -> float:
    """Erlang-B blocking probability: ``B(0) = 1``, ``B(k) = A B(k-1) / (k + A B(k-1))``."""
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_erlangs * b / (k + offered_erlangs * b)
    return b


def rate_at_blocking(servers: int, service_s: float, share: float) -> float:
    """The Poisson arrival rate (1/s) at which Erlang-B blocking equals ``share`` (bisection)."""
    lo, hi = 0.0, 1.0
    while erlang_b(servers, hi * service_s) < share:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if erlang_b(servers, mid * service_s) < share else (lo, mid)
    return (lo + hi) / 2


def _chunk(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _delta(text: str | None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _chunk({"object": "chat.completion.chunk", "choices": [choice]})


def make_app(mode: str, slots: int, service_s: float) -> web.Application:
    """The app: ``mode`` ``fifo`` or ``refuse`` (see the module docstring)."""
    gate = asyncio.Semaphore(slots)  # asyncio's Semaphore wakes its waiters in FIFO order
    in_flight = [0]

    async def serve(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        tokens = max(1, min(int(body.get("max_tokens") or MAX_TOKENS), MAX_TOKENS))
        usage = (body.get("stream_options") or {}).get("include_usage")
        if mode == "refuse" and in_flight[0] >= slots:
            error = {"error": {"message": "server busy", "type": "overloaded"}}
            return web.json_response(error, status=503)
        in_flight[0] += 1
        try:
            async with gate:
                return await _stream(request, tokens, bool(usage))
        finally:
            in_flight[0] -= 1

    async def _stream(request: web.Request, tokens: int, usage: bool) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()  # token i is due at start + i S / tokens; the end at start + S
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(tokens):
            await asyncio.sleep(max(0.0, start + i * service_s / tokens - loop.time()))
            await resp.write(_delta(f"w{i} "))
        await asyncio.sleep(max(0.0, start + service_s - loop.time()))
        await resp.write(_delta(None, "length"))
        if usage:
            u = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
            await resp.write(_chunk({"choices": [], "usage": u}))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", serve)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    """Serve in this process, print the port, run until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("fifo", "refuse"))
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--service-s", type=float, required=True)
    args = parser.parse_args()

    async def serve() -> None:
        _, port = await start_app(make_app(args.mode, args.slots, args.service_s), "127.0.0.1", 0)
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
