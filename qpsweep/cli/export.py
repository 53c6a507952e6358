"""``qpsweep export DIR``: a result directory in other tools' formats.

``--format csv`` (the default) writes ``requests.csv`` and ``levels.csv`` (as ``--csv`` does
during a sweep; ``qpsweep.output.export``) into DIR; ``--format llm-d`` writes one llm-d
Benchmark Report v0.2 per level (``qpsweep.output.llmd``) into ``DIR/llm-d/``, YAML, or JSON
with ``--json``.  ``--output-dir`` writes elsewhere.  A directory of ``--all-models`` is
exported model by model (each into its own run directory, or ``OUT/<model dir>``).
"""

from __future__ import annotations

from pathlib import Path

from qpsweep.cli.parser import Parser
from qpsweep.errors import ConfigError
from qpsweep.output.models import MODELS_FILE, read_models
from qpsweep.output.rebuild import analyze_run

FORMATS = ("csv", "llm-d")
LLMD_DIR = "llm-d"


def _export(run_dir: Path, fmt: str, as_json: bool, out_dir: Path | None) -> list[Path]:
    analysis = analyze_run(run_dir)
    if fmt == "csv":
        from qpsweep.output.export import write_csvs

        target = out_dir or run_dir
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"--output-dir: {target}: cannot create ({err.strerror})") from None
        return write_csvs(target, analysis)
    from qpsweep.output.llmd import write_reports

    return write_reports(out_dir or run_dir / LLMD_DIR, analysis, as_json)


def main_export(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep export",
        description="Write a result directory in another format: csv (requests.csv and "
        "levels.csv, into DIR) or llm-d (one llm-d-benchmark Benchmark Report v0.2 per level, "
        "YAML, into DIR/llm-d/).",
        epilog="example: qpsweep export results/2026-12-08_10-00-00 --format llm-d",
    )
    p.add_argument("run_dir", metavar="DIR", help="a result directory, e.g. results/2026-...")
    p.add_argument("--format", choices=FORMATS, default="csv", help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="llm-d reports as JSON instead of YAML")
    p.add_argument("--output-dir", metavar="OUT", help="write the files here instead")
    ns = p.parse_args(argv)
    if ns.json and ns.format != "llm-d":
        raise ConfigError("--json: only with --format llm-d")
    run_dir = Path(ns.run_dir)
    out_dir = Path(ns.output_dir) if ns.output_dir else None
    if (run_dir / MODELS_FILE).is_file():
        children = [entry["dir"] for entry in read_models(run_dir) if entry["dir"]]
        paths = [
            path
            for child in children
            for path in _export(
                run_dir / child, ns.format, ns.json, out_dir / child if out_dir else None
            )
        ]
    else:
        paths = _export(run_dir, ns.format, ns.json, out_dir)
    for path in paths:
        print(path)
    return 0
