"""Command line: ``qpsweep [sweep flags]`` and the ``check``, ``demo``, ``diff``, ``report``,
``sim`` and ``dataset`` commands.

``main(argv) -> int`` parses, makes one library call per command, and maps operator
errors to one line on stderr with exit code 2.  Exit codes: 0 success, 1 the endpoint failed
the probe before the sweep (nothing sent; ``qpsweep check`` also exits 1 then) or ``diff
--fail-on-regression`` found one, 2 bad input or an unusable results directory, 130
interrupted by Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from qpsweep import __version__
from qpsweep.adaptive import AutoPlan
from qpsweep.argparsing import Parser
from qpsweep.check import main_check, probe_before_sweep
from qpsweep.client import settings_for
from qpsweep.config import (
    ARRIVALS,
    Scenario,
    Target,
    check_scenario,
    normalize_endpoint,
    parse_header,
    parse_percentiles,
    parse_qps,
    positive,
)
from qpsweep.configfile import resolve
from qpsweep.dataset import file_sha256, load_prompts
from qpsweep.demo import run_demo
from qpsweep.errors import ConfigError, QpsweepError
from qpsweep.heap import keep_freed_memory
from qpsweep.metrics import DEFAULT_GAUGES
from qpsweep.models_run import MODELS_FILE, ModelRun, read_models, sweep_models, write_comparison
from qpsweep.probe import probe_urls, served_models
from qpsweep.rundir import (
    DEFAULT_PLOT_FILE,
    DEFAULT_RESULTS_FILE,
    RunFiles,
    rebuild,
)
from qpsweep.saturation import Thresholds
from qpsweep.sim import SimConfig, serve
from qpsweep.slo import parse_slos
from qpsweep.sweep import SweepResult, run_sweep
from qpsweep.synth import main_dataset

EXAMPLE = """\
example:
  qpsweep --endpoint http://127.0.0.1:8000/v1/chat/completions --model my-model \\
          --dataset datasets/conversations.json --qps 1,5,10,20 --duration 60
  qpsweep --endpoint http://127.0.0.1:8000 --model my-model \\
          --dataset datasets/conversations.json --qps auto --duration 20 --budget 600

other commands:
  qpsweep demo           sweep the built-in simulator for a minute: see qpsweep at work
  qpsweep sim            serve the built-in LLM server simulator on 127.0.0.1
  qpsweep report DIR     rebuild the results JSON and report.txt of a result directory
  qpsweep check URL      can this endpoint serve a sweep? (health, models, one streamed reply)
  qpsweep diff A B       compare two result directories level by level

The API key is read from $OPENAI_API_KEY (see --api-key-env) and is never written anywhere.
"""


def _endpoint_flags(p: Parser) -> None:
    """The "endpoint" group of the sweep's flags."""
    target = p.add_argument_group("endpoint")
    target.add_argument(
        "--endpoint",
        help="chat completions URL, or a base URL (http://host:8000[/v1]); required unless "
        "--target sets it",
    )
    target.add_argument("--model", help="model name sent in each request (required)")
    target.add_argument("--api-key", help="API key (prefer --api-key-env; never written out)")
    target.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key (default: %(default)s)",
    )
    target.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="extra HTTP header, repeatable",
    )
    target.add_argument(
        "--no-verify-tls", action="store_true", help="do not verify the server's TLS certificate"
    )
    target.add_argument(
        "--all-models",
        action="store_true",
        help="sweep each of the target's supported_models (else every model GET /v1/models "
        "lists) in turn, into one run directory with a comparison",
    )
    target.add_argument(
        "--no-check",
        action="store_true",
        help="skip the probe before the sweep (health, models, one streamed completion: "
        "see qpsweep check)",
    )


