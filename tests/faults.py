"""Misbehaving servers on 127.0.0.1 for ``test_faults.py`` (tests only; loopback only).

``make_fault_app()`` is the scripted app of ``servers.py`` (``ok``, ``status``, ``hang``,
``stall``, ``reset``, ``badjson``, ...) plus the faults below, so a redirect can point at
``/ok/...`` on the same origin.  As in ``servers.py`` the first path segment picks the
behaviour and the query tunes it: ``ServerThread(make_fault_app()).url("drop", how="rst")``.

Faults: ``drop`` (the connection is closed, or with ``how=rst`` reset, before any response
byte; ``servers.reset`` is the mid-stream one), ``http`` (``code``, ``body=empty|json``,
``retry_after``), ``noise`` (comments and non-data fields among the chunks), ``big`` (one event
of ``kb`` KiB of content in many writes), ``longline`` (``kb`` KiB without a newline, then the
connection closes; ``framing=chunked|close``), ``gzip`` (the stream gzip-compressed, flushed per
event), ``chunked`` (every few bytes its own HTTP chunk; ``crlf=1`` for CRLF line ends),
``json`` (a non-streamed completion with a Content-Length), ``redirect`` (``code``, and
``path`` on this origin or ``port`` of another server on 127.0.0.1), ``loop`` (a redirect to
itself), ``sink`` (``ok``, recording each request's Authorization header in ``HITS``) and
``mixed`` (a behaviour per request from the seeded RNG in ``MIX_RNG``, recorded in
``MIX_CHOICES``).

``TrickleServer`` is a raw listening socket (backlog 1) that accepts one connection every
``every_s`` seconds and answers it with a minimal hand-written SSE stream.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from types import TracebackType

from aiohttp import web

from servers import BEHAVIOURS, Handler, _chunk, _start_stream, make_app

HITS = web.AppKey("hits", list)  # Authorization header (or None) of every request to ``sink``
MIX_RNG = web.AppKey("mix_rng", random.Random)
MIX_CHOICES = web.AppKey("mix_choices", list)

# ``mixed``: behaviour -> (weight, handler, query it runs with); the test maps each to a kind.
MIX: dict[str, tuple[int, str, dict[str, str]]] = {
    "ok": (70, "ok", {"tokens": "3"}),
    "503": (5, "status", {"code": "503"}),
    "429": (5, "status", {"code": "429"}),
    "500": (5, "status", {"code": "500"}),
    "reset": (5, "reset", {}),
    "stall": (5, "stall", {}),
    "badjson": (5, "badjson", {}),
}
KIB = 1024
_PIECE = 16 * KIB  # bytes per write of the big bodies: a megabyte takes 64 writes


def _done() -> bytes:
    return b"data: [DONE]\n\n"


def _events(tokens: int) -> Iterator[bytes]:
    """A complete, valid stream of ``tokens`` content chunks (no usage)."""
    yield _chunk({"role": "assistant"})
    for i in range(tokens):
        yield _chunk({"content": f"w{i} "})
    yield _chunk({}, finish="stop")
    yield _done()


async def _pieces(resp: web.StreamResponse, data: bytes, size: int = _PIECE) -> None:
    """Write ``data`` in ``size``-byte writes, yielding to the loop between them."""
    for i in range(0, len(data), size):
        await resp.write(data[i : i + size])
        await asyncio.sleep(0)


async def _until_lost() -> web.StreamResponse:
    """Wait for aiohttp to cancel the handler (handler_cancellation: the connection is gone)."""
    await asyncio.sleep(3600)
    raise AssertionError("the connection was never lost")


async def drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    assert transport is not None
    if request.query.get("how") == "rst":  # linger 0: close sends a RST, not a FIN
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return await _until_lost()


async def http(request: web.Request) -> web.StreamResponse:
    q = request.query
    code = int(q.get("code", 503))
    headers = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
    if q.get("body", "json") == "empty":
        return web.Response(status=code, headers=headers)
    message = q.get("message", f"scripted {code}")
    return web.json_response({"error": {"message": message}}, status=code, headers=headers)


async def noise(request: web.Request) -> web.StreamResponse:
    """Lines that are not ``data:`` among valid chunks: all to be ignored (SSE spec)."""
    resp = await _start_stream(request)
    await resp.write(b": keep-alive comment\n\n" + _chunk({"role": "assistant"}))
    await resp.write(b"event: x\nid: 3\n" + _chunk({"content": "a "}))
    await resp.write(b"garbage without colon\n\n")
    await resp.write(b"retry: 10\n" + b":\n" + _chunk({"content": "b "}))
    await resp.write(b"id: 4\nevent: completion\n\n" + _chunk({"content": "c "}))
    await resp.write(b": before the end\n" + _chunk({}, finish="stop") + _done())
    return resp


async def big(request: web.Request) -> web.StreamResponse:
    """One event whose content is ``kb`` KiB (default 1100) in many writes, then 3 normal
    content chunks, usage-less, and [DONE]: 4 content chunks in all."""
    size = int(request.query.get("kb", 1100)) * KIB
    resp = await _start_stream(request)
    await resp.write(_chunk({"role": "assistant"}))
    await _pieces(resp, _chunk({"content": "x" * size}))
    for event in list(_events(3))[1:]:
        await resp.write(event)
    return resp


async def longline(request: web.Request) -> web.StreamResponse:
    """A role chunk and one content chunk, then ``kb`` KiB (default 1100) of an event that
    never ends (no newline at all), then the connection closes.  ``framing=chunked``: the body
    is chunk-encoded, so the close truncates it; ``framing=close``: a hand-written HTTP/1.1
    head without length or chunking, so the close is the body's legitimate end."""
    size = int(request.query.get("kb", 1100)) * KIB
    start = _chunk({"role": "assistant"}) + _chunk({"content": "a "})
    line = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * size
    transport = request.transport
    assert transport is not None
    if request.query.get("framing", "chunked") == "chunked":
        resp = await _start_stream(request)
        await resp.write(start)
        await _pieces(resp, line)
        await asyncio.sleep(0.05)
        transport.close()
        return await _until_lost()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    transport.write(head + start)
    for i in range(0, len(line), _PIECE):
        transport.write(line[i : i + _PIECE])
        await asyncio.sleep(0)
    transport.close()  # flushes what is buffered, then FIN
    return await _until_lost()


