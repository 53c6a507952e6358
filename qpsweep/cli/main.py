"""Command line: ``qpsweep [sweep flags]`` and the ``check``, ``demo``, ``diff``, ``export``,
``report``, ``sim``, ``merge`` and ``dataset`` commands.

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from qpsweep.cli.check import main_check, probe_before_sweep
from qpsweep.cli.dataset import main_dataset
from qpsweep.cli.demo import main_demo
from qpsweep.cli.diff import main_diff
from qpsweep.cli.export import main_export
from qpsweep.cli.merge import main_merge
from qpsweep.cli.parser import Parser
from qpsweep.cli.repeat import repeat_count, sweep_repeated
from qpsweep.cli.report import main_report
from qpsweep.cli.sim import main_sim
from qpsweep.cli.sweep_flags import sweep_parser
from qpsweep.config.files import resolve
from qpsweep.config.metrics_presets import MetricsPlan, metrics_plan
from qpsweep.config.scenario import (
    SESSIONS_NOT_TRACE,
    Scenario,
    Target,
    check_scenario,
    checked_url,
    normalize_endpoint,
    parse_cost_per_hour,
    parse_header,
    parse_percentiles,
    parse_qps,
    plain_name,
)
from qpsweep.config.secrets import Masker, argv_secrets, mask_url, secrets_of, utf8_safe
from qpsweep.config.sessions import session_plan
from qpsweep.config.shards import parse_shard, parse_workers
from qpsweep.config.slo import parse_slos
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.datasets.prompts import Prompt, dataset_path, load_dataset
from qpsweep.datasets.sessions import sessions_of
from qpsweep.datasets.traces import ArrivalTrace, load_trace, trace_prompts
from qpsweep.errors import ConfigError, QpsweepError, WriteFailed
from qpsweep.http.client import settings_for
from qpsweep.http.probe import probe_urls, served_models
from qpsweep.load.sweep import run_sweep
from qpsweep.output.models import ModelRun, sweep_models
from qpsweep.records.run_files import RunFiles


def _file_name(flag: str, value: str) -> str:
    name = Path(value).name
    if not name or name in (".", ".."):
        raise ConfigError(f"{flag}: {value!r} is not a file name")
    return name


def _target(ns: argparse.Namespace) -> Target:
    headers = tuple(parse_header(h) for h in ns.header)
    key = ns.api_key or os.environ.get(ns.api_key_env) or None
    return Target(
        url=normalize_endpoint(ns.endpoint, ns.api),
        model=ns.model,
        headers=headers,
        api_key=key,
        verify_tls=not ns.no_verify_tls,
        cost_per_hour=parse_cost_per_hour(ns.cost_per_hour),
        api=ns.api,
    )


def _scenario(ns: argparse.Namespace, trace: ArrivalTrace | None = None) -> Scenario:
    auto = ns.qps.strip().lower() == "auto"
    rate = trace.mean_rate_qps if trace is not None else None
    if ns.start_at is not None and ns.shard is None:
        raise ConfigError("--start-at: only with --shard I/N")
    shard = parse_shard(ns.shard, ns.start_at) if ns.shard is not None else None
    if not ns.multi_turn and (ns.think_time != "0" or ns.history != "real"):
        raise ConfigError("--think-time and --history: only with --multi-turn")
    sessions = session_plan(ns.think_time, ns.history) if ns.multi_turn else None
    plan = AutoPlan(ns.start_qps, ns.max_qps, ns.precision, ns.budget) if auto else None
    thresholds = Thresholds(
        max_error_rate=ns.max_error_rate,
        max_p95_latency_s=ns.max_p95_latency,
        headroom=ns.headroom,
        slos=parse_slos(ns.slo) if ns.slo else (),
    )
    return check_scenario(
        Scenario(
            qps=() if auto else parse_qps(ns.qps, rate),
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
            rerun_client_limited=not ns.no_rerun and shard is None,  # shards keep one timeline
            retries=ns.retries,
            workers=parse_workers(str(ns.workers)),
            shard=shard,
            trace_rate_qps=rate,
            sessions=sessions,
        )
    )


def _trace(ns: argparse.Namespace) -> ArrivalTrace | None:
    """The trace of ``--arrival trace --trace FILE`` (read and checked before any traffic)."""
    if ns.trace is not None and ns.arrival != "trace":
        raise ConfigError(f"--trace: only with --arrival trace (not {ns.arrival})")
    if ns.arrival != "trace":
        return None
    if ns.multi_turn:  # before the trace is read (check_scenario refuses it too)
        raise ConfigError(SESSIONS_NOT_TRACE)
    if ns.trace is None:
        raise ConfigError("--arrival trace needs --trace FILE")
    trace = load_trace(dataset_path(ns.trace))  # as given, else the shipped sample
    print(trace.describe(), file=sys.stderr)
    return trace


def _prompts(
    ns: argparse.Namespace, trace: ArrivalTrace | None, seed: int
) -> tuple[Sequence[Prompt], str, str]:
    """The prompts to send, and the dataset's name and SHA-256 for ``metadata.json``: the
    dataset's, or, where the trace gives input lengths, one built per trace row."""
    if trace is not None and trace.input_tokens is not None:
        if ns.dataset is not None:
            print(
                f"note: --dataset {ns.dataset} is not used: the trace gives each request's "
                "input length",
                file=sys.stderr,
            )
        built = trace_prompts(trace, None, seed)
        assert built is not None
        return built, trace.path, trace.sha256
    if ns.dataset is None:
        why = "the trace gives no input lengths" if trace is not None else "see qpsweep --help"
        raise ConfigError(f"--dataset is required ({why})")
    dataset = dataset_path(ns.dataset)  # as given, else the shipped file of that name
    prompts, sha256 = load_dataset(dataset)  # the hash of the very bytes read
    built = None if trace is None else trace_prompts(trace, prompts, seed)
    return built or prompts, str(dataset), sha256