def _sweep_parser() -> Parser:
    p = Parser(
        prog="qpsweep",
        description="Open-loop QPS sweep of an OpenAI-compatible chat endpoint: Poisson arrivals "
        "at each level, TTFT/ITL/TPOT/E2E/tokens-per-second and errors per request.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"qpsweep {__version__}")
    named = p.add_argument_group("named targets and scenarios (YAML; flags override them)")
    named.add_argument("--target", metavar="NAME", help="an endpoint from config/targets.yaml")
    named.add_argument("--scenario", metavar="NAME", help="settings from config/scenarios.yaml")
    named.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="your own YAML of targets:/scenarios:, searched first (repeatable)",
    )
    _endpoint_flags(p)
    p.set_defaults(supported_models=None)  # from a target's YAML, for --all-models
    load = p.add_argument_group("load")
    load.add_argument(
        "--dataset",
        help="conversations (seed format, OpenAI messages or ShareGPT; JSON array or JSONL) or "
        "prompts as .txt lines; see datasets/README.md; required unless --scenario sets it",
    )
    load.add_argument(
        "--qps",
        default="1,5,10,20",
        help="QPS levels, or 'auto' to search for the saturation point (default: %(default)s)",
    )
    load.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds of arrivals per level (default: %(default)g)",
    )
    load.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="poisson",
        help="arrival process (default: %(default)s)",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="gamma shape for --arrival gamma; <1 burstier (default: %(default)g)",
    )
    load.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the schedule and prompt order (default: %(default)s)",
    )
    load.add_argument(
        "--warmup",
        type=int,
        default=0,
        metavar="N",
        help="requests sent before the first level, not counted (default: 0)",
    )
    load.add_argument("--max-tokens", type=int, default=512, help="default: %(default)s")
    load.add_argument("--temperature", type=float, default=0.7, help="default: %(default)g")
    load.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="per-request deadline in seconds (default: %(default)g)",
    )
    load.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        help="TCP connect deadline in seconds (default: %(default)g)",
    )
    load.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="send a request again, up to N times, after a connection error or a 503 that came "
        "before any token (back-off 0.5 s, 1 s, 2 s, ... up to 8 s); retried requests are "
        "counted and the verdict uses first-try failures (default: 0, off)",
    )
    verdict = p.add_argument_group("verdict and stop rules")
    verdict.add_argument(
        "--no-rerun",
        action="store_true",
        help="do not run a level once more when the load generator fell behind at it "
        "(client_limited); --qps auto then stops there",
    )
    verdict.add_argument(
        "--slo",
        metavar="SPEC",
        help="latency objectives, e.g. ttft_p95=500ms,tpot_p95=30ms, or a preset: standard "
        "(TTFT p95 2 s, TPOT p95 100 ms), interactive (0.5 s, 30 ms); per level: SLO met and "
        "goodput; the max sustainable QPS becomes the highest level meeting it",
    )
    verdict.add_argument(
        "--headroom",
        type=float,
        default=0.75,
        help="recommended QPS = headroom x max sustainable (default: %(default)g)",
    )
    verdict.add_argument(
        "--max-error-rate",
        type=float,
        default=0.05,
        metavar="FRACTION",
        help="a level above it is saturated, and a fixed sweep stops there (default: %(default)g)",
    )
    verdict.add_argument(
        "--max-p95-latency",
        type=float,
        metavar="SECONDS",
        help="a level whose p95 E2E exceeds it is degraded, and a fixed sweep "
        "stops there (default: none)",
    )
    auto = p.add_argument_group("adaptive sweep (--qps auto)")
    auto.add_argument("--start-qps", type=float, default=1.0, help="first level (default: 1)")
    auto.add_argument(
        "--max-qps",
        type=float,
        default=1000.0,
        help="highest level the ramp may try (default: %(default)g)",
    )
    auto.add_argument(
        "--budget",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="time for the whole search (default: %(default)g)",
    )
    auto.add_argument(
        "--precision",
        type=float,
        default=0.1,
        help="stop bisecting when (hi - lo) / lo <= this (default: %(default)g)",
    )
    server = p.add_argument_group("server metrics")
    server.add_argument(
        "--metrics-url",
        metavar="URL",
        help="scrape this Prometheus endpoint every second during the run into "
        "server_metrics.jsonl (e.g. http://host:8000/metrics)",
    )
    server.add_argument(
        "--metrics-gauge",
        action="append",
        default=[],
        metavar="NAME",
        help="a gauge to scrape (repeatable; default: vLLM's num_requests_running, "
        "num_requests_waiting, gpu_cache_usage_perc)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--percentiles", default="50,95,99", help="any of 50,90,95,99,99.9 (default: %(default)s)"
    )
    out.add_argument(
        "--results-dir",
        default="results",
        help="parent of the timestamped run directory (default: %(default)s)",
    )
    out.add_argument(
        "--output",
        default=DEFAULT_RESULTS_FILE,
        help="results JSON file name inside the run directory",
    )
    out.add_argument("--plot", action="store_true", help="accepted: plots are drawn by default")
    out.add_argument(
        "--csv",
        action="store_true",
        help="also write requests.csv and levels.csv, and append this run's levels to "
        "RESULTS_DIR/benchmark_summary.csv",
    )
    out.add_argument(
        "--no-plot", action="store_true", help="skip the PNGs (report.html is still written)"
    )
    out.add_argument(
        "--plot-output", default=DEFAULT_PLOT_FILE, help="plot file name inside the run directory"
    )
    out.add_argument(
        "--show-tokens", action="store_true", help="deprecated: tokens/s is always shown"
    )
    return p


