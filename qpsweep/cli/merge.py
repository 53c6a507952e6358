"""``qpsweep merge DIR...``: join the result directories of ``--shard I/N`` runs."""

from __future__ import annotations

import sys
from pathlib import Path

from qpsweep.cli.parser import Parser
from qpsweep.config.scenario import plain_name


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
    from qpsweep.load.merge import merge_shards

    result = merge_shards(
        [Path(d) for d in ns.dirs], Path(ns.results_dir), ns.name, ["qpsweep", "merge", *argv]
    )
    for problem in result.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    print(result.table)
    print(f"Results: {result.run_dir}")
    return 0
