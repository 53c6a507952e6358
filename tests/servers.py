"""Real HTTP servers on 127.0.0.1 for the tests: a scripted OpenAI-style endpoint.

The first path segment picks the behaviour and query parameters tune it, so one server
serves every case: ``http://127.0.0.1:PORT/<behaviour>/v1/chat/completions?ttft_ms=100``.

Behaviours: ``ok`` (``ttft_ms``, ``itl_ms``, ``tokens``, ``usage=0`` to ignore
stream_options), ``status`` (``code``), ``strict`` (400 when ``stream_options`` is sent),
``hang`` (headers, then nothing), ``stall`` (two tokens, then nothing), ``reset`` (two tokens,
then the connection is dropped), ``badjson``, ``errorobj``, ``html``, ``empty``, ``nodone``,
``echo_auth`` (a 401 whose message repeats the Authorization header), ``flaky`` (503 to the
first ``fail`` requests carrying the same ``key``, then ``ok``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from qpsweep.sim.app import AppServer, start_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODIES = web.AppKey("bodies", list)
PEERS = web.AppKey("peers", set)  # client (host, port) pairs seen by ``ok``: one per connection
SEEN = web.AppKey("seen", dict)  # flaky: requests per key


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _start_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


async def ok(request: web.Request) -> web.StreamResponse:
    q = request.query
    ttft_s = float(q.get("ttft_ms", 0)) / 1000
    itl_s = float(q.get("itl_ms", 0)) / 1000
    tokens = int(q.get("tokens", 5))
    body = await request.json()
    usage = q.get("usage", "1") == "1" and body.get("stream_options", {}).get("include_usage")
    request.app[BODIES].append(body)
    assert request.transport is not None
    request.app[PEERS].add(request.transport.get_extra_info("peername"))
    loop = asyncio.get_running_loop()
    start = loop.time()  # token i is due at start + ttft + i * itl (absolute: no drift)
    resp = await _start_stream(request)
    await resp.write(_chunk({"role": "assistant"}))
    for i in range(tokens):
        await asyncio.sleep(max(0.0, start + ttft_s + i * itl_s - loop.time()))
        await resp.write(_chunk({"content": f"w{i} "}))
    await resp.write(_chunk({}, finish="length"))
    if usage:
        u = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
        await resp.write(b"data: " + json.dumps({"choices": [], "usage": u}).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await asyncio.sleep(float(q.get("tail_ms", 0)) / 1000)  # work after [DONE], before the end
    return resp


async def status(request: web.Request) -> web.StreamResponse:
    code = int(request.query.get("code", 503))
    if "key" in request.query:  # counted, as flaky counts
        key = request.query["key"]
        request.app[SEEN][key] = request.app[SEEN].get(key, 0) + 1
    await asyncio.sleep(float(request.query.get("delay_ms", 0)) / 1000)  # a queue before it
    headers = {"Retry-After": "1"} if code == 429 else {}
    message = request.query.get("message", f"scripted {code}")
    return web.json_response({"error": {"message": message}}, status=code, headers=headers)


async def flaky(request: web.Request) -> web.StreamResponse:
    key = request.query.get("key", "")
    seen = request.app[SEEN][key] = request.app[SEEN].get(key, 0) + 1
    if seen <= int(request.query.get("fail", 1)):
        return web.json_response({"error": {"message": "warming up"}}, status=503)
    return await ok(request)


async def strict(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if "stream_options" in body:
        return web.json_response({"error": {"message": "unknown field stream_options"}}, status=400)
    return await ok(request)


async def hang(request: web.Request) -> web.StreamResponse:
    resp = await _start_stream(request)
    await asyncio.sleep(3600)
    return resp


async def stall(request: web.Request) -> web.StreamResponse:
    resp = await _start_stream(request)
    await resp.write(_chunk({"content": "a "}) + _chunk({"content": "b "}))
    await asyncio.sleep(3600)
    return resp


async def reset(request: web.Request) -> web.StreamResponse:
    resp = await _start_stream(request)
    await resp.write(_chunk({"content": "a "}) + _chunk({"content": "b "}))
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return resp


async def _raw(
    request: web.Request, payload: bytes, ctype: str = "text/event-stream"
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": ctype})
    await resp.prepare(request)
    await resp.write(payload)
    return resp


async def badjson(request: web.Request) -> web.StreamResponse:
    return await _raw(
        request, _chunk({"content": "a "}) + b"data: {not json\n\n" + b"data: [DONE]\n\n"
    )


async def errorobj(request: web.Request) -> web.StreamResponse:
    err = json.dumps({"error": {"message": "engine died", "code": 500}}).encode()
    return await _raw(request, _chunk({"content": "a "}) + b"data: " + err + b"\n\n")


async def html(request: web.Request) -> web.StreamResponse:
    return await _raw(request, b"<html><body>Welcome to nginx!</body></html>\n", "text/html")


async def empty(request: web.Request) -> web.StreamResponse:
    return await _raw(request, _chunk({"role": "assistant"}) + b"data: [DONE]\n\n")


async def nodone(request: web.Request) -> web.StreamResponse:
    return await _raw(request, _chunk({"content": "a "}) + _chunk({"content": "b "}))


async def echo_auth(request: web.Request) -> web.StreamResponse:
    auth = request.headers.get("Authorization", "")
    return web.json_response({"error": {"message": f"invalid credentials: {auth}"}}, status=401)


BEHAVIOURS: dict[str, Handler] = {
    f.__name__: f
    for f in (
        ok,
        status,
        strict,
        hang,
        stall,
        reset,
        badjson,
        errorobj,
        html,
        empty,
        nodone,
        echo_auth,
        flaky,
    )
}


def make_app() -> web.Application:
    app = web.Application()
    app[BODIES] = []
    app[PEERS] = set()
    app[SEEN] = {}
    for name, handler in BEHAVIOURS.items():
        app.router.add_post(f"/{name}/v1/chat/completions", handler)
    return app


class ServerThread(AppServer):
    """The scripted app on 127.0.0.1 (free port), served from a background thread."""

    def url(self, behaviour: str, **query: Any) -> str:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{self.base_url}/{behaviour}/v1/chat/completions" + (f"?{qs}" if qs else "")


def main() -> None:
    """``python tests/servers.py``: serve in this process, print the port, run until killed."""

    async def serve() -> None:
        _, port = await start_app(make_app(), "127.0.0.1", 0)
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