def _file_name(flag: str, value: str) -> str:
    name = Path(value).name
    if not name or name in (".", ".."):
        raise ConfigError(f"{flag}: {value!r} is not a file name")
    return name


def _target(ns: argparse.Namespace) -> Target:
    headers = tuple(parse_header(h) for h in ns.header)
    key = ns.api_key or os.environ.get(ns.api_key_env) or None
    return Target(
        url=normalize_endpoint(ns.endpoint),
        model=ns.model,
        headers=headers,
        api_key=key,
        verify_tls=not ns.no_verify_tls,
    )


def _scenario(ns: argparse.Namespace) -> Scenario:
    auto = ns.qps.strip().lower() == "auto"
    plan = AutoPlan(ns.start_qps, ns.max_qps, ns.precision, ns.budget) if auto else None
    thresholds = Thresholds(
        max_error_rate=ns.max_error_rate,
        max_p95_latency_s=ns.max_p95_latency,
        headroom=ns.headroom,
        slos=parse_slos(ns.slo) if ns.slo else (),
    )
    return check_scenario(
        Scenario(
            qps=() if auto else parse_qps(ns.qps),
            duration_s=ns.duration,
            max_tokens=ns.max_tokens,
            temperature=ns.temperature,
            timeout_s=ns.timeout,
            connect_timeout_s=ns.connect_timeout,
            seed=ns.seed,
            arrival=ns.arrival,
            burstiness=ns.burstiness,
            warmup=ns.warmup,
            percentiles=parse_percentiles(ns.percentiles),
            thresholds=thresholds,
            auto=plan,
            rerun_client_limited=not ns.no_rerun,
            retries=ns.retries,
        )
    )


def _parse_sweep(argv: list[str]) -> argparse.Namespace:
    """Flags over the named scenario over the named target over the built-in defaults."""
    pre = Parser(prog="qpsweep", add_help=False)
    pre.add_argument("--target")
    pre.add_argument("--scenario")
    pre.add_argument("--config", action="append", default=[])
    named, _ = pre.parse_known_args(argv)
    parser = _sweep_parser()
    parser.set_defaults(**resolve(named.config, named.target, named.scenario))
    ns = parser.parse_args(argv)
    for flag in ("endpoint", "model", "dataset"):
        if getattr(ns, flag) is None:
            raise ConfigError(
                f"--{flag} is required (or a --target/--scenario that sets it; see qpsweep --help)"
            )
    return ns