def _parse_sweep(argv: list[str]) -> argparse.Namespace:
    """Flags over the named scenario over the named target over the built-in defaults."""
    pre = Parser(prog="qpsweep", add_help=False)
    pre.add_argument("--target")
    pre.add_argument("--scenario")
    pre.add_argument("--config", action="append", default=[])
    named, _ = pre.parse_known_args(argv)
    parser = sweep_parser()
    parser.set_defaults(**resolve(named.config, named.target, named.scenario))
    ns = parser.parse_args(argv)
    for flag in ("endpoint", "model", "dataset"):
        if flag == "dataset" and ns.arrival == "trace":
            continue  # a trace with token counts needs none: see _prompts
        if getattr(ns, flag) is None:
            raise ConfigError(
                f"--{flag} is required (or a --target/--scenario that sets it; see qpsweep --help)"
            )
    return ns


def _cmd_sweep(argv: list[str]) -> int:
    ns = _parse_sweep(argv)
    if ns.show_tokens:
        print("note: --show-tokens is deprecated; tokens/s is always shown", file=sys.stderr)
    trace = _trace(ns)
    target, scenario = _target(ns), _scenario(ns, trace)
    repeats = repeat_count(ns)
    files = RunFiles(
        _file_name("--output", ns.output),
        _file_name("--plot-output", ns.plot_output),
        not ns.no_plot,
        ns.csv,
    )
    prompts, dataset, dataset_sha256 = _prompts(ns, trace, scenario.seed)
    if scenario.sessions is not None:
        sessions_of(prompts, str(dataset))  # an empty session is bad input: before any traffic
    metrics = _metrics(ns)

    def sweep(
        model: str,
        results_dir: Path,
        name: str | None,
        notes: dict[str, Any],
        *,
        scenario: Scenario = scenario,
        check: bool = not ns.no_check,
    ) -> ModelRun:
        """Probe (when ``check``), then sweep ``model``; a failed probe sends nothing."""
        one = replace(target, model=model)
        if check:
            probe = probe_before_sweep(settings_for(one, scenario))
            failed = probe.first_failure
            if failed is not None:
                return ModelRun(mask(model), None, None, reason=f"{failed.name}: {failed.detail}")
            notes = {**notes, "check": probe.as_json()}
        result = run_sweep(
            one,
            scenario,
            prompts,
            dataset=dataset,
            dataset_sha256=dataset_sha256,
            trace=trace,
            argv=["qpsweep", *argv],
            results_dir=results_dir,
            files=files,
            metrics=metrics,
            notes=notes,
            name=name,
        )
        print(result.table)
        return ModelRun(mask(model), result.run_dir, result.analysis, result.interrupted)

    masker = Masker(secrets_of(target.api_key, target.headers, target.url))

    def mask(text: str) -> str:
        """A model name as it may be printed and written: secrets masked, UTF-8 safe."""
        return utf8_safe(masker.mask(text))

    if ns.all_models:
        return _sweep_all_models(ns, target, scenario, sweep, mask)
    plain_name("--name", ns.name)
    if repeats is not None:
        where = (Path(ns.results_dir), ns.name)
        return sweep_repeated(
            repeats, target.model, scenario, where, sweep, not ns.no_check, _probe_failed
        )
    run = sweep(target.model, Path(ns.results_dir), ns.name, {})
    if run.run_dir is None:
        _probe_failed(f"the endpoint cannot serve a sweep: {run.reason}")
        return 1
    print(f"Results: {run.run_dir}")
    return 130 if run.interrupted else 0


