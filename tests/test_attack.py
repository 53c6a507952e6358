"""``LevelAttack`` against a real server on 127.0.0.1 that never answers: what a cancelled
level leaves behind.  Requests are sent in the schedule's own step, so a request whose task
is cancelled before it first ran was still sent, and must still be recorded."""

from __future__ import annotations

import asyncio
from time import perf_counter

from qpsweep.datasets.prompts import Prompt
from qpsweep.http.client import ClientSettings, Sender
from qpsweep.load.attack import LevelAttack
from qpsweep.records.record import RequestRecord

from raw_server import raw_server, read_request

N_REQUESTS = 8


async def _cancel_right_after_the_last_send() -> tuple[int, int, list[RequestRecord]]:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # read every request, answer none
            await read_request(reader)

    records: list[RequestRecord] = []
    prompts = [Prompt(id=k, messages=(("user", f"q{k}"),)) for k in range(N_REQUESTS)]
    async with raw_server(silent) as server:
        with Sender(ClientSettings(url=server.url, model="m", timeout_s=5.0)) as sender:
            attack = LevelAttack(0, 10.0, [0.0] * N_REQUESTS, prompts, sender, records.append)
            await attack.schedule(perf_counter())
            # the last request's task has not run yet: it is cancelled before it starts
            await attack.cancel_rest()
    return attack.n_sent, len(attack.in_flight), records


def test_every_request_sent_is_recorded_when_the_level_is_cancelled() -> None:
    n_sent, n_left, records = asyncio.run(_cancel_right_after_the_last_send())
    assert n_sent == N_REQUESTS and n_left == 0
    assert sorted(r.seq for r in records) == list(range(N_REQUESTS))
    assert {r.error_kind for r in records} == {"interrupted"}
