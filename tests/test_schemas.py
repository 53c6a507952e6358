"""qpsweep's own file formats as JSON Schemas (``qpsweep/records/schemas/``): every file a run
writes validates, and ``report``/``diff`` read version 1 (with or without ``schema_version``)
and refuse any other version with one line naming the file.  Validation uses the
``jsonschema`` package (a test extra, not a dependency of qpsweep)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.shards import Shard
from qpsweep.config.slo import Slo
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.records.metadata import ClockInfo, LevelEntry, Warmup, new_metadata
from qpsweep.records.run_files import SCHEMA_VERSION, SCHEMAS_DIR, RunFiles
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process
from schema_check import SCHEMAS, problems, validator

_problems = problems
_validator = validator


def test_every_schema_is_a_valid_draft_2020_12_schema_and_is_shipped() -> None:
    assert sorted(p.name for p in SCHEMAS_DIR.glob("*.json")) == sorted(SCHEMAS.values())
    for name in SCHEMAS.values():
        _validator(name)
    assert "records/schemas/*.json" in (REPO / "pyproject.toml").read_text()


def test_a_metadata_with_every_optional_part_validates() -> None:
    scenario = Scenario(
        qps=(1.0, 2.5),
        thresholds=Thresholds(slos=(Slo("ttft", 95.0, 0.5),)),
        auto=AutoPlan(start_qps=2.0),
        shard=Shard(1, 4, 1.7e9),
    )
    target = Target("http://127.0.0.1:9/v1", "m", headers=(("X-Api-Key", "k"),), cost_per_hour=2.5)
    meta = new_metadata(target, scenario, "d.jsonl", "ab" * 32, 7, ["qpsweep"], RunFiles())
    meta = replace(
        meta.with_level(LevelEntry(0, 1.0, 10.0, 9, 1.7e9, 9.8, 9, True, (5, 4))),
        clock=ClockInfo(0.01, 0.5, "http://127.0.0.1:9/"),
        warmup=Warmup(3, 3, 0.2),
        metrics_gauges=("vllm:num_requests_running",),
        merged_from=({"dir": "a", "shard": "1/4", "status": "complete", "records": 3},),
        notes={"simulator": {"max_num_seqs": 4}},
    )
    data = meta.to_json()
    assert data["schema_version"] == SCHEMA_VERSION
    assert _problems("metadata.schema.json", data) == []
    assert _problems("metadata.schema.json", data | {"arrival": "bursty"})  # it can fail


def test_a_record_with_an_unknown_key_or_kind_fails_its_schema() -> None:
    line = {
        "level": 0,
        "level_qps": 1.0,
        "seq": 0,
        "prompt_id": 3,
        "scheduled_s": 0.1,
        "sent_s": 0.1,
        "first_token_s": None,
        "done_s": 0.2,
        "status": 500,
        "error_kind": "http_5xx",
        "error": "boom",
        "input_tokens": None,
        "output_tokens": 0,
        "token_counted_by": None,
        "chunk_s": [],
    }
    assert _problems("request_record.schema.json", line) == []
    assert _problems("request_record.schema.json", line | {"error_kind": "http_418"})
    assert _problems("request_record.schema.json", line | {"extra": 1})
    assert _problems("request_record.schema.json", line | {"attempts": 2})  # keys come together


@pytest.mark.slow
def test_every_file_a_run_writes_validates(qpsweep: Any) -> None:
    # 503s past two requests in the system (retried), 500s (not retried), short answers
    config = SimConfig(fail_rate=0.2, reject_over=2, max_output_tokens=24, seed=3)
    with sim_process(config) as url:
        run = qpsweep(
            "--endpoint", url, "--model", "qpsweep-sim", "--qps", "4,8", "--duration", "1",
            "--retries", "1", "--slo", "standard", "--metrics-url", f"{url}/metrics",
            "--max-error-rate", "0.9", "--cost-per-hour", "12.5",
        )  # fmt: skip
    assert run.code == 0, run.err
    assert run.run_dir is not None
    for name, schema in SCHEMAS.items():
        path = run.run_dir / name
        if name == "requests.jsonl":
            lines = path.read_text().splitlines()
            items = [json.loads(line) for line in lines]
            assert any("attempts" in r for r in items)  # the retry keys were exercised
            assert any(r["error_kind"] for r in items)
            for record in items:
                assert _problems(schema, record) == [], record
            continue
        data = json.loads(path.read_text())
        assert _problems(schema, data) == [], name
    assert run.json("metadata.json")["schema_version"] == SCHEMA_VERSION
    assert run.json("saturation.json")["schema_version"] == SCHEMA_VERSION
    results = run.json("benchmark_qps_results.json")
    assert [e["schema_version"] for e in results] == [SCHEMA_VERSION] * 2
    assert all("server_metrics" in e for e in results)
    assert any(e["cost_per_1m_output_tokens_usd"] is not None for e in results)  # priced
    assert run.json("saturation.json")["cost_per_hour_usd"] == 12.5

    # A version 1 run written before schema_version existed is read as version 1.
    old = run.run_dir.parent / "old"
    shutil.copytree(run.run_dir, old)
    data = json.loads((old / "metadata.json").read_text())
    del data["schema_version"]
    (old / "metadata.json").write_text(json.dumps(data))
    again = qpsweep("report", str(old))
    assert again.code == 0, again.err
    assert json.loads((old / "saturation.json").read_text())["schema_version"] == 1
    diff = qpsweep("diff", str(run.run_dir), str(old), "--no-plot", dataset=None)
    assert diff.code == 0, diff.err


def _run_dir(path: Path, version: Any) -> Path:
    """A directory whose metadata.json says ``schema_version: version`` (and no more)."""
    path.mkdir()
    fields = {"timestamp": "2026-12-08T00:00:00", "endpoint": "http://127.0.0.1:9", "model": "m"}
    data = fields | {"dataset": "d.json", "qps_levels": [1], "schema_version": version}
    (path / "metadata.json").write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, "schema_version 2 is newer than this qpsweep"),
        (99, "schema_version 99 is newer than this qpsweep"),
        ("1", "schema_version '1' is not a qpsweep schema version"),
        (0, "schema_version 0 is not a qpsweep schema version"),
        (True, "schema_version True is not a qpsweep schema version"),
    ],
)
def test_report_and_diff_refuse_a_version_they_do_not_know(
    qpsweep: Any, tmp_path: Path, version: Any, message: str
) -> None:
    newer = _run_dir(tmp_path / "newer", version)
    report = qpsweep("report", str(newer))
    assert report.code == 2
    (line,) = report.err.strip().splitlines()
    assert str(newer / "metadata.json") in line and message in line
    other = _run_dir(tmp_path / "other", 1)
    for pair in ((other, newer), (newer, other)):
        diff = qpsweep("diff", *map(str, pair), "--no-plot", dataset=None)
        assert diff.code == 2
        (line,) = diff.err.strip().splitlines()
        assert str(newer / "metadata.json") in line and message in line