_NOTHING_SENT = "(nothing was sent; --no-check skips this probe)"


def _probe_failed(message: str) -> None:
    print(f"qpsweep: {message} {_NOTHING_SENT}", file=sys.stderr)


def _sweep_all_models(
    ns: argparse.Namespace,
    target: Target,
    scenario: Scenario,
    sweep: Callable[[str, Path, str | None, dict[str, Any]], ModelRun],
    mask: Callable[[str], str],
) -> int:
    """``--all-models``: the target's ``supported_models``, else what ``/v1/models`` lists.
    A listed name that holds a secret is sent as it is, but printed, stored and used as a
    directory name masked (``mask``)."""
    models = tuple(ns.supported_models or ())
    if not models:
        listed = asyncio.run(served_models(settings_for(target, scenario)))
        if not listed:
            raise ConfigError(
                "--all-models: the target has no supported_models and "
                f"{probe_urls(target.url)[1]} lists none"
            )
        models = listed
    shown = [mask(m) for m in models]
    print(f"--all-models: {len(models)} models: {', '.join(shown)}", file=sys.stderr)
    notes = {"all_models": shown}
    parent, runs, text = sweep_models(
        models, Path(ns.results_dir), lambda m, p, slug: sweep(m, p, slug, notes), mask
    )
    print(text, end="")
    print(f"Results: {parent}")
    if any(r.interrupted for r in runs):
        return 130
    return 0 if any(r.run_dir is not None for r in runs) else 1


def _metrics(ns: argparse.Namespace) -> MetricsPlan | None:
    """What ``--metrics-url`` scrapes (``--metrics-preset``, ``--metrics-gauge``), or ``None``
    without it."""
    if not ns.metrics_url:
        if ns.metrics_gauge:
            raise ConfigError("--metrics-gauge needs --metrics-url")
        if ns.metrics_preset != "auto":
            raise ConfigError("--metrics-preset needs --metrics-url")
        return None
    url = ns.metrics_url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--metrics-url: {url!r} must start with http:// or https://")
    checked_url("--metrics-url", url)
    return metrics_plan(url, ns.metrics_preset, tuple(ns.metrics_gauge))


def _masked(args: list[str], text: str) -> str:
    """``text`` masked of the secrets the command line gives (``argv_secrets``) and of the
    API key in the environment (``--api-key-env``'s variable, else ``OPENAI_API_KEY``)."""
    env = "OPENAI_API_KEY"
    for k, arg in enumerate(args):
        if arg == "--api-key-env" and k + 1 < len(args):
            env = args[k + 1]
        elif arg.startswith("--api-key-env="):
            env = arg.partition("=")[2]
    secrets = [*argv_secrets(args), os.environ.get(env, "")]
    return utf8_safe(Masker(secrets).mask(mask_url(text)))


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "check": main_check,
    "dataset": main_dataset,
    "demo": main_demo,
    "diff": main_diff,
    "export": main_export,
    "merge": main_merge,
    "report": main_report,
    "sim": main_sim,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises for operator errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(args[0], _cmd_sweep) if args else _cmd_sweep
    if command is not _cmd_sweep:
        args = args[1:]
    try:
        return command(args)
    except WriteFailed as err:  # the run's fault is the disk's, not the input's
        print(f"qpsweep: error: {_masked(args, str(err))}", file=sys.stderr)
        return 1
    except QpsweepError as err:
        print(f"qpsweep: error: {_masked(args, str(err))}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:  # Ctrl-C outside a sweep's own handling (e.g. while writing)
        print("qpsweep: interrupted", file=sys.stderr)
        return 130
