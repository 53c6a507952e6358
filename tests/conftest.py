"""Shared fixtures: a real scripted server on 127.0.0.1 and a CLI runner."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from qpsweep.cli.main import main
from qpsweep.sim.server import SimConfig

from servers import ServerThread, make_app

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO / "datasets" / "conversations.json"


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each xdist worker starts on one of the long tests.

    The tests with a ``timeout`` marker of their own are the end-to-end verdict sweeps of a
    minute or more.  ``--dist worksteal`` first hands worker ``k`` of ``N`` the ``k``-th of
    ``N`` consecutive near-equal shares of the items (``remaining // workers left``, as
    ``WorkStealingScheduling`` splits them), runs each share from its head and lets idle
    workers steal from the tails.  In file order the long sweeps sit together at the end of
    the last share; here they head the shares instead, longest bound first, dealt
    round-robin, and the other items keep their order."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)

    def bound(item: pytest.Item) -> float:
        mark = item.get_closest_marker("timeout")
        return float(mark.args[0]) if mark else 0.0

    long = sorted((i for i in items if bound(i)), key=bound, reverse=True)
    rest = iter([i for i in items if not bound(i)])
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for j, item in enumerate(long):
        heads[j % workers].append(item)
    ordered, left = [], len(items)
    for k in range(workers):
        size = left // (workers - k)
        left -= size
        ordered += heads[k] + [next(rest) for _ in range(max(size - len(heads[k]), 0))]
    items[:] = ordered + list(rest)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    with ServerThread(make_app()) as srv:
        yield srv


@dataclass
class Run:
    """What a user sees of one ``qpsweep`` invocation."""

    code: int
    out: str
    err: str
    run_dir: Path | None

    def records(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None
        lines = (self.run_dir / "requests.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def json(self, name: str) -> Any:
        assert self.run_dir is not None
        return json.loads((self.run_dir / name).read_text())


@pytest.fixture
def qpsweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Call ``main([...])`` with a private results dir; returns a ``Run``.

    Sweeps get ``--no-plot`` unless ``plots=True`` or the test passes ``--plot`` itself:
    drawing takes about a second per run, and the tests of the plots ask for them.  They get
    ``--no-rerun`` unless ``rerun=True``, so that a stall of the shared test process never
    changes a test's list of levels (the rerun has its own test), and ``--no-check`` unless
    ``check=True``: many test servers fail the probe on purpose (the probe has its tests)."""

    def run(
        *args: str,
        dataset: Path | None = DATASET,
        results: bool = True,
        plots: bool = False,
        rerun: bool = False,
        check: bool = False,
    ) -> Run:
        argv = list(args)
        commands = (["report"], ["diff"], ["demo"], ["sim"], ["dataset"], ["check"])
        sweep = argv[:1] not in commands
        if sweep and not plots and not {"--plot", "--no-plot"} & set(argv):
            argv.append("--no-plot")
        if sweep and not rerun:
            argv.append("--no-rerun")  # in-process runs share the GIL: keep level lists fixed
        if sweep and not check:
            argv.append("--no-check")
        if dataset is not None and "--dataset" not in argv and argv[:1] != ["report"]:
            argv += ["--dataset", str(dataset)]
        if results and argv[:1] != ["report"]:
            argv += ["--results-dir", str(tmp_path / "results")]
        before = set((tmp_path / "results").glob("*")) if (tmp_path / "results").exists() else set()
        code = main(argv)
        captured = capsys.readouterr()
        after = set((tmp_path / "results").glob("*")) if (tmp_path / "results").exists() else set()
        new = sorted(p for p in after - before if p.is_dir())
        return Run(code, captured.out, captured.err, new[-1] if new else None)

    return run


@pytest.fixture
def qpsweep_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``python -m qpsweep ...`` in its own process, as a user would; returns a ``Run``.

    For timing-sensitive sweeps: the test process carries threads and state of earlier tests."""

    def run(*args: str, dataset: Path = DATASET, timeout_s: float = 600) -> Run:
        results = tmp_path / "results"
        cmd = [sys.executable, "-m", "qpsweep", *args, "--dataset", str(dataset)]
        cmd += ["--results-dir", str(results)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        runs = sorted(p for p in results.glob("*") if p.is_dir()) if results.exists() else []
        return Run(done.returncode, done.stdout, done.stderr, runs[-1] if runs else None)

    return run


@pytest.fixture(scope="session")
def server_process() -> Iterator[str]:
    """The scripted server in its own process (no GIL sharing): yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "servers.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


@contextlib.contextmanager
def sim_process(config: SimConfig) -> Iterator[str]:
    """``qpsweep sim`` with ``config`` in its own process (as a real server would be, so it
    never competes with the load generator for the GIL); yields its base URL."""
    flags = [
        f"--{f.name.replace('_', '-')}={getattr(config, f.name)}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != f.default
    ]
    cmd = [sys.executable, "-m", "qpsweep", "sim", "--port", "0", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().split(" listening on ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
