"""Streams classified as the README says (issue 19): an SSE ``event: error`` is a failure, two
JSON objects on one ``data:`` line are ``protocol``, bare CR line endings are accepted, and a
stream of only tool-call or reasoning deltas is content for the probe (``qpsweep check``).

Each case is a scripted loopback server (``raw_server`` for the bytes of a stream, split at
every byte where that matters) and qpsweep's own client or command line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from time import perf_counter
from typing import Any

import pytest
from aiohttp import web

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender, Trace
from qpsweep.http.sse import SseParser
from qpsweep.records.record import RequestRecord
from qpsweep.sim.app import AppServer

from raw_server import raw_server, read_request

PROMPT = Prompt(id=0, messages=(("user", "hi"),))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice]}, separators=(",", ":")).encode()


TOKENS = [_event({"content": "a"}), _event({"content": "b"})]
DONE = [_event({}, "stop"), b"data: [DONE]"]


def _stream(events: list[bytes], end: bytes = b"\n\n") -> bytes:
    return b"".join(e.replace(b"\n", end[:1]) + end for e in events)


async def _fetch(body: bytes, piece_bytes: int) -> RequestRecord:
    """One request to a server that writes ``HEAD`` + ``body`` in pieces of ``piece_bytes``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD)
        for k in range(0, len(body), piece_bytes):
            writer.write(body[k : k + piece_bytes])
            await writer.drain()
            await asyncio.sleep(0)

    async with raw_server(serve) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=5.0)) as sender:
            return await sender.fetch(Trace(0, 1.0, 0, 0, 0.0), PROMPT, perf_counter())


def fetch(body: bytes, piece_bytes: int = 1 << 20) -> RequestRecord:
    return asyncio.run(_fetch(body, piece_bytes))


ERROR_EVENT = b'event: error\ndata: {"message": "the model crashed"}'


@pytest.mark.parametrize("piece_bytes", [1 << 20, 7, 1])
def test_an_error_event_after_tokens_and_before_done_is_a_failure(piece_bytes: int) -> None:
    record = fetch(_stream([*TOKENS, ERROR_EVENT, *DONE]), piece_bytes)
    assert record.error_kind == "protocol"
    assert record.error == 'error event in stream: {"message": "the model crashed"}'


def test_an_error_event_at_the_very_end_is_a_failure() -> None:
    record = fetch(_stream(TOKENS) + ERROR_EVENT + b"\n")  # no blank line: dispatched at close
    assert record.error_kind == "protocol" and "the model crashed" in (record.error or "")


def test_two_objects_on_one_data_line_are_invalid_json() -> None:
    (first, second) = TOKENS
    record = fetch(_stream([first, first + second[6:], *DONE]))
    assert record.error_kind == "protocol" and "invalid JSON" in (record.error or "")
    spaced = fetch(_stream([first + b" " + second[6:], *DONE]))
    assert spaced.error_kind == "protocol"


def test_two_data_lines_of_one_event_are_invalid_json_too() -> None:
    (first, second) = TOKENS
    record = fetch(_stream([first + b"\n" + second, *DONE]))
    assert record.error_kind == "protocol"


@pytest.mark.parametrize("end", [b"\r\r", b"\r\n\r\n", b"\n\n"], ids=["CR", "CRLF", "LF"])
@pytest.mark.parametrize("piece_bytes", [1 << 20, 5, 1])
def test_every_line_ending_the_sse_specification_allows_is_accepted(
    end: bytes, piece_bytes: int
) -> None:
    record = fetch(_stream([*TOKENS, *DONE], end), piece_bytes)
    assert record.error_kind is None, record.error
    assert len(record.chunk_s) == 2


def test_a_crlf_split_between_two_pieces_ends_one_line() -> None:
    parser = SseParser()
    events = [*parser.feed(b"data: a\r"), *parser.feed(b"\ndata: b\r"), *parser.feed(b"\n\r\n")]
    assert events == [b"a\nb"]  # one event of two data lines, not two events
    assert SseParser().feed(b"data: a\r\rdata: b\r\r") == [b"a", b"b"]


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"data": [{"id": "m"}]})


async def _chat(request: web.Request) -> web.StreamResponse:
    """Only tool-call deltas (``/tools``), only reasoning deltas (``/reasoning``), or an error
    event (``/error``), then a finish and [DONE]."""
    await request.read()
    kind = request.match_info["kind"]
    if kind == "tools":
        call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}
        args = {"index": 0, "function": {"arguments": '{"x": 1}'}}
        events = [_event({"tool_calls": [call]}), _event({"tool_calls": [args]})]
    elif kind == "reasoning":
        events = [_event({"content": None, "reasoning_content": w}) for w in ("so", "yes")]
    else:
        events = [*TOKENS, ERROR_EVENT]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(_stream([*events, *DONE]))
    return resp


@pytest.fixture(scope="module")
def shaped() -> Iterator[str]:
    app = web.Application()
    app.router.add_get("/{kind}/health", _health)
    app.router.add_get("/{kind}/v1/models", _models)
    app.router.add_post("/{kind}/v1/chat/completions", _chat)
    with AppServer(app) as srv:
        yield srv.base_url


@pytest.mark.parametrize("kind", ["tools", "reasoning"])
def test_check_takes_tool_calls_or_reasoning_alone_for_content(qpsweep, shaped, kind) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("check", f"{shaped}/{kind}/v1", "--model", "m", dataset=None, results=False)
    assert run.code == 0, run.out
    assert "PASS  stream" in run.out and "2 tokens" in run.out


def test_check_fails_a_stream_with_an_error_event(qpsweep, shaped) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("check", f"{shaped}/error/v1", "--model", "m", dataset=None, results=False)
    assert run.code == 1
    assert "FAIL  stream  protocol: error event in stream" in run.out
