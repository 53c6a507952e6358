"""``Sender`` on its own HTTP/1.1 connections, against a raw scripted server on 127.0.0.1.

Each case is a server that answers every request on a connection with scripted bytes; the
test sends requests one after the other through ``Sender.fetch`` and checks the records and
how many connections the server saw (keep-alive kept where allowed, never where not).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from time import perf_counter

import pytest

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender, Trace
from qpsweep.records.record import RequestRecord

from raw_server import raw_server, read_request

PROMPT = Prompt(id=0, messages=(("user", "hi"),))
EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


Script = Callable[[int], bytes | None]  # request number on the connection -> reply (None: close)


async def _exchange(
    script: Script, n_requests: int, pause_s: float, close_after: bool
) -> tuple[list[RequestRecord], int]:
    """Serve ``script`` on 127.0.0.1, send ``n_requests`` one after the other (``pause_s``
    apart); returns the records and the number of connections the server accepted."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = 0
        while True:
            await read_request(reader)
            reply = script(number)
            number += 1
            if reply is None:
                return
            writer.write(reply)
            await writer.drain()
            if close_after or b"connection: close" in reply.lower() or reply[:8] == b"HTTP/1.0":
                return

    records = []
    async with raw_server(serve) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=2.0)) as sender:
            for k in range(n_requests):
                t0 = perf_counter()
                records.append(await sender.fetch(Trace(0, 1.0, k, 0, 0.0), PROMPT, t0))
                await asyncio.sleep(pause_s)
    return records, server.n_accepted


def run(
    script: Script, n_requests: int = 3, pause_s: float = 0.0, close_after: bool = False
) -> tuple[list[RequestRecord], int]:
    return asyncio.run(_exchange(script, n_requests, pause_s, close_after))


def kinds(records: list[RequestRecord]) -> list[str | None]:
    return [r.error_kind for r in records]


def test_keep_alive_connection_is_reused() -> None:
    records, accepted = run(
        lambda _: SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)
    )
    assert kinds(records) == [None, None, None]
    assert {r.output_tokens for r in records} == {2}
    assert accepted == 1


def test_connection_close_is_obeyed() -> None:
    reply = SSE_HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(EVENTS) + EVENTS
    records, accepted = run(lambda _: reply)
    assert kinds(records) == [None, None, None]
    assert accepted == 3


def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    """The server answers one request per connection, then closes it without saying so; the
    next request, 0.1 s later, must not fail on the dead connection."""
    reply = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)
    records, accepted = run(lambda _: reply, pause_s=0.1, close_after=True)
    assert kinds(records) == [None, None, None]
    assert accepted == 3


def test_close_delimited_body_ends_with_the_connection() -> None:
    records, accepted = run(
        lambda _: b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + EVENTS
    )
    assert kinds(records) == [None, None, None]
    assert {r.output_tokens for r in records} == {2}
    assert accepted == 3


def test_interim_100_continue_is_skipped() -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + SSE_HEAD
        + b"Content-Length: %d\r\n\r\n" % len(EVENTS)
        + EVENTS
    )
    records, accepted = run(lambda _: reply)
    assert kinds(records) == [None, None, None]
    assert {r.status for r in records} == {200}
    assert accepted == 1


def test_cut_chunked_body_is_a_connection_failure() -> None:
    cut = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)[:-30]
    records, _ = run(lambda _: cut, n_requests=1, close_after=True)
    assert kinds(records) == ["connection"]
    assert (
        records[0].error == "the response body was cut off before its end (after 2 content chunks)"
    )


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n"])
def test_a_reply_that_is_not_http_is_a_protocol_failure(garbage: bytes) -> None:
    records, _ = run(lambda _: garbage, n_requests=1)
    assert kinds(records) == ["protocol"]
    assert records[0].error is not None and records[0].error.startswith("not an HTTP response")


def test_a_body_that_does_not_decompress_is_a_protocol_failure() -> None:
    reply = SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip at!"
    records, _ = run(lambda _: reply, n_requests=1)
    assert kinds(records) == ["protocol"]
    assert records[0].error is not None
    assert records[0].error.startswith("the body does not decompress"), records[0].error


def test_gzip_body_is_decoded_and_the_connection_kept() -> None:
    packed = gzip.compress(EVENTS)
    reply = SSE_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    records, accepted = run(lambda _: reply + packed)
    assert kinds(records) == [None, None, None]
    assert {r.output_tokens for r in records} == {2}
    assert accepted == 1


@pytest.mark.slow
def test_unanswered_request_times_out() -> None:
    records, _ = run(lambda _: b"", n_requests=1)
    assert kinds(records) == ["timeout_ttft"]


async def _written_before_fetch_returns() -> tuple[bool, list[RequestRecord]]:
    """Two requests on one kept-alive connection; the second one's ``fetch`` is called but
    not awaited, and the loop turned: did the server get the request all the same?"""
    heads: asyncio.Queue[bytes] = asyncio.Queue()
    reply = SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(EVENTS) + EVENTS

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await heads.put(await read_request(reader))
            writer.write(reply)

    async with raw_server(serve) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=2.0)) as sender:
            t0 = perf_counter()
            records = [await sender.fetch(Trace(0, 1.0, 0, 0, 0.0), PROMPT, t0)]
            await heads.get()
            reading = sender.fetch(Trace(0, 1.0, 1, 0, 0.0), PROMPT, t0)  # not awaited yet
            try:
                await asyncio.wait_for(heads.get(), 1.0)
                arrived = True
            except asyncio.TimeoutError:
                arrived = False
            records.append(await reading)
    return arrived, records


def test_request_is_written_before_fetch_returns_on_an_idle_connection() -> None:
    # the schedule sends in the step where it wakes, not one loop turn later in a new task
    arrived, records = asyncio.run(_written_before_fetch_returns())
    assert arrived
    assert kinds(records) == [None, None]
    assert records[1].sent_s <= records[1].first_token_s  # type: ignore[operator]
