"""OpenAI-compatible streaming servers of known capacity, for the verdict's tests and benchmark.

``python tests/capacity_servers.py fifo|refuse --slots N --service-s S [--port 0]`` serves on
127.0.0.1 (``--port 0``: a free port), prints the bound port alone on its first line (flushed)
and serves until SIGTERM or SIGINT:

* ``fifo``: N slots; a request waits in a FIFO queue for a free one.  Once admitted it streams
  ``T = clamp(max_completion_tokens or max_tokens or MAX_TOKENS, 1, MAX_TOKENS)`` tokens, token
  ``i`` (0-based) at ``admission + i * S / T`` (the first right at admission), the finish chunk
  at ``admission + S``, then frees its slot.  Each request holds a slot exactly ``S`` seconds
  whatever its length, so the capacity is ``N / S`` requests/s for any arrival process: the
  truth for both ``saturation_qps`` and ``capacity_qps``.
* ``refuse``: the same service, but a request arriving while N are in flight gets HTTP 503 (a
  JSON error body) at once and never queues.  For Poisson arrivals at rate ``lam`` the refused
  share is Erlang-B ``B(N, lam * S)`` (insensitive to the service distribution), so the truth
  for ``saturation_qps`` is the rate where it crosses ``--max-error-rate``: ``rate_at_blocking``.

A client that goes away (the handler is cancelled: ``handler_cancellation=True``, or a write
fails) gives up its place in the queue or its slot at once.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (SSE when ``"stream":
true``: ``data: {chunk}`` events in OpenAI's shape, a ``"usage"`` chunk with empty ``choices``
when ``stream_options.include_usage``, then ``data: [DONE]``; otherwise one JSON body after
``S`` s), ``GET /v1/models`` (lists ``--model``, default ``m``), ``GET /health`` (200, so
``qpsweep check`` passes) and ``GET /stats`` (the counters of ``Stats``, JSON).

Standalone on purpose: it imports nothing from qpsweep, the code it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

MAX_TOKENS = 16
PROMPT_TOKENS = 7  # reported in usage; the prompt is not read
MODES = ("fifo", "refuse")


def erlang_b(servers: int, offered_erlangs: float) -> float:
    """Erlang-B blocking probability of ``servers`` servers offered ``A = offered_erlangs``
    erlangs (arrival rate x mean service time), by the stable recursion ``B(0) = 1``,
    ``B(k) = A B(k-1) / (k + A B(k-1))`` (equal to ``(A^N / N!) / sum_{k<=N} A^k / k!``)."""
    if servers < 0:
        raise ValueError(f"servers: {servers} must be >= 0")
    if offered_erlangs < 0:
        raise ValueError(f"offered_erlangs: {offered_erlangs} must be >= 0")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_erlangs * blocking / (k + offered_erlangs * blocking)
    return blocking


def rate_at_blocking(servers: int, service_s: float, share: float) -> float:
    """The Poisson arrival rate ``lam`` (1/s) with ``erlang_b(servers, lam * service_s) ==
    share``, by bisection (B increases strictly with the load from 0 to 1, so the root is
    unique); relative precision about 1e-12."""
    if servers < 1:
        raise ValueError(f"servers: {servers} must be >= 1")
    if service_s <= 0:
        raise ValueError(f"service_s: {service_s} must be > 0")
    if not 0.0 < share < 1.0:
        raise ValueError(f"share: {share} must be in (0, 1)")
    lo_rps, hi_rps = 0.0, servers / service_s  # B(N, N) < 1: double until it passes share
    while erlang_b(servers, hi_rps * service_s) < share:
        lo_rps, hi_rps = hi_rps, 2 * hi_rps
    while hi_rps - lo_rps > 1e-12 * hi_rps:
        mid_rps = (lo_rps + hi_rps) / 2
        if erlang_b(servers, mid_rps * service_s) < share:
            lo_rps = mid_rps
        else:
            hi_rps = mid_rps
    return (lo_rps + hi_rps) / 2


class FifoSlots:
    """``slots`` slots handed out strictly in order of ``acquire`` calls.  A waiter cancelled
    while queued leaves the queue; one cancelled just after being granted a slot passes the
    slot on."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        """Waiters still queued (granted or cancelled ones excluded)."""
        return sum(1 for fut in self._waiters if not fut.done())

    async def acquire(self) -> None:
        """Take a slot, waiting behind every earlier caller still waiting."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled before it ran: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest live waiter, else to the free pool."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


@dataclass
class Stats:
    """Counters since start (``GET /stats``): ``received`` requests parsed, ``refused`` 503s,
    ``admitted`` given a slot, ``completed`` served to the end, ``gone_queued`` /
    ``gone_running`` clients that left while queued / while served; ``running`` and ``queued``
    now, ``max_queued`` the longest queue seen."""

    received: int = 0
    refused: int = 0
    admitted: int = 0
    completed: int = 0
    gone_queued: int = 0
    gone_running: int = 0
    running: int = 0
    queued: int = 0
    max_queued: int = 0


STATS = web.AppKey("stats", Stats)


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _tokens(body: dict[str, Any]) -> int:
    """``clamp(max_completion_tokens or max_tokens or MAX_TOKENS, 1, MAX_TOKENS)``."""
    requested = body.get("max_completion_tokens") or body.get("max_tokens") or MAX_TOKENS
    try:
        return max(1, min(int(requested), MAX_TOKENS))
    except (TypeError, ValueError):
        return MAX_TOKENS


