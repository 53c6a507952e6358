"""Per-request cost of each piece of qpsweep's hot path, without the network.

``python tests/perf/bench_hotpath.py [--cpu 0] [--n 20000]``

Times (``timeit``, best of ``REPEATS``) each piece that ``Sender.fetch`` / ``_read_sse`` and the
sweep's sink run once per request on the ``fast`` target's 18-event body
(``nginx_target.sse_events()``), and prints ``us_per_request`` = microseconds per call x calls
per request.  The pieces are the product's own functions (some private, so this script follows
their names); the ``alt:`` rows are cheaper alternatives for comparison, not product code.
The sum of the product rows is a floor for the Python work per request that the
``cpu_s_per_1k`` of ``bench_generator.py`` includes (ms per request = s per 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import IO

import uvloop
from nginx_target import sse_events

from qpsweep.http.client import Trace, _take_event, _take_events
from qpsweep.http.plain_chunk import PlainChunks
from qpsweep.http.sse import SseParser
from qpsweep.records.record import RecordWriter, RequestRecord

REPEATS = 5


def best_us(fn: Callable[[], object], n: int) -> float:
    """Best-of-``REPEATS`` microseconds per call of ``fn``."""
    return min(timeit.repeat(fn, number=n, repeat=REPEATS)) / n * 1e6


def body_bytes() -> bytes:
    """The fast target's whole response body (SSE part, without HTTP chunk framing)."""
    return "".join(sse_events()).encode()


def payloads() -> list[bytes]:
    """The event payloads ``SseParser`` yields for the body ([DONE] last)."""
    return SseParser().feed(body_bytes())


def parse_body() -> list[bytes]:
    """``SseParser.feed`` on the whole body in one piece, then ``close``."""
    parser = SseParser()
    events = parser.feed(body_bytes_cached)
    parser.close()
    return events


def take_events(events: list[bytes]) -> Trace:
    """``_take_events`` (``_read_sse``'s loop) on a response's payloads in one piece, with a
    new ``PlainChunks``: the template learned, runs of content chunks counted in one go,
    ``json.loads`` for the rest."""
    trace = Trace(0, 1.0, 0, 0, 0.0)
    _take_events(trace, events, 0.001, PlainChunks())
    return trace


def openai_style_events() -> list[bytes]:
    """19 payloads + [DONE] as OpenAI's API streams them when usage is asked for: every chunk
    carries ``"usage":null``, the role chunk has empty content, a finish chunk, and a last
    chunk with ``"choices":[]`` and the usage."""
    ident = b'"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m"'
    role = b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null'
    out = [b'{%s,"choices":[{"index":0,%s}],"usage":null}' % (ident, role)]
    for k in range(16):
        out.append(
            b'{%s,"choices":[{"index":0,"delta":{"content":" t%d"},"logprobs":null,'
            b'"finish_reason":null}],"usage":null}' % (ident, k)
        )
    out.append(
        b'{%s,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}' % ident
    )
    usage = b'{"prompt_tokens":8,"completion_tokens":16,"total_tokens":24}'
    out += [b'{%s,"choices":[],"usage":%s}' % (ident, usage), b"[DONE]"]
    return out


def old_take_events(events: list[bytes]) -> Trace:
    """alt: ``_take_event`` per payload (no runs), as before ``_take_events``."""
    trace = Trace(0, 1.0, 0, 0, 0.0)
    plain = PlainChunks()
    for payload in events[:-1]:
        _take_event(trace, payload, 0.001, plain)
    return trace


def alt_scan_events() -> int:
    """alt: a content test by byte search, no JSON (``b'"content":"'`` in payload)."""
    return sum(1 for p in events_cached[:-1] if b'"content":"' in p)


def finished_record() -> RequestRecord:
    """A ``Trace`` with 16 chunk times, turned into its ``RequestRecord``."""
    trace = Trace(0, 1000.0, 7, 3, 0.5)
    trace.sent_s = 0.5001
    trace.chunk_s.extend(0.501 + k * 1e-5 for k in range(16))
    trace.usage_prompt, trace.usage_completion = 8, 16
    return trace.finish(0.5012, None, None)


def alt_buffered_write(out: IO[str], record: RequestRecord) -> None:
    """alt: ``write(to_json + newline)`` with no flush (a buffered writer)."""
    out.write(record.to_json() + "\n")


async def _done() -> None:
    return None


def loop_costs(loop: asyncio.AbstractEventLoop, n: int) -> dict[str, float]:
    """Microseconds per call of the asyncio pieces, on ``loop`` (uvloop)."""

    async def with_wait_for() -> None:
        for _ in range(n):
            await asyncio.wait_for(_done(), 0.05)

    async def plain() -> None:
        for _ in range(n):
            await _done()

    async def tasks() -> None:
        for _ in range(n):
            await loop.create_task(_done())

    out = {}
    for name, coro_fn in (("wait_for", with_wait_for), ("await", plain), ("task", tasks)):
        start = perf_counter()
        loop.run_until_complete(coro_fn())
        out[name] = (perf_counter() - start) / n * 1e6
    return out


body_bytes_cached = body_bytes()
events_cached = payloads()


def rows(n: int, workdir: Path) -> list[tuple[str, float, int]]:
    """(piece, microseconds per call, calls per request)."""
    record = finished_record()
    ev, openai = events_cached, openai_style_events()
    assert len(take_events(ev).chunk_s) == len(take_events(openai).chunk_s) == 16
    writer = RecordWriter(workdir / "requests.jsonl")
    buffered = (workdir / "buffered.jsonl").open("w", encoding="utf-8")
    loop = uvloop.new_event_loop()
    try:
        lc = loop_costs(loop, n)
        out = [
            ("SseParser.feed+close (3 KB body, 1 piece)", best_us(parse_body, n), 1),
            ("_take_events (18 events, one piece)", best_us(lambda: take_events(ev), n), 1),
            ("alt: _take_event x17, one call each", best_us(lambda: old_take_events(ev), n), 1),
            (
                "_take_events (OpenAI-style, 20 events)",
                best_us(lambda: take_events(openai), n),
                1,
            ),
            ("alt: byte-search content test x17", best_us(alt_scan_events, n), 1),
            ("Trace + 16 chunk times + finish()", best_us(finished_record, n), 1),
            ("RequestRecord.to_json (16 chunks)", best_us(record.to_json, n), 1),
            (
                "RecordWriter.write (to_json + one write)",
                best_us(lambda: writer.write(record), n),
                1,
            ),
            (
                "alt: buffered text write, no flush",
                best_us(lambda: alt_buffered_write(buffered, record), n),
                1,
            ),
            ("perf_counter() calls", best_us(perf_counter, n), 4),
            ("asyncio.wait_for(done, 0.05) (_read_rest)", lc["wait_for"], 1),
            ("plain await of the same coroutine", lc["await"], 1),
            ("create_task + run (LevelAttack._one)", lc["task"], 1),
        ]
    finally:
        loop.close()
        writer.close()
        buffered.close()
    return out


def main() -> int:
    """Print the table; exit 0."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", type=int, default=0, help="pin to this core")
    p.add_argument("--n", type=int, default=20000, help="calls per timing")
    args = p.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    print(f"{len(events_cached)} events, {len(body_bytes_cached)} bytes per response")
    print(f"{'piece':<44} {'us/call':>8} {'calls/req':>9} {'us/req':>8}")
    with tempfile.TemporaryDirectory(prefix="qpsweep-hot-") as tmp:
        for name, us, calls in rows(args.n, Path(tmp)):
            print(f"{name:<44} {us:8.2f} {calls:9d} {us * calls:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
