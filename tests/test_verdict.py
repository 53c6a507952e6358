"""The verdict end to end against simulators of known capacity, fixed list and --qps auto.

The simulator runs as ``qpsweep sim`` in its own process, as a real server would: in-process it
would share the GIL with the load generator and delay sends (see ``appserver``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qpsweep.sim.server import SimConfig, capacity_rps

from conftest import REPO, sim_process

SETTINGS = {
    # 4 slots, 20 steps of 5 ms: 40 req/s
    "4-slots": (
        SimConfig(max_num_seqs=4, decode_ms=5.0, decode_ms_per_seq=0.0, prefill_ms_per_token=0.0),
        20,
    ),
    # 8 slots, 16 steps of 4 + 0.5 x 8 ms: 62.5 req/s
    "8-slots": (
        SimConfig(max_num_seqs=8, decode_ms=4.0, decode_ms_per_seq=0.5, prefill_ms_per_token=0.0),
        16,
    ),
}


DATASET = REPO / "datasets" / "short_prompts.jsonl"


def truth_rps(config: SimConfig, tokens: int) -> float:
    """The simulator's capacity for this dataset: each prompt asks its own ``max_tokens``
    (``--max-tokens`` only where it has none), so the saturated engine spends
    ``mean(L_i) * d_ms / B`` per request (``capacity_rps``'s formula for the mean length)."""
    asked = [json.loads(line).get("max_tokens") for line in DATASET.read_text().splitlines()]
    mean_l = sum(a or tokens for a in asked) / len(asked)
    return capacity_rps(config, tokens) * tokens / mean_l


def _states_by_qps(verdict: dict[str, Any]) -> list[str]:
    """The state of the last level run at each target, in target order."""
    last_run = {lv["qps_target"]: lv for lv in verdict["levels"]}
    return [last_run[q]["state"] for q in sorted(last_run)]


def _client_limited_where_judged(verdict: dict[str, Any]) -> bool:
    """A client-limited level up to the first saturated one (or anywhere, without one)."""
    states = _states_by_qps(verdict)
    end = states.index("saturated") + 1 if "saturated" in states else len(states)
    return "client_limited" in states[:end]


@pytest.mark.slow
@pytest.mark.timeout(700)
@pytest.mark.parametrize("mode", ["fixed", "auto"])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_saturation_found_within_15_percent_of_capacity(
    qpsweep_process, setting: str, mode: str
) -> None:
    config, tokens = SETTINGS[setting]
    capacity = truth_rps(config, tokens)  # 34.6 and 50.4 req/s
    if mode == "fixed":
        levels = ["--qps", ",".join(f"{capacity * f:.3g}" for f in (0.4, 0.7, 0.95, 1.1, 1.25))]
    else:
        levels = ["--qps", "auto", "--start-qps", f"{capacity / 8:.3g}", "--budget", "300"]
    argv = ["--model", "sim", "--max-tokens", str(tokens), "--duration", "8", *levels]
    # A run whose judged levels were client-limited (a stall of the shared VM that outlasted
    # the product's own rerun) cannot judge the server, as it says: such a run is made once
    # more, in a fresh simulator, and the second one must hold.
    for _attempt in range(2):
        with sim_process(config) as url:
            run = qpsweep_process("--endpoint", url, *argv, dataset=DATASET)
        if run.code != 0 or not _client_limited_where_judged(run.json("saturation.json")):
            break
    seen = f"qpsweep printed:\n{run.out}\n{run.err}"
    assert run.code == 0, seen
    verdict = run.json("saturation.json")
    # No level the verdict rests on (up to the first saturated one) may be client-limited.  Far
    # past saturation the requests in flight pile up and, once in a full-suite run on a busy
    # 2-core VM, the generator fell behind there (send lag p95 24 ms at 1.4x); the verdict then
    # leaves that level out, which is what a user sees too.  --qps auto repeats such a level
    # once; the repeat is the one that counts.
    states = _states_by_qps(verdict)
    assert "saturated" in states, seen
    first_saturated = states.index("saturated")
    assert "client_limited" not in states[: first_saturated + 1], seen
    # The goal: within 10% of the truth (the dataset's own output lengths; the
    # formula for --max-tokens alone, 40 and 62.5, was off by the prompts that ask more).
    assert verdict["saturation_qps"] == pytest.approx(capacity, rel=0.10), seen
    top = max(run.json("benchmark_qps_results.json"), key=lambda lv: lv["actual_qps"])
    assert verdict["capacity_qps"] == pytest.approx(top["achieved_qps"], rel=0.10), seen
    assert set(verdict["saturation_signals"]) & {"above_saturation", "queue_growth"}
    low, high = verdict["saturation_interval"]
    assert low <= verdict["saturation_qps"] <= high
    assert 0 < verdict["recommended_qps"] < verdict["saturation_qps"]
    assert "SATURATION VERDICT" in run.out and "recommended QPS:" in run.out
    if mode == "auto":
        meta = run.json("metadata.json")
        assert meta["adaptive"]["precision"] == 0.1 and len(meta["qps_levels"]) >= 5
        targets = sorted(meta["qps_levels"])
        assert targets[0] == pytest.approx(capacity / 8, rel=0.01)


@pytest.mark.slow
def test_sweep_of_the_simulator_finds_its_capacity(qpsweep_process) -> None:
    """Offered at 2x capacity, completions per second settle at the formula's value (15%)."""
    config, tokens = SETTINGS["4-slots"]
    capacity = capacity_rps(config, tokens)
    with sim_process(config) as url:
        run = qpsweep_process(
            "--endpoint",
            url,
            "--model",
            "sim",
            "--max-tokens",
            str(tokens),
            "--qps",
            f"{capacity / 4:g},{capacity * 2:g}",
            "--duration",
            "4",
        )
    assert run.code == 0, run.out + run.err
    last = {lv["qps_target"]: lv for lv in run.json("benchmark_qps_results.json")}
    below, above = (last[q] for q in sorted(last))  # a rerun level: its last run counts
    assert below["success_rate"] == above["success_rate"] == 100.0
    assert above["achieved_qps"] == pytest.approx(capacity, rel=0.15)
    assert above["ttft"]["p50"] > 5 * below["ttft"]["p50"]  # the queue builds past the knee
    assert {r["token_counted_by"] for r in run.records()} == {"usage"}
