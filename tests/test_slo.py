"""SLOs: parsing, per-level SLO met and goodput, the verdict on them, and CSV exports."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qpsweep.config.slo import Slo, parse_slos, request_meets
from qpsweep.errors import ConfigError
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process


def test_presets_and_units() -> None:
    assert parse_slos("standard") == (Slo("ttft", 95.0, 2.0), Slo("tpot", 95.0, 0.1))
    assert parse_slos("interactive") == (Slo("ttft", 95.0, 0.5), Slo("tpot", 95.0, 0.03))
    assert parse_slos("e2e_p99=1.5s, itl_p50=20ms") == (
        Slo("e2e", 99.0, 1.5),
        Slo("itl", 50.0, 0.02),
    )


@pytest.mark.parametrize("spec", ["ttft_p95=500", "ttft_p42=1s", "latency_p95=1s", "fast", ""])
def test_bad_slo_is_one_line_naming_the_flag(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"^--slo: ") as caught:
        parse_slos(spec)
    assert "\n" not in str(caught.value)


def test_a_request_meets_every_slo_or_not() -> None:
    slos = parse_slos("ttft_p95=500ms,tpot_p95=30ms")
    assert request_meets(slos, 0.2, 1.0, 0.02)
    assert not request_meets(slos, 0.6, 1.0, 0.02)
    assert not request_meets(slos, 0.2, 1.0, 0.05)
    assert not request_meets(slos, None, 1.0, 0.02)  # no first token: TTFT unknown


@pytest.mark.slow
def test_slo_drives_the_verdict_and_goodput(qpsweep, tmp_path: Path) -> None:
    # 4 slots x 20 steps of 5 ms: 40 req/s; at 10 QPS TTFT is a few ms, at 50 QPS a queue builds
    config = SimConfig(max_num_seqs=4, decode_ms=5.0, decode_ms_per_seq=0.0, prefill_ms_per_token=0)
    with sim_process(config) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "sim", "--max-tokens", "20", "--qps", "10,50",
            "--duration", "3", "--slo", "ttft_p95=150ms", "--csv", "--max-error-rate", "0.5",
            dataset=REPO / "datasets" / "short_prompts.jsonl",
        )  # fmt: skip
    assert run.code == 0, run.err
    low, high = run.json("benchmark_qps_results.json")
    assert low["slo_met"] is True and high["slo_met"] is False
    assert low["goodput_rps"] == pytest.approx(low["achieved_qps"], rel=0.05)
    assert high["goodput_rps"] < 0.8 * high["achieved_qps"]
    verdict = run.json("saturation.json")
    assert verdict["max_sustainable_qps"] == pytest.approx(low["actual_qps"], rel=0.01)
    assert "meeting the SLO (ttft_p95 <= 150 ms)" in verdict["reason"]
    assert "SLO: ttft_p95 <= 150 ms" in run.out
    thresholds = run.json("metadata.json")["thresholds"]
    assert thresholds["slos"] == [{"metric": "ttft", "percentile": 95.0, "limit_s": 0.15}]
    assert run.run_dir is not None
    with (run.run_dir / "levels.csv").open() as f:
        assert [row["qps_target"] for row in csv.DictReader(f)] == ["10.0", "50.0"]
    summary = run.run_dir.parent / "benchmark_summary.csv"
    with summary.open() as f:
        assert [row["run_dir"] for row in csv.DictReader(f)] == [run.run_dir.name] * 2
    assert len((run.run_dir / "requests.csv").read_text().splitlines()) == len(run.records()) + 1