class _Reply:
    """The chunks of one response, in the shape of its route."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.id = f"cmpl-{time.monotonic_ns()}"
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if chat else "text_completion"

    def chunk(self, text: str | None, finish: str | None = None, first: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if first else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        head = {"id": self.id, "object": self.object, "created": self.created, "model": self.model}
        return _event({**head, "choices": [choice]})

    def usage(self, tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": tokens,
            "total_tokens": PROMPT_TOKENS + tokens,
        }

    def whole(self, tokens: int) -> dict[str, Any]:
        """The non-streamed body."""
        text = "".join(f"w{i} " for i in range(tokens))
        if self.chat:
            message = {"role": "assistant", "content": text}
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        obj = "chat.completion" if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(tokens),
        }


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


class CapacityServer:
    """The handlers of one app: ``mode`` (``fifo`` or ``refuse``, see the module docstring),
    ``slots`` slots of ``service_s`` seconds each, ``model`` listed by ``GET /v1/models``."""

    def __init__(self, mode: str, slots: int, service_s: float, model: str = "m") -> None:
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {MODES}")
        if slots < 1 or service_s <= 0:
            raise ValueError(f"slots {slots} must be >= 1 and service_s {service_s} > 0")
        self.mode, self.slots, self.service_s, self.model = mode, slots, service_s, model
        self.gate = FifoSlots(slots)
        self.stats = Stats()

    async def complete(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions`` and ``/v1/completions``: refuse, or queue, serve."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "the body is not a JSON object", "invalid_request_error")
        stats, gate = self.stats, self.gate
        stats.received += 1
        if self.mode == "refuse" and gate.free == 0:
            stats.refused += 1
            return _error(503, f"server busy: {self.slots} requests in flight", "overloaded")
        waits = gate.free == 0 or gate.queued > 0
        stats.queued += waits
        stats.max_queued = max(stats.max_queued, stats.queued)
        try:
            await gate.acquire()
        except asyncio.CancelledError:
            stats.gone_queued += 1
            raise
        finally:
            stats.queued -= waits
        stats.admitted += 1
        stats.running += 1
        try:
            reply = _Reply(request.path.endswith("/chat/completions"), str(body.get("model", "")))
            response = await self._serve(request, body, reply)
            stats.completed += 1
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            stats.gone_running += 1
            raise
        finally:
            stats.running -= 1
            gate.release()

    async def _serve(
        self, request: web.Request, body: dict[str, Any], reply: _Reply
    ) -> web.StreamResponse:
        """Hold the slot ``service_s`` from now, streaming when asked (see ``fifo``)."""
        loop = asyncio.get_running_loop()
        start_s = loop.time()  # absolute due times: no drift
        tokens, service_s = _tokens(body), self.service_s
        if body.get("stream") is not True:
            await asyncio.sleep(service_s)
            return web.json_response(reply.whole(tokens))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        for i in range(tokens):
            await asyncio.sleep(max(0.0, start_s + i * service_s / tokens - loop.time()))
            await resp.write(reply.chunk(f"w{i} ", first=i == 0))
        await asyncio.sleep(max(0.0, start_s + service_s - loop.time()))
        await resp.write(reply.chunk(None, "length"))
        if usage:
            head = {"id": reply.id, "object": reply.object, "created": reply.created}
            await resp.write(_event({**head, "choices": [], "usage": reply.usage(tokens)}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(self, _: web.Request) -> web.Response:
        """``GET /v1/models``."""
        listed = {"id": self.model, "object": "model", "owned_by": "capacity_servers"}
        return web.json_response({"object": "list", "data": [listed]})

    async def health(self, _: web.Request) -> web.Response:
        """``GET /health``."""
        return web.json_response({"status": "ok"})

    async def show_stats(self, _: web.Request) -> web.Response:
        """``GET /stats``: ``Stats`` as JSON."""
        return web.json_response(asdict(self.stats))


def make_app(mode: str, slots: int, service_s: float, model: str = "m") -> web.Application:
    """The app of ``CapacityServer(mode, slots, service_s, model)``; its ``Stats`` under
    ``app[STATS]``."""
    server = CapacityServer(mode, slots, service_s, model)
    app = web.Application()
    app[STATS] = server.stats
    app.router.add_post("/v1/chat/completions", server.complete)
    app.router.add_post("/v1/completions", server.complete)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/health", server.health)
    app.router.add_get("/stats", server.show_stats)
    return app


async def serve(app: web.Application, port: int = 0) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` (0: a free one), print the bound port, run until
    SIGTERM or SIGINT, then stop."""
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        print(int(runner.addresses[0][1]), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def capacity_server(mode: str, slots: int, service_s: float) -> Iterator[str]:
    """This script in its own process (no GIL shared with the load generator); yields
    ``http://127.0.0.1:PORT`` and stops it with SIGTERM, which must exit 0."""
    cmd = [sys.executable, str(Path(__file__)), mode, "--slots", str(slots)]
    proc = subprocess.Popen(
        [*cmd, "--service-s", str(service_s)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.terminate()
        code = proc.wait(10)
        proc.stdout.close()
    assert code == 0, f"capacity server exited {code}"


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--slots", type=int, required=True, help="N: requests served at once")
    parser.add_argument("--service-s", type=float, required=True, help="S: seconds per request")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument("--model", default="m", help="the model GET /v1/models lists")
    args = parser.parse_args(argv)
    if args.slots < 1 or args.service_s <= 0:
        parser.error("--slots must be >= 1 and --service-s > 0")
    app = make_app(args.mode, args.slots, args.service_s, args.model)
    asyncio.run(serve(app, args.port))


if __name__ == "__main__":
    main()
