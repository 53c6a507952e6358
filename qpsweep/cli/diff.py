"""``qpsweep diff BASE CANDIDATE``: compare two result directories."""

from __future__ import annotations

from pathlib import Path

from qpsweep.cli.parser import Parser
from qpsweep.config.scenario import parse_cost_per_hour
from qpsweep.errors import ConfigError


def main_diff(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep diff",
        description="Compare two result directories level by level (aligned by target QPS) with "
        "a Mann-Whitney U test on block medians of the requests; writes diff.json, diff.txt and "
        "diff.png into a new directory and prints the comparison.  Either side may be the "
        "directory of a --repeat run: the repeats' figures are then compared (Welch t test).",
        epilog="example: qpsweep diff results/2026-11-20_10-00-00 results/2026-11-23_10-00-00 "
        "--fail-on-regression 10",
    )
    p.add_argument("base", metavar="BASE", help="the reference result (or --repeat) directory")
    p.add_argument(
        "candidate", metavar="CANDIDATE", help="the result (or --repeat) directory to judge"
    )
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
    p.add_argument(
        "--cost-per-hour",
        metavar="USD",
        help="price both runs at USD per hour (default: each run's own --cost-per-hour, if any)",
    )
    ns = p.parse_args(argv)
    cost_per_hour = parse_cost_per_hour(ns.cost_per_hour)
    if not 0 < ns.alpha < 1:
        raise ConfigError(f"--alpha: {ns.alpha:g} must be between 0 and 1")
    threshold = ns.fail_on_regression
    if threshold is not None and not 0 <= threshold < 1000:
        raise ConfigError(f"--fail-on-regression: {threshold:g} must be a percentage >= 0")
    from qpsweep.output.diff_run import diff_dirs  # scipy.stats loads slowly: only for diff

    result = diff_dirs(
        Path(ns.base),
        Path(ns.candidate),
        alpha=ns.alpha,
        threshold_pct=threshold or 0.0,
        results_dir=Path(ns.results_dir),
        output_dir=Path(ns.output_dir) if ns.output_dir else None,
        plot=not ns.no_plot,
        cost_per_hour=cost_per_hour,
    )
    print(result.text, end="")
    print(f"Diff: {result.out_dir}")
    return 1 if threshold is not None and result.diff.regressions else 0
