"""The result-directory and simulator commands: ``report``, ``diff``, ``merge``, ``demo`` and
``sim``.  Each parses its own flags and makes one library call; ``cli.main`` maps errors to
exit codes."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from qpsweep.argparsing import Parser
from qpsweep.config import parse_qps, plain_name, positive
from qpsweep.demo import run_demo
from qpsweep.errors import ConfigError
from qpsweep.heap import keep_freed_memory
from qpsweep.models_run import MODELS_FILE, ModelRun, read_models, write_comparison
from qpsweep.rundir import rebuild
from qpsweep.sim import SimConfig, serve
from qpsweep.sweep import SweepResult


def _show(result: SweepResult) -> int:
    """Print a finished sweep's table and directory; the exit code (130 if interrupted)."""
    print(result.table)
    print(f"Results: {result.run_dir}")
    return 130 if result.interrupted else 0


def main_report(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep report",
        description="Rebuild the results JSON, saturation.json, report.txt, the plots and "
        "report.html of a result directory from its metadata.json and requests.jsonl alone.",
    )
    p.add_argument("run_dir", metavar="DIR", help="a result directory, e.g. results/2026-...")
    p.add_argument("--plot", action="store_true", help="draw the plots even if the run did not")
    p.add_argument("--html", action="store_true", help="write report.html even if the run did not")
    ns = p.parse_args(argv)
    keep_freed_memory()  # a big run's numpy temporaries: reuse them, do not fault them in again
    plot, html = True if ns.plot else None, True if ns.html else None
    run_dir = Path(ns.run_dir)
    if (run_dir / MODELS_FILE).is_file():  # --all-models: each model's run, then the comparison
        runs = []
        for entry in read_models(run_dir):
            child = run_dir / entry["dir"] if entry["dir"] else None
            analysis = rebuild(child, plot=plot, html=html)[0] if child else None
            interrupted = entry["status"] == "interrupted"
            runs.append(ModelRun(entry["model"], child, analysis, interrupted, entry["reason"]))
        print(write_comparison(run_dir, runs), end="")
        return 0
    _, table = rebuild(run_dir, plot=plot, html=html)
    print(table)
    return 0


def main_diff(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep diff",
        description="Compare two result directories level by level (aligned by target QPS) with "
        "a Mann-Whitney U test on block medians of the requests; writes diff.json, diff.txt and "
        "diff.png into a new directory and prints the comparison.",
        epilog="example: qpsweep diff results/2026-11-20_10-00-00 results/2026-11-23_10-00-00 "
        "--fail-on-regression 10",
    )
    p.add_argument("base", metavar="BASE", help="the reference result directory")
    p.add_argument("candidate", metavar="CANDIDATE", help="the result directory to judge")
    p.add_argument(
        "--fail-on-regression",
        type=float,
        metavar="PCT",
        help="exit 1 when a significant regression beyond PCT %% is found (for CI gates)",
    )
    p.add_argument(
        "--alpha", type=float, default=0.01, help="significance level (default: %(default)s)"
    )
    p.add_argument("--results-dir", default="results", help="parent of the diff directory")
    p.add_argument("--output-dir", help="write the diff here instead (created if needed)")
    p.add_argument("--no-plot", action="store_true", help="skip diff.png")
    ns = p.parse_args(argv)
    if not 0 < ns.alpha < 1:
        raise ConfigError(f"--alpha: {ns.alpha:g} must be between 0 and 1")
    threshold = ns.fail_on_regression
    if threshold is not None and not 0 <= threshold < 1000:
        raise ConfigError(f"--fail-on-regression: {threshold:g} must be a percentage >= 0")
    from qpsweep.compare import diff_dirs  # scipy.stats loads slowly: only for diff

    result = diff_dirs(
        Path(ns.base),
        Path(ns.candidate),
        alpha=ns.alpha,
        threshold_pct=threshold or 0.0,
        results_dir=Path(ns.results_dir),
        output_dir=Path(ns.output_dir) if ns.output_dir else None,
        plot=not ns.no_plot,
    )
    print(result.text, end="")
    print(f"Diff: {result.out_dir}")
    return 1 if threshold is not None and result.diff.regressions else 0


def main_merge(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep merge",
        description="Join the result directories of --shard I/N runs into one run directory "
        "(records merged, then analyzed like any run); a missing shard or level, lost "
        "records, a shard that fell behind or whose clock was off are reported.",
        epilog="example: qpsweep merge /data/shard-0 /data/shard-1 /data/shard-2 /data/shard-3",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="the shards' result directories")
    p.add_argument("--results-dir", default="results", help="parent of the merged directory")
    p.add_argument("--name", help="name of the merged directory (default: a timestamp)")
    ns = p.parse_args(argv)
    plain_name("--name", ns.name)
    from qpsweep.merge import merge_shards

    result = merge_shards(
        [Path(d) for d in ns.dirs], Path(ns.results_dir), ns.name, ["qpsweep", "merge", *argv]
    )
    for problem in result.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    print(result.table)
    print(f"Results: {result.run_dir}")
    return 0


def main_demo(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep demo",
        description="Start the built-in LLM server simulator on a free 127.0.0.1 port, sweep it "
        "across its capacity (about two minutes), write a normal result directory, print the "
        "table.",
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds per level (default: 20)")
    p.add_argument("--qps", help="levels (default: 0.3x to 1.5x the simulator's capacity)")
    p.add_argument("--seed", type=int, default=0, help="schedule and prompt seed (default: 0)")
    p.add_argument("--results-dir", default="results", help="default: %(default)s")
    ns = p.parse_args(argv)
    duration_s = positive("--duration", ns.duration)
    qps = parse_qps(ns.qps) if ns.qps else None
    result = run_demo(Path(ns.results_dir), duration_s, qps, ns.seed)
    return _show(result)


def main_sim(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep sim",
        description="Serve the built-in OpenAI-compatible LLM simulator on 127.0.0.1 until Ctrl-C: "
        "a continuous-batching engine whose capacity follows from these options.",
    )
    p.add_argument("--port", type=int, default=8000, help="default: %(default)s (0: any free)")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address (default: %(default)s)")
    for f in fields(SimConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        p.add_argument(
            flag, type=kind, default=f.default, help=f"{f.metadata['help']}; default: %(default)s"
        )
    ns = vars(p.parse_args(argv))
    host, port = ns.pop("host"), ns.pop("port")
    try:
        config = SimConfig(**ns)
        serve(config, host, port)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except OSError as err:
        raise ConfigError(f"--port: cannot listen on {host}:{port} ({err.strerror})") from None
    return 0