def _cmd_sweep(argv: list[str]) -> int:
    ns = _parse_sweep(argv)
    if ns.show_tokens:
        print("note: --show-tokens is deprecated; tokens/s is always shown", file=sys.stderr)
    target, scenario = _target(ns), _scenario(ns)
    files = RunFiles(
        _file_name("--output", ns.output),
        _file_name("--plot-output", ns.plot_output),
        not ns.no_plot,
        ns.csv,
    )
    dataset = Path(ns.dataset)
    prompts = load_prompts(dataset)
    metrics = _metrics(ns)

    def sweep(model: str, results_dir: Path, name: str | None, notes: dict[str, Any]) -> ModelRun:
        """Probe (unless --no-check), then sweep ``model``; a failed probe sends nothing."""
        one = replace(target, model=model)
        if not ns.no_check:
            probe = probe_before_sweep(settings_for(one, scenario))
            failed = probe.first_failure
            if failed is not None:
                return ModelRun(model, None, None, reason=f"{failed.name}: {failed.detail}")
            notes = {**notes, "check": probe.as_json()}
        result = run_sweep(
            one,
            scenario,
            prompts,
            dataset=str(dataset),
            dataset_sha256=file_sha256(dataset),
            argv=["qpsweep", *argv],
            results_dir=results_dir,
            files=files,
            metrics=metrics,
            notes=notes,
            name=name,
        )
        print(result.table)
        return ModelRun(model, result.run_dir, result.analysis, result.interrupted)

    if ns.all_models:
        return _sweep_all_models(ns, target, scenario, sweep)
    run = sweep(target.model, Path(ns.results_dir), None, {})
    if run.run_dir is None:
        print(f"qpsweep: the endpoint cannot serve a sweep: {run.reason} {_NOTHING_SENT}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"Results: {run.run_dir}")
    return 130 if run.interrupted else 0


_NOTHING_SENT = "(nothing was sent; --no-check skips this probe)"


def _sweep_all_models(
    ns: argparse.Namespace,
    target: Target,
    scenario: Scenario,
    sweep: Callable[[str, Path, str | None, dict[str, Any]], ModelRun],
) -> int:
    """``--all-models``: the target's ``supported_models``, else what ``/v1/models`` lists."""
    models = tuple(ns.supported_models or ())
    if not models:
        listed = asyncio.run(served_models(settings_for(target, scenario)))
        if not listed:
            raise ConfigError(
                "--all-models: the target has no supported_models and "
                f"{probe_urls(target.url)[1]} lists none"
            )
        models = listed
    print(f"--all-models: {len(models)} models: {', '.join(models)}", file=sys.stderr)
    notes = {"all_models": list(models)}
    parent, runs, text = sweep_models(
        models, Path(ns.results_dir), lambda m, p, slug: sweep(m, p, slug, notes)
    )
    print(text, end="")
    print(f"Results: {parent}")
    if any(r.interrupted for r in runs):
        return 130
    return 0 if any(r.run_dir is not None for r in runs) else 1


def _metrics(ns: argparse.Namespace) -> tuple[str, tuple[str, ...]] | None:
    """``(url, gauges)`` for the scraper, or ``None`` without ``--metrics-url``."""
    if not ns.metrics_url:
        if ns.metrics_gauge:
            raise ConfigError("--metrics-gauge needs --metrics-url")
        return None
    url = ns.metrics_url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--metrics-url: {url!r} must start with http:// or https://")
    return url, tuple(ns.metrics_gauge) or DEFAULT_GAUGES


def _show(result: SweepResult) -> int:
    """Print a finished sweep's table and directory; the exit code (130 if interrupted)."""
    print(result.table)
    print(f"Results: {result.run_dir}")
    return 130 if result.interrupted else 0


def _cmd_report(argv: list[str]) -> int:
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


def _cmd_diff(argv: list[str]) -> int:
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


def _cmd_demo(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep demo",
        description="Start the built-in LLM server simulator on a free 127.0.0.1 port, sweep it "
        "across its capacity (about a minute), write a normal result directory, print the table.",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per level (default: 10)")
    p.add_argument("--qps", help="levels (default: 0.3x to 1.5x the simulator's capacity)")
    p.add_argument("--seed", type=int, default=0, help="schedule and prompt seed (default: 0)")
    p.add_argument("--results-dir", default="results", help="default: %(default)s")
    ns = p.parse_args(argv)
    duration_s = positive("--duration", ns.duration)
    qps = parse_qps(ns.qps) if ns.qps else None
    result = run_demo(Path(ns.results_dir), duration_s, qps, ns.seed)
    return _show(result)


def _cmd_sim(argv: list[str]) -> int:
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


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "check": main_check,
    "dataset": main_dataset,
    "demo": _cmd_demo,
    "diff": _cmd_diff,
    "report": _cmd_report,
    "sim": _cmd_sim,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises for operator errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(args[0], _cmd_sweep) if args else _cmd_sweep
    if command is not _cmd_sweep:
        args = args[1:]
    try:
        return command(args)
    except QpsweepError as err:
        print(f"qpsweep: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:  # Ctrl-C outside a sweep's own handling (e.g. while writing)
        print("qpsweep: interrupted", file=sys.stderr)
        return 130
