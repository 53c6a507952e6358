"""Hostile response bodies and headers cost bounded memory and never fail their neighbours.

A raw server on 127.0.0.1 (its own thread) answers one request in eight with something
hostile (issue 19): a gzip or deflate JSON 200 of 1 MB that inflates to 128 MiB (8 times
``MAX_BODY_BYTES``), a gzip stream holding 64 MiB of blank lines between its events, or a
header value that never ends.  The client (``Sender``, in a fresh process, so that its peak
memory is its own) sends 32 requests at once; each healthy one must succeed, each hostile one
is ``protocol`` with a clear message (the blank lines are merely blank: that stream succeeds),
and the process's peak resident memory (``VmHWM`` of ``/proc/self/status``) grows by less than
200 MiB over what it held before the requests.  A gzip stream of a million events is inflated
only up to its request's deadline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from time import perf_counter

import pytest

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import MAX_BODY_BYTES, ClientSettings, Sender, Trace
from qpsweep.http.http1 import MAX_HEAD_BYTES

from raw_server import raw_server, read_request

INFLATED_BYTES = 128 * 2**20
BLANK_BYTES = 64 * 2**20
N_REQUESTS = 32
HOSTILE = ("gzip-json", "deflate-json", "gzip-blank-lines", "endless-header")
EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def _packed(
    head: bytes, filler: bytes, n_bytes: int, tail: bytes, wbits: int, level: int = 1
) -> bytes:
    """``head + filler * (n_bytes / len(filler)) + tail``, compressed block by block."""
    packer = zlib.compressobj(level, zlib.DEFLATED, wbits)
    block = filler * (2**20 // len(filler))
    out = [packer.compress(head)]
    out += [packer.compress(block) for _ in range(n_bytes // len(block))]
    out += [packer.compress(tail), packer.flush()]
    return b"".join(out)


def _bodies() -> dict[str, bytes]:
    """Each hostile kind's whole reply (head and body), and the healthy one's."""
    json_head = b'{"choices":[{"message":{"content":"'
    json_tail = b'"}}]}'
    gz, zl = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS
    gzip_json = _packed(json_head, b" ", INFLATED_BYTES, json_tail, gz)
    deflate_json = _packed(json_head, b" ", INFLATED_BYTES, json_tail, zl)
    blank = _packed(EVENTS[:78], b"\n", BLANK_BYTES, EVENTS[78:], gz, level=9)  # 65 KB

    def reply(content_type: bytes, encoding: bytes, body: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Encoding: %s\r\n" % (
            content_type,
            encoding,
        )
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    healthy = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    return {
        "healthy": healthy + b"Content-Length: %d\r\n\r\n" % len(EVENTS) + EVENTS,
        "gzip-json": reply(b"application/json", b"gzip", gzip_json),
        "deflate-json": reply(b"application/json", b"deflate", deflate_json),
        "gzip-blank-lines": reply(b"text/event-stream", b"gzip", blank),
    }


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    bodies = SERVED
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            kind = json.loads(await reader.readexactly(length))["messages"][0]["content"]
            if kind == "endless-header":  # until the client gives up on it
                writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
                while True:
                    writer.write(b"a" * 65536)
                    await writer.drain()
            writer.write(bodies[kind])
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


SERVED: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    SERVED.update(_bodies())
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    start = asyncio.start_server(_serve, "127.0.0.1", 0)
    server = asyncio.run_coroutine_threadsafe(start, loop).result(10)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


CLIENT = """
import asyncio, json, sys
from time import perf_counter
from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender, Trace

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))

async def main(url, kinds):
    before = peak_kib()
    with Sender(ClientSettings(url=url, model="m", timeout_s=60.0)) as sender:
        t0 = perf_counter()
        fetches = [
            sender.fetch(Trace(0, 1.0, k, k, 0.0), Prompt(k, (("user", kind),)), t0)
            for k, kind in enumerate(kinds)
        ]
        records = await asyncio.gather(*fetches)
    out = [[r.error_kind, r.error, r.output_tokens] for r in records]
    print(json.dumps({"records": out, "growth_kib": peak_kib() - before}))

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


@pytest.mark.slow
def test_one_hostile_response_in_eight_is_protocol_and_memory_stays_bounded(
    hostile_url: str,
) -> None:
    kinds = [HOSTILE[k // 8 % 4] if k % 8 == 7 else "healthy" for k in range(N_REQUESTS)]
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, hostile_url, *kinds],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    by_kind: dict[str, list[list[object]]] = {}
    for kind, record in zip(kinds, result["records"], strict=True):
        by_kind.setdefault(kind, []).append(record)
    assert all(r == [None, None, 2] for r in by_kind["healthy"]), by_kind["healthy"]
    assert by_kind["gzip-blank-lines"] == [[None, None, 2]]  # blank lines change nothing
    limit_mib = MAX_BODY_BYTES // 2**20
    for kind, encoding in (("gzip-json", "gzip"), ("deflate-json", "deflate")):
        ((error_kind, error, _),) = by_kind[kind]
        assert error_kind == "protocol"
        assert error == (
            f"the 200 response body is larger than {limit_mib} MiB once decompressed ({encoding})"
        )
    ((error_kind, error, _),) = by_kind["endless-header"]
    assert error_kind == "protocol"
    assert error == f"the response headers are longer than {MAX_HEAD_BYTES // 1024} KiB"
    assert result["growth_kib"] < 200 * 1024, result["growth_kib"]


N_EVENTS = 1_000_000


async def _stream_bomb_record() -> tuple[str | None, int]:
    """A gzip stream of ``N_EVENTS`` content events (80 MB inflated, all sent at once, no
    ``[DONE]``) read with a 0.3 s timeout: the record's kind and content chunks counted."""
    packed = _packed(b"", EVENTS[:78], N_EVENTS * 78, b"", 16 + zlib.MAX_WBITS)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    reply = head + b"Content-Length: %d\r\n\r\n" % len(packed) + packed

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_server(serve) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=0.3)) as sender:
            trace = Trace(0, 1.0, 0, 0, 0.0)
            record = await sender.fetch(trace, Prompt(0, (("user", "x"),)), perf_counter())
    return record.error_kind, record.output_tokens


@pytest.mark.slow
def test_a_compressed_stream_is_not_inflated_past_its_deadline() -> None:
    kind, n_chunks = asyncio.run(_stream_bomb_record())
    assert kind == "timeout_total"
    assert 0 < n_chunks < N_EVENTS  # it stopped at the deadline, not at the bomb's end