async def gzip_(request: web.Request) -> web.StreamResponse:
    """``tokens`` (default 5) content chunks ``itl_ms`` (default 30) apart, gzip-encoded with a
    sync flush after every event, so each one can be decoded as soon as it arrives."""
    tokens = int(request.query.get("tokens", 5))
    itl_s = float(request.query.get("itl_ms", 30)) / 1000
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
    )
    await resp.prepare(request)
    gz = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    for i, event in enumerate(_events(tokens)):
        if 1 < i <= tokens:
            await asyncio.sleep(itl_s)
        await resp.write(gz.compress(event) + gz.flush(zlib.Z_SYNC_FLUSH))
    await resp.write(gz.flush())
    return resp


async def chunked(request: web.Request) -> web.StreamResponse:
    """A valid stream sent as HTTP chunks of ``size`` (default 7) bytes, so lines and events
    straddle chunk boundaries; ``crlf=1`` ends the SSE lines with CRLF."""
    size = int(request.query.get("size", 7))
    body = b"".join(_events(int(request.query.get("tokens", 5))))
    if request.query.get("crlf") == "1":
        body = body.replace(b"\n", b"\r\n")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(0, len(body), size):
        await resp.write(body[i : i + size])
    return resp


async def json_(request: web.Request) -> web.StreamResponse:
    """A non-streamed completion with ``Content-Length`` (the server ignored ``stream``)."""
    body = {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi there"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")


async def redirect(request: web.Request) -> web.StreamResponse:
    q = request.query
    code = int(q.get("code", 307))
    if "port" in q:  # another origin
        location = f"http://127.0.0.1:{int(q['port'])}/sink/v1/chat/completions"
    else:
        location = f"/{q.get('path', 'ok')}/v1/chat/completions"
        if q.get("absolute") == "1":
            location = f"http://{request.host}{location}"
    return web.Response(status=code, headers={"Location": location})


async def loop(request: web.Request) -> web.StreamResponse:
    return web.Response(status=307, headers={"Location": request.path_qs})


async def sink(request: web.Request) -> web.StreamResponse:
    request.app[HITS].append(request.headers.get("Authorization"))
    return await BEHAVIOURS["ok"](request)


async def mixed(request: web.Request) -> web.StreamResponse:
    names = list(MIX)
    (name,) = request.app[MIX_RNG].choices(names, weights=[MIX[n][0] for n in names])
    request.app[MIX_CHOICES].append(name)
    _, handler, query = MIX[name]
    return await BEHAVIOURS[handler](request.clone(rel_url=request.rel_url.with_query(query)))


FAULTS: dict[str, Handler] = {
    "drop": drop,
    "http": http,
    "noise": noise,
    "big": big,
    "longline": longline,
    "gzip": gzip_,
    "chunked": chunked,
    "json": json_,
    "redirect": redirect,
    "loop": loop,
    "sink": sink,
    "mixed": mixed,
}


def make_fault_app(seed: int = 0) -> web.Application:
    """The ``servers.py`` app plus the faults of this module."""
    app = make_app()
    app[HITS] = []
    app[MIX_RNG] = random.Random(seed)
    app[MIX_CHOICES] = []
    for name, handler in FAULTS.items():
        app.router.add_post(f"/{name}/v1/chat/completions", handler)
    return app


class TrickleServer:
    """A listening socket (backlog 1) on 127.0.0.1 whose thread accepts one connection every
    ``every_s`` seconds and serves it a minimal SSE stream by hand, then closes it.  Connection
    attempts beyond the tiny queue wait for the kernel to retry their SYN."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.accepted = 0
        self.served = 0
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="trickle", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def __enter__(self) -> TrickleServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            with conn:
                try:
                    self._answer(conn)
                    self.served += 1
                except OSError:  # the client gave up on it while it sat in the queue
                    pass
            self._stop.wait(self.every_s)

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        conn.settimeout(2)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                raise ConnectionResetError("closed before the request was complete")
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:  # read it all: closing with unread data would send a RST
            piece = conn.recv(65536)
            if not piece:
                raise ConnectionResetError("closed before the body was complete")
            body += piece
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
            + _chunk({"content": "a "})
            + _chunk({"content": "b "}, finish="stop")
            + _done()
        )
