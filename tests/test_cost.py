"""``--cost-per-hour``: the price per 1M output tokens and per 1k requests, per level and at
the recommended QPS; the formulas on made-up levels, then end to end against the simulator."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_saturation import level

from qpsweep.analysis.cost import price, run_cost
from qpsweep.analysis.verdict import LevelState, Verdict
from qpsweep.cli.main import main
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process
from llmd_schema import problems

PRICE = 12.5


def _verdict(states: list[LevelState], recommended: float | None) -> Verdict:
    return Verdict(
        levels=tuple(states),
        saturation_qps=None,
        saturation_signals=(),
        knee=None,
        knees=(),
        max_sustainable_qps=None if recommended is None else recommended / 0.75,
        recommended_qps=recommended,
        headroom=0.75,
        reason="",
        suggestion=None,
    )


def test_price_formulas() -> None:
    cost = price(PRICE, qps=2.0, output_tok_per_s=100.0)
    assert cost.per_1m_output_tokens_usd == pytest.approx(PRICE / (100 * 3600) * 1e6)  # 34.72
    assert cost.per_1k_requests_usd == pytest.approx(PRICE / (2 * 3600) * 1000)  # 1.736
    nothing = price(PRICE, qps=0.0, output_tok_per_s=0.0)
    assert nothing.per_1m_output_tokens_usd is None and nothing.per_1k_requests_usd is None


def test_recommended_is_priced_at_interpolated_tokens_per_request() -> None:
    def lv(index: int, qps: float, tokens: float, state: str = "ok") -> Any:
        s = dataclasses.replace(
            level(index, qps, 0.1, 1.0), output_tokens_mean=tokens, output_tok_per_s=qps * tokens
        )
        return s, LevelState(index, qps, qps, state)

    made = [lv(0, 2.0, 100.0), lv(1, 6.0, 200.0), lv(2, 9.0, 999.0, "client_limited")]
    summaries, states = [s for s, _ in made], [st for _, st in made]
    cost = run_cost(summaries, _verdict(states, 4.0), PRICE)
    assert cost is not None and cost.recommended is not None
    # halfway between 2 and 6 QPS: 150 tokens per request; the client-limited level is ignored
    assert cost.recommended.output_tok_per_s == pytest.approx(4.0 * 150.0)
    assert cost.recommended.per_1m_output_tokens_usd == pytest.approx(PRICE / (600 * 3600) * 1e6)
    assert cost.recommended.per_1k_requests_usd == pytest.approx(PRICE / (4 * 3600) * 1000)
    per_level = cost.level(1)
    assert per_level is not None
    assert per_level.per_1m_output_tokens_usd == pytest.approx(PRICE / (1200 * 3600) * 1e6)
    below = run_cost(summaries, _verdict(states, 1.0), PRICE)
    assert below is not None and below.recommended is not None
    assert below.recommended.output_tok_per_s == pytest.approx(100.0)  # clamped to 2 QPS's
    none = run_cost(summaries, _verdict(states, None), PRICE)
    assert none is not None and none.recommended is None
    assert run_cost(summaries, _verdict(states, 4.0), None) is None


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "abc"])
def test_a_bad_price_flag_is_one_line_and_exit_2(qpsweep, value: str) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", f"--cost-per-hour={value}")
    assert run.code == 2 and run.run_dir is None
    assert run.err.count("\n") == 1 and "--cost-per-hour" in run.err and value in run.err


def test_a_bad_price_elsewhere_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "targets.yaml"
    config.write_text("targets:\n  t:\n    base_url: http://127.0.0.1:9\n    cost_per_hour: -3\n")
    argv = ["--config", str(config), "--target", "t", "--model", "m", "--dataset", "x.json"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{config}:4: target 't': cost_per_hour" in err
    for argv in (
        ["report", str(tmp_path), "--cost-per-hour", "-2"],
        ["diff", str(tmp_path), str(tmp_path), "--cost-per-hour", "inf"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--cost-per-hour" in err


# -- end to end: two models of one simulator, priced in targets.yaml ------------------------

SLOW = SimConfig(max_num_seqs=2, decode_ms=10.0, decode_ms_per_seq=0.0, prefill_ms_per_token=0.0)
TOKENS = 16  # the simulator's capacity at 16: 1000 / (16 x 10 / 2) = 12.5 req/s


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An ``--all-models`` sweep of two model names at 4 and 16 QPS (5 s each: 3 s left the
    verdict without a recommended QPS on a loaded machine), priced by its target."""
    tmp = tmp_path_factory.mktemp("priced")
    with sim_process(SLOW) as url:
        config = tmp / "targets.yaml"
        config.write_text(
            f"targets:\n  sim2:\n    base_url: {url}\n    model: a\n"
            f"    supported_models: [a, b]\n    cost_per_hour: {PRICE}\n"
        )
        cmd = [sys.executable, "-m", "qpsweep", "--config", str(config), "--target", "sim2"]
        cmd += ["--all-models", "--qps", "4,16", "--duration", "5", "--max-tokens", str(TOKENS)]
        cmd += ["--dataset", str(REPO / "datasets" / "short_prompts.jsonl"), "--no-plot"]
        cmd += ["--results-dir", str(tmp / "results")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    parent = Path(done.stdout.strip().splitlines()[-1].removeprefix("Results: "))
    return parent, done.stdout


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_each_level_and_the_recommended_qps_are_priced(priced: tuple[Path, str]) -> None:
    parent, out = priced
    judged = [parent / m for m in "ab" if _json(parent / m / "saturation.json")["recommended_qps"]]
    assert judged, "neither model's sweep found a recommended QPS"
    run = judged[0]  # a stall of a loaded machine can leave one without (client_limited)
    assert _json(run / "metadata.json")["cost_per_hour"] == PRICE  # from targets.yaml
    assert f"Cost at ${PRICE:g}/hour (--cost-per-hour)" in out
    for entry in _json(run / "benchmark_qps_results.json"):
        tok_s, qps = entry["output_tok_per_s"], entry["achieved_qps"]
        want = PRICE / (tok_s * 3600) * 1e6
        assert entry["cost_per_1m_output_tokens_usd"] == pytest.approx(want, rel=1e-3)
        assert entry["cost_per_1k_requests_usd"] == pytest.approx(PRICE / qps / 3.6, rel=1e-3)
    verdict = _json(run / "saturation.json")
    rec = verdict["recommended_qps"]
    at = verdict["cost_at_recommended"]
    assert verdict["cost_per_hour_usd"] == PRICE and at["qps"] == pytest.approx(rec)
    # R x the output tokens per request interpolated between the levels' means
    judged = sorted(
        (e["actual_qps"], e["output_tokens_mean"])
        for e in _json(run / "benchmark_qps_results.json")
        if e["state"] != "client_limited"
    )
    tokens = float(np.interp(rec, [q for q, _ in judged], [t for _, t in judged]))
    assert tokens > 1
    assert at["output_tok_per_s"] == pytest.approx(rec * tokens, rel=1e-3)
    assert at["cost_per_1m_output_tokens_usd"] == pytest.approx(
        PRICE / (rec * tokens * 3600) * 1e6, rel=1e-3
    )
    assert at["cost_per_1k_requests_usd"] == pytest.approx(PRICE / (rec * 3600) * 1e3, rel=1e-3)
    text = (run / "report.txt").read_text()
    found = re.search(r"cost at recommended:  \$([0-9.e+-]+) per 1M output tokens", text)
    assert found, text  # the table rounds to 4 digits
    assert float(found[1]) == pytest.approx(at["cost_per_1m_output_tokens_usd"], rel=1e-3)
    page = (run / "report.html").read_text()
    assert 'id="cost-heading"' in page and f"${found[1]}<" in page


@pytest.mark.slow
def test_all_models_comparison_has_a_cost_column(priced: tuple[Path, str]) -> None:
    parent, out = priced
    models = _json(parent / "models.json")["models"]
    assert [m["model"] for m in models] == ["a", "b"]
    for m in models:
        sat = _json(parent / m["dir"] / "saturation.json")["cost_at_recommended"]
        want = None if sat is None else sat["cost_per_1m_output_tokens_usd"]
        assert m["cost_per_1m_output_tokens_usd"] == want
        assert all("cost_per_1m_output_tokens_usd" in lv for lv in m["levels"])
    assert "$/1M out @rec" in out and "$/1M out @rec" in (parent / "report.txt").read_text()


@pytest.mark.slow
def test_diff_and_report_show_and_change_the_price(
    priced: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent, _ = priced
    a, b = parent / "a", parent / "b"
    argv = ["diff", str(a), str(b), "--results-dir", str(tmp_path), "--no-plot"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "$/1M out" in out and "untested" in out and "cost_1m_out_usd@recommended" in out
    diff = _json(Path(out.strip().splitlines()[-1].removeprefix("Diff: ")) / "diff.json")
    assert "cost_1k_req_usd@recommended" in diff["verdict"]
    b = Path(shutil.copytree(b, tmp_path / "b"))  # the other tests read the original
    before = _json(b / "benchmark_qps_results.json")[0]
    assert main(["report", str(b), "--cost-per-hour", str(2 * PRICE)]) == 0
    capsys.readouterr()
    after = _json(b / "benchmark_qps_results.json")[0]
    assert _json(b / "metadata.json")["cost_per_hour"] == 2 * PRICE
    for key in ("cost_per_1m_output_tokens_usd", "cost_per_1k_requests_usd"):
        assert after[key] == pytest.approx(2 * before[key], rel=1e-4)


@pytest.mark.slow
def test_an_all_models_directory_exports_model_by_model(
    priced: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent, _ = priced
    argv = ["export", str(parent), "--format", "llm-d", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    paths = [Path(line) for line in capsys.readouterr().out.splitlines()]
    levels = sum(len(m["levels"]) for m in _json(parent / "models.json")["models"])
    assert sorted({p.parent.name for p in paths}) == ["a", "b"] and len(paths) == levels >= 4
    for path in paths:
        report = yaml.safe_load(path.read_text())
        assert problems(report) == []
        assert report["scenario"]["stack"][0]["standardized"]["model"]["name"] == path.parent.name
