"""Installed means installed: a plain (non-editable) install carries the shipped config files
and datasets, so the README's named targets, scenarios and dataset paths work from an empty
directory.

The test builds the wheel from a copy of the source files it needs (so it proves the build
takes nothing else), installs it with no dependencies into a fresh virtual environment whose
only view of the dependencies is this environment's site-packages (a ``.pth`` line: fast,
and no index needed beyond the build's own setuptools), and runs the installed ``qpsweep``
from an empty temporary directory against ``qpsweep sim`` on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from qpsweep.sim.server import SimConfig

from conftest import REPO, sim_process

SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "qpsweep",
    "config",
    "datasets",
)


def _run(cmd: list[str], cwd: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False, env=env
    )


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "k8s")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist")]
    done = _run([*pip, str(source)], cwd=tmp, timeout_s=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("qpsweep-*.whl")
    return wheel


def _venv_with(wheel: Path, tmp: Path) -> Path:
    """A fresh virtual environment holding ``wheel``; returns its ``bin`` folder."""
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp).returncode == 0
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    done = _run([*install, str(wheel)], cwd=tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_plain_install_works_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("config/targets.yaml", "config/scenarios.yaml", "datasets/conversations.json"):
        assert f"qpsweep/_shipped/{shipped}" in names
    assert not any("k8s" in name for name in names)
    assert "qpsweep/records/schemas/metadata.schema.json" in names
    bin_dir = _venv_with(wheel, tmp_path)
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    where = _run([str(bin_dir / "python"), "-c", "import qpsweep; print(qpsweep.__file__)"], empty)
    assert where.stdout.startswith(str(tmp_path / "venv")), where  # the wheel, not this tree

    # `qpsweep check sim` finds the shipped target: it probes 127.0.0.1:8000 (whatever answers
    # there, or nothing: exit 1), never "no target named 'sim'".
    check = _run([str(bin_dir / "qpsweep"), "check", "sim", "--timeout", "5"], empty)
    assert check.returncode in (0, 1), check.stderr
    assert check.stdout.startswith("checking http://127.0.0.1:8000/"), check.stdout
    assert "(model qpsweep-sim)" in check.stdout.splitlines()[0]

    # The shipped scenario names the shipped dataset by its repository path.
    with sim_process(SimConfig()) as url:
        sweep = [str(bin_dir / "qpsweep"), "--target", "sim", "--scenario", "quick_validation"]
        sweep += ["--endpoint", url, "--duration", "1", "--warmup", "0", "--no-plot"]
        done = _run(sweep, empty, timeout_s=120)
        # a shipped trace sample, by its repository path too (the README's trace example)
        replay = [str(bin_dir / "qpsweep"), "--endpoint", url, "--model", "qpsweep-sim"]
        replay += ["--arrival", "trace", "--trace", "datasets/trace_plain.csv", "--qps", "1x"]
        replay += ["--dataset", "datasets/short_prompts.jsonl"]
        replay += ["--duration", "1", "--warmup", "0", "--no-plot", "--no-check"]
        replay += ["--results-dir", str(tmp_path / "trace-results")]
        replayed = _run(replay, empty, timeout_s=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    (trace_run,) = (tmp_path / "trace-results").iterdir()
    trace_path = json.loads((trace_run / "metadata.json").read_text())["trace"]["path"]
    assert trace_path.endswith("qpsweep/_shipped/datasets/trace_plain.csv"), trace_path
    (run_dir,) = (empty / "results").iterdir()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["model"] == "qpsweep-sim"
    assert metadata["qps_levels"] == [1.0, 2.0]
    assert metadata["max_tokens"] == 64
    assert metadata["dataset"].endswith("qpsweep/_shipped/datasets/short_prompts.jsonl")
    assert metadata["dataset"].startswith(str(tmp_path / "venv"))
    assert (run_dir / "requests.jsonl").stat().st_size > 0
    assert sorted(p.name for p in empty.iterdir()) == ["results"]  # nothing else written here


def test_a_dataset_path_falls_back_to_the_shipped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qpsweep.datasets.prompts import dataset_path

    monkeypatch.chdir(tmp_path)
    shipped = dataset_path("datasets/short_prompts.jsonl")
    assert shipped.is_absolute()
    assert shipped.read_bytes() == (REPO / "datasets" / "short_prompts.jsonl").read_bytes()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "short_prompts.jsonl").write_text("{}\n")
    assert dataset_path("datasets/short_prompts.jsonl") == Path("datasets/short_prompts.jsonl")
    assert dataset_path("datasets/missing.json") == Path("datasets/missing.json")
    assert dataset_path("../datasets/short_prompts.jsonl") == Path(
        "../datasets/short_prompts.jsonl"
    )
