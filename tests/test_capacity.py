"""The verdict against servers of known capacity (``capacity_servers``), end to end."""

from __future__ import annotations

import pytest
from capacity_servers import capacity_server, erlang_b, rate_at_blocking

from conftest import REPO


@pytest.mark.parametrize(
    ("servers", "erlangs", "blocking"),
    [(1, 1.0, 0.5), (2, 1.0, 0.2), (8, 4.0, 0.0304), (10, 5.0, 0.0184)],
)
def test_erlang_b(servers: int, erlangs: float, blocking: float) -> None:
    assert erlang_b(servers, erlangs) == pytest.approx(blocking, abs=5e-5)


def test_rate_at_blocking_inverts_erlang_b() -> None:
    rate = rate_at_blocking(8, 0.5, 0.05)
    assert erlang_b(8, rate * 0.5) == pytest.approx(0.05, rel=1e-6)
    assert 9.0 < rate < 9.3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_fifo_server_of_known_capacity(qpsweep_process) -> None:
    """4 slots x 0.25 s = 16/s: saturation within 10%, nothing saturated below 0.9x, the
    recommendation between 0.6x and 0.8x of the truth."""
    truth = 16.0
    levels = ",".join(f"{truth * f:g}" for f in (0.5, 0.75, 0.875, 1.25, 1.5, 2.0))
    with capacity_server("fifo", 4, 0.25) as base:
        run = qpsweep_process(
            "--endpoint", f"{base}/v1", "--model", "m", "--max-tokens", "8", "--qps", levels,
            "--duration", "8", "--no-check", "--no-plot", "--seed", "3",
            dataset=REPO / "datasets" / "short_prompts.jsonl",
        )  # fmt: skip
    seen = f"qpsweep printed:\n{run.out}\n{run.err}"
    assert run.code == 0, seen
    verdict = run.json("saturation.json")
    assert verdict["saturation_qps"] == pytest.approx(truth, rel=0.10), seen
    assert verdict["capacity_qps"] == pytest.approx(truth, rel=0.10), seen
    low, high = verdict["saturation_interval"]
    assert low < high
    saturated = [lv["offered_qps"] for lv in verdict["levels"] if lv["state"] == "saturated"]
    assert saturated and min(saturated) >= 0.9 * truth, seen
    assert verdict["max_sustainable_qps"] < truth, seen
    assert 0.6 * truth <= verdict["recommended_qps"] <= 0.8 * truth, seen
