"""``qpsweep report DIR``: rebuild a result directory's reports from its records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qpsweep.cli.parser import Parser
from qpsweep.config.scenario import parse_cost_per_hour
from qpsweep.output.models import MODELS_FILE, ModelRun, read_models, write_comparison
from qpsweep.output.rebuild import Analysis, rebuild
from qpsweep.output.repeats import is_repeats_dir, rebuild_repeats
from qpsweep.records.metadata import read_metadata, write_metadata


def _reprice(run_dir: Path, cost_per_hour: float | None) -> None:
    """Record ``cost_per_hour`` in the run's ``metadata.json`` (nothing when ``None``)."""
    if cost_per_hour is not None:
        metadata = read_metadata(run_dir)
        write_metadata(run_dir, replace(metadata, cost_per_hour=cost_per_hour))


def main_report(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep report",
        description="Rebuild the results JSON, saturation.json, report.txt, the plots and "
        "report.html of a result directory from its metadata.json and requests.jsonl alone.",
    )
    p.add_argument("run_dir", metavar="DIR", help="a result directory, e.g. results/2026-...")
    p.add_argument("--plot", action="store_true", help="draw the plots even if the run did not")
    p.add_argument("--html", action="store_true", help="write report.html even if the run did not")
    p.add_argument(
        "--cost-per-hour",
        metavar="USD",
        help="price the run at USD per hour (recorded in metadata.json, replacing its price)",
    )
    ns = p.parse_args(argv)
    cost_per_hour = parse_cost_per_hour(ns.cost_per_hour)
    plot, html = True if ns.plot else None, True if ns.html else None
    run_dir = Path(ns.run_dir)
    if (run_dir / MODELS_FILE).is_file():  # --all-models: each model's run, then the comparison
        runs = []
        for entry in read_models(run_dir):
            child = run_dir / entry["dir"] if entry["dir"] else None
            if child:
                _reprice(child, cost_per_hour)
            analysis = rebuild(child, plot=plot, html=html)[0] if child else None
            interrupted = entry["status"] == "interrupted"
            runs.append(ModelRun(entry["model"], child, analysis, interrupted, entry["reason"]))
        print(write_comparison(run_dir, runs), end="")
        return 0
    if is_repeats_dir(run_dir):  # --repeat: each repeat's run, then the summary across them

        def one(child: Path) -> Analysis:
            _reprice(child, cost_per_hour)
            return rebuild(child, plot, html)[0]

        print(rebuild_repeats(run_dir, one), end="")
        return 0
    _reprice(run_dir, cost_per_hour)
    _, table = rebuild(run_dir, plot=plot, html=html)
    print(table)
    return 0
