"""The sweep's command-line flags (``qpsweep [flags]``), grouped as ``--help`` shows them."""

from __future__ import annotations

import argparse

from qpsweep._version import __version__
from qpsweep.cli.parser import Parser
from qpsweep.config.scenario import APIS, ARRIVALS
from qpsweep.config.sessions import HISTORIES
from qpsweep.records.run_files import DEFAULT_PLOT_FILE, DEFAULT_RESULTS_FILE

EXAMPLE = """\
example:
  qpsweep --endpoint http://127.0.0.1:8000/v1/chat/completions --model my-model \\
          --dataset datasets/conversations.json --qps 1,5,10,20 --duration 60
  qpsweep --endpoint http://127.0.0.1:8000 --model my-model \\
          --dataset datasets/conversations.json --qps auto --duration 20 --budget 600

other commands:
  qpsweep demo           sweep the built-in simulator for two minutes: see qpsweep at work
  qpsweep sim            serve the built-in LLM server simulator on 127.0.0.1
  qpsweep report DIR     rebuild the results JSON and report.txt of a result directory
  qpsweep check URL      can this endpoint serve a sweep? (health, models, one streamed reply)
  qpsweep diff A B       compare two result directories level by level
  qpsweep export DIR     a result directory as CSV or llm-d Benchmark Reports (--format llm-d)
  qpsweep merge DIR...   join the result directories of --shard I/N runs into one run

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
    target.add_argument(
        "--api",
        choices=APIS,
        default="chat",
        help="chat: POST /v1/chat/completions with messages; completions: POST /v1/completions "
        "with a prompt string (a sample's prompt field, else its messages joined as "
        "'User: ...' paragraphs ending in 'Assistant:'; see docs/usage.md) (default: %(default)s)",
    )
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
        "--cost-per-hour",
        metavar="USD",
        help="the endpoint's price per hour (e.g. its GPU node's): adds the cost per million "
        "output tokens and per thousand requests, per level and at the recommended QPS",
    )
    target.add_argument(
        "--no-check",
        action="store_true",
        help="skip the probe before the sweep (health, models, one streamed completion: "
        "see qpsweep check)",
    )


def _server_flags(p: Parser) -> None:
    """The ``--metrics-*`` flags: the server's own view, scraped during the run."""
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
        help="a metric to scrape besides the preset's (repeatable; label sets summed)",
    )
    server.add_argument(
        "--metrics-preset",
        default="auto",
        metavar="NAME",
        help="the server's metrics: vllm, sglang, tgi, llamacpp, dcgm (NVIDIA's DCGM "
        "exporter), auto (default: every preset's names, the served ones detected) or none "
        "(only --metrics-gauge)",
    )


def _session_flags(p: Parser) -> None:
    """The "multi-turn sessions" group of the sweep's flags."""
    turns = p.add_argument_group("multi-turn sessions (see docs/usage.md)")
    turns.add_argument(
        "--multi-turn",
        action="store_true",
        help="each conversation is a session: its user turns in order, turn k+1 sent once turn "
        "k's answer finished plus --think-time; sessions start open-loop at QPS / mean turns "
        "per session, so the request rate is the level's QPS",
    )
    turns.add_argument(
        "--think-time",
        default="0",
        metavar="SECONDS",
        help="with --multi-turn: pause after each answer, SECONDS or exp:MEAN (exponential, "
        "seeded) (default: %(default)s)",
    )
    turns.add_argument(
        "--history",
        choices=HISTORIES,
        default="real",
        help="with --multi-turn: the earlier turns carry the model's real answers or the "
        "dataset's assistant turns (default: %(default)s)",
    )


def _scale_flags(p: Parser) -> None:
    """The "scale-out" group of the sweep's flags."""
    scale = p.add_argument_group("scale-out (see docs/scaling-out.md)")
    scale.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="processes that share each level's sends: worker w sends every N-th arrival; "
        "'auto' = cores - 1 (default: %(default)s)",
    )
    scale.add_argument(
        "--shard",
        metavar="I/N",
        help="send only part I of N of every level (e.g. one pod of a Kubernetes Indexed Job); "
        "needs --start-at; join the shards' directories with qpsweep merge",
    )
    scale.add_argument(
        "--start-at",
        metavar="EPOCH",
        help="with --shard: when level 1 starts, in Unix seconds or ISO 8601 with a zone; the "
        "same for every shard",
    )


def sweep_parser() -> Parser:
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
        help="QPS levels, or 'auto' to search for the saturation point; with --arrival trace, "
        "multiples of the trace's mean rate such as 1x,2x,3x (default: %(default)s)",
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
        help="arrival process; trace replays the arrival times of --trace FILE, its gaps "
        "scaled to each level's QPS (default: %(default)s)",
    )
    load.add_argument(
        "--trace",
        metavar="FILE",
        help="with --arrival trace: Mooncake JSONL, Azure LLM inference CSV, or a CSV/JSONL "
        "with a time column in seconds; its token counts, where given, set each request's "
        "prompt length and max_tokens (then --dataset is not needed); see datasets/README.md",
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
        "--repeat",
        type=int,
        metavar="N",
        help="run the whole sweep N times (seeds --seed, --seed+1, ...) into one directory "
        "with a run per repeat, and report each figure's mean, 95%% interval and spread "
        "across them (default: once)",
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
    _session_flags(p)
    _scale_flags(p)
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
    _server_flags(p)
    out = p.add_argument_group("output")
    out.add_argument(
        "--percentiles", default="50,95,99", help="any of 50,90,95,99,99.9 (default: %(default)s)"
    )
    out.add_argument(
        "--name",
        help="name of the run directory under --results-dir (default: a timestamp; a _2, _3 "
        "suffix when taken)",
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
