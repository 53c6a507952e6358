"""A server that closes idle keep-alive connections: the client's race is not the server's failure.

Proxies close a keep-alive connection that stays idle for a while after its response, with a
FIN or an RST.  A request written on such a connection just before the close arrives meets the
close before any byte of its response: the request is written once more on a new connection
(``resent`` in its record) instead of being counted as a ``connection`` failure.  The test
server makes that race certain rather than a matter of microseconds: it closes every
connection 45 ms after its first response, whether or not a next request arrived meanwhile
(that one is never answered).  A connection closed before answering its *first* request is
the server's failure and stays ``connection``, without a second try.  The same race is run
through the command line too: ``python -m qpsweep`` against that server (in a thread of the
test process), as a user would meet it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter

import pytest

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender
from qpsweep.load.attack import LevelAttack
from qpsweep.records.record import RequestRecord

from conftest import DATASET
from raw_server import raw_server, read_request

BODY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
IDLE_CLOSE_S = 0.045
N_REQUESTS = 20
GAP_S = 0.03  # under IDLE_CLOSE_S: most requests are written on a connection kept alive


def _close(writer: asyncio.StreamWriter, reset: bool) -> None:
    """Close the connection with a FIN, or with an RST (``SO_LINGER`` 0, then abort)."""
    if reset:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


def _idle_closer(reset: bool):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(RESPONSE)
        await asyncio.sleep(IDLE_CLOSE_S)  # a request arriving meanwhile is read, not answered
        _close(writer, reset)

    return handle


def _fresh_closer(reset: bool):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        _close(writer, reset)

    return handle


async def _level(handle, n: int) -> tuple[list[RequestRecord], int]:  # type: ignore[no-untyped-def]
    """``n`` requests at a constant ``GAP_S`` through one level; the records and the number
    of connections the server accepted."""
    records: list[RequestRecord] = []
    prompts = [Prompt(id=k, messages=(("user", f"q{k}"),)) for k in range(n)]
    offsets_s = [k * GAP_S for k in range(n)]
    async with raw_server(handle) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=5.0)) as sender:
            attack = LevelAttack(0, 1 / GAP_S, offsets_s, prompts, sender, records.append)
            await attack.schedule(perf_counter())
            await attack.drain(10.0)
        n_accepted = server.n_accepted
    assert len(records) == n
    return sorted(records, key=lambda r: r.seq), n_accepted


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_request_on_a_connection_closed_while_idle_is_resent_not_failed(reset: bool) -> None:
    records, n_accepted = asyncio.run(_level(_idle_closer(reset), N_REQUESTS))
    assert [r.error_kind for r in records] == [None] * N_REQUESTS, [r.error for r in records]
    resent = [r for r in records if r.resent]
    assert resent  # the rate made requests go out on kept-alive connections
    assert {r.resent for r in records} <= {0, 1} and {r.attempts for r in records} == {1}
    assert n_accepted == N_REQUESTS  # the server answers once per connection
    for r in resent:  # the send time stays the first write's: the wait is in the latency
        # (not timed tighter: on a busy VM the send lags the schedule by tens of ms, and the
        # idle close then comes right after the first write)
        assert r.first_token_s is not None and r.sent_s < r.first_token_s
        assert 0 <= r.sent_s - r.scheduled_s < 0.5
        assert '"resent":1' in r.to_json()
    assert not any('"resent"' in r.to_json() for r in records if not r.resent)


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_fresh_connection_closed_before_the_answer_is_a_connection_failure(
    reset: bool,
) -> None:
    records, n_accepted = asyncio.run(_level(_fresh_closer(reset), 4))
    assert [r.error_kind for r in records] == ["connection"] * 4
    assert [r.resent for r in records] == [0] * 4
    assert n_accepted == 4  # never tried again


@contextlib.contextmanager
def _served(handle) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``handle`` as a server on 127.0.0.1 in a thread; yields its endpoint URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await handle(reader, writer)

    start = asyncio.start_server(serve, "127.0.0.1", 0)
    server = asyncio.run_coroutine_threadsafe(start, loop).result(10)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.slow
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_the_cli_counts_no_connection_failure_against_an_idle_closing_server(
    reset: bool, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    with _served(_idle_closer(reset)) as endpoint:
        args = ["--endpoint", endpoint, "--model", "m", "--qps", f"{1 / GAP_S:g}"]
        args += ["--duration", "1", "--arrival", "constant", "--dataset", str(DATASET)]
        args += ["--results-dir", str(results), "--no-check", "--no-plot", "--no-rerun"]
        done = subprocess.run(
            [sys.executable, "-m", "qpsweep", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "connection" not in done.stdout + done.stderr
    (run_dir,) = results.iterdir()
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(records) >= 30
    assert [r["error_kind"] for r in records] == [None] * len(records)
    assert any(r.get("resent") == 1 for r in records)  # recorded, not counted as a failure
    (level,) = json.loads((run_dir / "benchmark_qps_results.json").read_text())
    assert level["n_ok"] == level["n_sent"] == len(records), level
