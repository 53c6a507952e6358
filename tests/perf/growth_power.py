"""How often the queue growth test calls a level saturated, by offered load: a simulation.

``python tests/perf/growth_power.py [--runs 400] [--seed 1]``

Each run is one level of a FIFO queue with ``c`` slots, started empty: Poisson arrivals at
``factor x c / S`` for ``W`` seconds, service times fixed (``S``), exponential or lognormal
(CV 1.3); a request's first token comes when its service starts (it streams while it holds
a slot, as a model server's do).  The level's records go through qpsweep's own
``steady_counts`` (with the true median service time as ``service_s``) and ``growth_z``,
against the Skellam bound
``(A - F) / sqrt(A + F)`` on the same counts; a cell prints the share of runs each test calls
saturated at 99%.  Below 1.0x every call is a false positive (nominal 1%); above, the share
is the test's power.  No network, no server: the queueing is simulated, the statistics are
qpsweep's.
"""

from __future__ import annotations

import argparse
import heapq
from typing import Any

import numpy as np

from qpsweep.analysis.estimate import Window, growth_z, one_sided_z
from qpsweep.analysis.summary import steady_counts
from qpsweep.records.record import RequestRecord
from qpsweep.records.table import RecordTable

FACTORS = (0.8, 0.9, 0.95, 1.0, 1.1, 1.25, 1.5)
SERVERS = ((4, 1.0, 15.0), (8, 0.5, 8.0), (32, 0.5, 8.0), (1, 0.25, 10.0))


def fifo(
    rate: float, slots: int, service: np.ndarray, window_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sends, service starts and ends of one level of a FIFO queue with ``slots``
    servers."""
    sent = np.sort(rng.uniform(0.0, window_s, rng.poisson(rate * window_s)))
    free, start, done = [0.0] * slots, np.empty(sent.size), np.empty(sent.size)
    for i, at in enumerate(sent):
        start[i] = max(heapq.heappop(free), at)
        done[i] = start[i] + service[i % service.size]
        heapq.heappush(free, float(done[i]))
    return sent, start, done


def scores(
    sent: np.ndarray, start: np.ndarray, done: np.ndarray, window_s: float, service_s: float
) -> tuple[float, float | None]:
    """``(skellam, growth_z)`` of one simulated level."""
    table = RecordTable.from_records(
        RequestRecord(0, 1.0, i, 0, float(s), float(s), float(d), first_token_s=float(f))
        for i, (s, f, d) in enumerate(zip(sent, start, done, strict=True))
    )
    c: dict[str, Any] = steady_counts(table, window_s, service_s)
    w = Window(
        0, sent.size / window_s, c["steady_s"], c["steady_sent"], c["steady_finished"],
        c["steady_ok"], None, None, sent.size, 0, 0.0, 0, 0, 10,
        c["steady_finish_se"], c["steady_batches"], c["sent_rate_se"], 0.0,
        c["steady_floor_se"],
    )  # fmt: skip
    total = w.sent + w.finished
    return float((w.sent - w.finished) / np.sqrt(total)), growth_z(w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    crit = one_sided_z(0.99)
    print("service  slots x S, W      " + "".join(f"{f:>13g}x" for f in FACTORS))
    for kind in ("fixed", "exp", "lognormal"):
        for slots, service_s, window_s in SERVERS:
            cells = []
            for factor in FACTORS:
                hits = np.zeros(2)
                for _ in range(args.runs):
                    n = 4096
                    service = {
                        "fixed": np.full(n, service_s),
                        "exp": rng.exponential(service_s, n),
                        "lognormal": rng.lognormal(np.log(service_s) - 0.5, 1.0, n),
                    }[kind]
                    level = fifo(factor * slots / service_s, slots, service, window_s, rng)
                    calls = scores(*level, window_s, float(np.median(service)))
                    hits += [z is not None and z > crit for z in calls]
                cells.append(f"{hits[0] / args.runs:6.3f}/{hits[1] / args.runs:6.3f}")
            head = f"{kind:<9}{slots:>3} x {service_s:g} s, {window_s:g} s"
            print(f"{head:<22}" + " ".join(cells))
    print(f"cells: Skellam / growth_z, share of {args.runs} runs over {crit:.3f}")


if __name__ == "__main__":
    main()
