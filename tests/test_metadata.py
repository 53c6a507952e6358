"""``metadata.json`` as a typed contract: what a run writes reads back as the same
``RunMetadata``, older and hand-edited files are read or refused with one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.shards import Shard
from qpsweep.config.slo import Slo
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.errors import RunDirError
from qpsweep.records.metadata import (
    ClockInfo,
    LevelEntry,
    RunMetadata,
    Warmup,
    new_metadata,
    read_metadata,
    write_metadata,
)
from qpsweep.records.run_files import RunFiles


def _full() -> RunMetadata:
    """A metadata with every optional part set."""
    thresholds = Thresholds(slos=(Slo("ttft", "p95", 0.5),), headroom=0.7)
    scenario = Scenario(
        qps=(1.0, 2.5),
        thresholds=thresholds,
        auto=AutoPlan(start_qps=2.0),
        shard=Shard(1, 4, 1.7e9),
    )
    target = Target("http://u:secret@127.0.0.1:9/v1", "m", headers=(("X-Api-Key", "k"),))
    meta = new_metadata(target, scenario, "d.jsonl", "ab" * 32, 7, ["qpsweep"], RunFiles())
    return replace(
        meta.with_level(LevelEntry(0, 1.0, 10.0, 9, 1.7e9, 9.8, 9, True, (5, 4))),
        clock=ClockInfo(0.01, 0.5, "http://127.0.0.1:9/"),
        warmup=Warmup(3, 3, 0.2),
        metrics_gauges=("vllm:num_requests_running",),
        metrics_preset="vllm",
        merge_problems=("shard 2/4 is missing",),
        notes={"simulator": {"max_num_seqs": 4}},
    )


def test_a_full_metadata_round_trips_through_its_file(tmp_path: Path) -> None:
    meta = _full()
    write_metadata(tmp_path, meta)
    back = read_metadata(tmp_path)
    assert back == meta
    assert back.thresholds.slos == (Slo("ttft", "p95", 0.5),)
    assert back.levels[0].n_sent_by_worker == (5, 4)


def test_what_is_written_masks_secrets_and_keeps_notes_at_top_level(tmp_path: Path) -> None:
    write_metadata(tmp_path, _full())
    data = json.loads((tmp_path / "metadata.json").read_text())
    assert data["endpoint"] == "http://u:***@127.0.0.1:9/v1"
    assert data["headers"] == {"X-Api-Key": "***"}
    assert data["simulator"] == {"max_num_seqs": 4} and "notes" not in data
    assert data["levels"][0]["qps_target"] == 1.0 and data["shard"]["count"] == 4


def test_with_level_replaces_the_entry_of_its_index() -> None:
    meta = _full().with_level(LevelEntry(2, 4.0)).with_level(LevelEntry(0, 1.0, n_sent=1))
    assert [(lv.index, lv.n_sent) for lv in meta.levels] == [(0, 1), (2, None)]


def test_an_older_run_without_the_newer_keys_is_read_with_defaults(tmp_path: Path) -> None:
    old = {
        "timestamp": "2026-01-01T00:00:00",
        "endpoint": "http://127.0.0.1:8000/v1",
        "model": "m",
        "dataset": "d",
        "qps_levels": [1, 2],
        "thresholds": {"max_error_rate": 0.1, "a_threshold_of_the_future": 1},
        "levels": [{"index": 0, "qps_target": 1}],
        "status": "complete",
    }
    (tmp_path / "metadata.json").write_text(json.dumps(old))
    meta = read_metadata(tmp_path)
    assert meta.qps_levels == (1.0, 2.0) and meta.levels == (LevelEntry(0, 1.0),)
    assert meta.thresholds == Thresholds(max_error_rate=0.1)
    assert meta.clock is None and meta.merge_problems == () and meta.notes == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [("levels", [{"qps_target": 1}]), ("levels", 3), ("shard", {"index": 1}), ("warmup", 5)],
)
def test_a_field_of_the_wrong_shape_is_one_line(tmp_path: Path, field: str, value: object) -> None:
    data = _full().to_json() | {field: value}
    (tmp_path / "metadata.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match=r"metadata\.json: a field has the wrong shape"):
        read_metadata(tmp_path)


def test_report_on_a_broken_metadata_exits_2_with_one_line(tmp_path: Path, qpsweep) -> None:  # type: ignore[no-untyped-def]
    data = _full().to_json() | {"levels": [{"index": "x", "qps_target": None}]}
    (tmp_path / "metadata.json").write_text(json.dumps(data))
    run = qpsweep("report", str(tmp_path))
    assert run.code == 2 and "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1 and "metadata.json" in run.err
