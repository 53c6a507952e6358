"""Named targets and scenarios from YAML: shipped files, errors with file and line, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from qpsweep.config.files import SCENARIO_KEYS, TARGET_KEYS, load_file
from qpsweep.errors import ConfigError
from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process

SHIPPED = sorted((REPO / "config").glob("*.yaml"))


def test_every_shipped_yaml_file_loads() -> None:
    assert [p.name for p in SHIPPED] == ["scenarios.yaml", "targets.yaml"]
    targets = load_file(REPO / "config" / "targets.yaml")["targets"]
    assert set(targets) == {"sim", "vllm", "llamacpp", "ollama", "lmstudio", "openai-style"}
    assert all({"base_url", "model"} <= set(t.values) for t in targets.values())
    scenarios = load_file(REPO / "config" / "scenarios.yaml")["scenarios"]
    assert set(scenarios) == {
        "quick_validation",
        "latency_benchmark",
        "throughput_benchmark",
        "load_test",
        "stress_test",
        "saturation",
        "trace_replay",
    }
    assert scenarios["saturation"].values["qps"] == "auto"
    assert scenarios["trace_replay"].values["qps"] == "1x,2x,3x"
    for scenario in scenarios.values():
        assert (REPO / scenario.values.get("dataset", scenario.values.get("trace"))).is_file()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "scenarios:\n  s:\n    qps: [1]\n    durtion: 5\n",
            ":4: scenario 's': unknown key 'durtion'",
        ),
        (
            "scenarios:\n  s:\n    duration: 0\n",
            ":3: scenario 's': duration must be greater than 0",
        ),
        ("scenarios:\n  s:\n    qps: [1, -2]\n", ":3: scenario 's': qps must be greater than 0"),
        ("scenarios:\n  s:\n    arrival: burst\n", ":3: scenario 's': arrival must be one of"),
        ("scenarios:\n  s:\n    percentiles: [50, 42]\n", ":3: scenario 's': percentiles"),
        ("targets:\n  t:\n    model: m\n    headers: [a]\n", ":4: target 't': headers must be"),
        ("targets:\n  t:\n    base_url: 5\n", ":3: target 't': base_url must be a non-empty"),
        (
            "targets:\n  t:\n    api: chats\n",
            ":3: target 't': api must be one of chat, completions",
        ),
        ("target:\n  t: {}\n", ":1: unknown section 'target'"),
        ("scenarios:\n  s: [1, 2]\n", ":2: scenario 's' must be a mapping"),
        ("scenarios:\n  s:\n    qps: [1\n", ": invalid YAML"),
    ],
)
def test_bad_config_names_file_line_entry_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keys_documented_in_the_shipped_files() -> None:
    for path, keys in ((SHIPPED[0], SCENARIO_KEYS), (SHIPPED[1], TARGET_KEYS)):
        header = path.read_text().split("\n\n")[0]
        assert all(key in header for key in keys), path


@pytest.mark.slow
def test_a_named_target_and_scenario_run_with_flags_overriding(qpsweep, tmp_path: Path) -> None:
    config = SimConfig(max_num_seqs=8, decode_ms=2.0, decode_ms_per_seq=0.0)
    with sim_process(config) as url:
        mine = _write(
            tmp_path,
            f"targets:\n  local:\n    base_url: {url}\n    model: qpsweep-sim\n"
            "    headers:\n      X-Team: capacity\n"
            "scenarios:\n  tiny:\n    qps: [3, 6]\n    duration: 30\n    max_tokens: 8\n"
            "    dataset: datasets/short_prompts.jsonl\n    seed: 7\n",
        )
        run = qpsweep(
            "--config", str(mine), "--target", "local", "--scenario", "tiny",
            "--duration", "1", dataset=None,
        )  # fmt: skip
    assert run.code == 0, run.err
    meta = run.json("metadata.json")
    assert meta["endpoint"] == f"{url}/v1/chat/completions" and meta["model"] == "qpsweep-sim"
    assert meta["qps_levels"] == [3.0, 6.0] and meta["duration"] == 1.0  # the flag wins
    assert meta["max_tokens"] == 8 and meta["seed"] == 7
    assert meta["headers"] == {"X-Team": "capacity"}
    assert meta["dataset"].endswith("short_prompts.jsonl")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope", "--model", "m"], "--target: no target named 'nope' (known: "),
        (["--scenario", "nope"], "--scenario: no scenario named 'nope' (known: "),
        (["--model", "m", "--qps", "1"], "--endpoint is required (or a --target/--scenario"),
        (["--config", "{tmp}/missing.yaml", "--target", "sim"], "no such file"),
        (["--config", "{tmp}/mine.yaml", "--target", "sim"], ":3: scenario 's': unknown key"),
    ],
)
def test_bad_named_settings_are_one_line_and_exit_2(
    qpsweep, tmp_path: Path, args: list[str], message: str
) -> None:
    _write(tmp_path, "scenarios:\n  s:\n    speed: 1\n")
    run = qpsweep(*[a.format(tmp=tmp_path) for a in args])
    assert run.code == 2 and message in run.err, run.err
    assert len(run.err.strip().splitlines()) == 1 and "Traceback" not in run.err
