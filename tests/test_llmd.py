"""``qpsweep export DIR --format llm-d``: llm-d Benchmark Reports v0.2 of a real simulator
run, checked against the published schema (``llmd_schema``) and against qpsweep's own figures;
``export``'s CSV default and its bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from qpsweep.cli.main import main
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process
from llmd_schema import problems


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-level sweep of the simulator (its own process, as a real server would be)."""
    results = tmp_path_factory.mktemp("llmd") / "results"
    with sim_process(SimConfig(decode_ms=2.0)) as url:
        cmd = [sys.executable, "-m", "qpsweep", "--endpoint", url, "--model", "qpsweep-sim"]
        cmd += ["--qps", "4,8", "--duration", "1", "--max-tokens", "8", "--no-plot"]
        cmd += ["--dataset", str(REPO / "datasets" / "short_prompts.jsonl")]
        cmd += ["--results-dir", str(results), "--no-rerun"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1].removeprefix("Results: "))


def _export(capsys: pytest.CaptureFixture[str], *argv: str) -> list[Path]:
    assert main(["export", *argv]) == 0
    return [Path(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.slow
def test_one_valid_report_per_level_with_qpsweeps_figures(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _export(capsys, str(run_dir), "--format", "llm-d")
    levels = json.loads((run_dir / "benchmark_qps_results.json").read_text())
    assert [p.parent for p in paths] == [run_dir / "llm-d"] * len(levels) == [run_dir / "llm-d"] * 2
    assert [p.name for p in paths] == [
        "benchmark_report_v0.2,_qpsweep_level00_qps4.yaml",
        "benchmark_report_v0.2,_qpsweep_level01_qps8.yaml",
    ]
    reports = [yaml.safe_load(p.read_text()) for p in paths]
    uids = {r["run"]["uid"] for r in reports}
    assert len(uids) == 2 and len({r["run"]["eid"] for r in reports}) == 1
    for report, level in zip(reports, levels, strict=True):
        assert problems(report) == []
        assert report["version"] == "0.2"
        load = report["scenario"]["load"]["standardized"]
        assert load["rate_qps"] == level["qps_target"] and load["tool"] == "qpsweep"
        agg = report["results"]["request_performance"]["aggregate"]
        assert agg["requests"]["total"] == level["n_sent"] > 0
        assert agg["requests"]["failures"] == level["n_failed"]
        lat, thr = agg["latency"], agg["throughput"]
        near = {"rel": 1e-4, "abs": 1e-6}
        assert lat["time_to_first_token"]["p50"] == pytest.approx(level["ttft"]["p50"], **near)
        assert lat["time_to_first_token"]["units"] == "s"
        assert lat["request_latency"]["p95"] == pytest.approx(level["e2e_latency"]["p95"], **near)
        tpot_p50 = lat["time_per_output_token"]["p50"]
        assert tpot_p50 == pytest.approx(level["tpot_ms"]["p50"], abs=6e-4)  # JSON: 3 decimals
        assert lat["inter_token_latency"]["units"] == "ms/token"
        assert thr["request_rate"] == {"units": "queries/s", "mean": pytest.approx(
            level["achieved_qps"], rel=1e-3)}  # fmt: skip
        assert thr["output_token_rate"]["mean"] == pytest.approx(level["output_tok_per_s"], 1e-3)
        assert agg["requests"]["output_length"]["mean"] == pytest.approx(
            level["output_tokens_mean"]
        )


@pytest.mark.slow
def test_json_reports_hold_the_same_documents(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml_paths = _export(capsys, str(run_dir), "--format", "llm-d", "--output-dir", str(tmp_path))
    json_paths = _export(
        capsys, str(run_dir), "--format", "llm-d", "--json", "--output-dir", str(tmp_path)
    )
    assert [p.with_suffix(".yaml") for p in json_paths] == yaml_paths
    for y, j in zip(yaml_paths, json_paths, strict=True):
        assert json.loads(j.read_text()) == yaml.safe_load(y.read_text())


@pytest.mark.slow
def test_the_schema_check_refuses_what_the_schema_refuses(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _export(capsys, str(run_dir), "--format", "llm-d")[0]
    good = yaml.safe_load(path.read_text())

    def broken(change: Any) -> list[str]:
        report = copy.deepcopy(good)
        change(report)
        return problems(report)

    agg = ("results", "request_performance", "aggregate")

    def at(report: dict[str, Any], *keys: str) -> Any:
        for key in keys:
            report = report[key]
        return report

    assert broken(lambda r: at(r, "run").pop("uid")) == ["report.run.uid: required"]
    assert broken(lambda r: at(r, *agg, "latency", "request_latency").update(units="ms/token"))
    assert broken(lambda r: at(r, *agg, "requests").update(total=-1))
    assert broken(lambda r: at(r, *agg, "throughput").update(tokens={"units": "s", "mean": 1}))
    assert broken(lambda r: at(r, "scenario", "load", "standardized").update(rate_qps=0))


def test_export_writes_the_csvs_by_default_and_refuses_bad_input(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _export(capsys, str(run_dir), "--output-dir", str(tmp_path))
    assert paths == [tmp_path / "requests.csv", tmp_path / "levels.csv"]
    assert (tmp_path / "levels.csv").read_text().startswith("index,qps_target,state,")
    for argv, needle in (
        ([str(run_dir), "--json"], "--json: only with --format llm-d"),
        ([str(run_dir), "--format", "html"], "--format"),
        ([str(tmp_path / "nope"), "--format", "llm-d"], "no such directory"),
    ):
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err
