"""``qpsweep check ENDPOINT_OR_TARGET``, and the same probe before a sweep.

``main_check(argv)`` prints one line per check (see ``probe``) and a last line saying whether
the endpoint can serve a sweep; exit code 0 when it can, 1 when it cannot, 2 for bad input.
``probe_before_sweep(settings, console)`` runs the probe for ``qpsweep`` itself and prints the
same lines, prefixed ``check:``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

from qpsweep.cli.parser import Parser
from qpsweep.config.files import resolve
from qpsweep.config.scenario import (
    APIS,
    Scenario,
    Target,
    normalize_endpoint,
    parse_header,
    positive,
)
from qpsweep.config.secrets import Masker, mask_url
from qpsweep.http.client import ClientSettings, settings_for
from qpsweep.http.probe import ProbeResult, run_probe

DEFAULT_TIMEOUT_S = 60.0
EXAMPLE = """\
examples:
  qpsweep check http://127.0.0.1:8000 --model my-model
  qpsweep check vllm                  (a target of config/targets.yaml)

exit codes: 0 the endpoint can serve a sweep, 1 it cannot, 2 bad input
"""


def _settings(argv: list[str]) -> ClientSettings:
    p = Parser(
        prog="qpsweep check",
        description="Probe an endpoint before a sweep: GET /health, GET /v1/models (is the "
        "model served?), and one streamed completion on the API the sweep will use (TTFT, "
        "tokens, usage, reasoning).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "where",
        metavar="ENDPOINT_OR_TARGET",
        help="a URL (chat completions or base URL) or a target name from the YAML files",
    )
    p.add_argument("--model", help="model to check (default: the target's, or the first listed)")
    p.add_argument(
        "--api",
        choices=APIS,
        help="probe the API the sweep will use: chat (/v1/chat/completions, the default) or "
        "completions (/v1/completions)",
    )
    p.add_argument("--api-key-env", metavar="NAME", help="variable holding the API key")
    p.add_argument("-H", "--header", action="append", metavar="K:V", help="extra HTTP header")
    p.add_argument("--timeout", type=float, help="deadline of the streamed completion (s)")
    p.add_argument("--no-verify-tls", action="store_true", default=None)
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML file")
    ns = p.parse_args(argv)
    is_url = "://" in ns.where
    named = {} if is_url else resolve(ns.config, ns.where, None)
    given = {k: v for k, v in vars(ns).items() if v is not None}
    values = {**named, **given}
    endpoint = ns.where if is_url else named["endpoint"]
    key_env = values.get("api_key_env", "OPENAI_API_KEY")
    api = values.get("api", "chat")
    target = Target(
        url=normalize_endpoint(endpoint, api),
        api=api,
        model=values.get("model", ""),
        headers=tuple(parse_header(h) for h in [*named.get("header", []), *(ns.header or [])]),
        api_key=os.environ.get(key_env) or None,
        verify_tls=not values.get("no_verify_tls", False),
    )
    timeout_s = positive("--timeout", values.get("timeout", DEFAULT_TIMEOUT_S))
    scenario = Scenario(timeout_s=timeout_s, connect_timeout_s=min(10.0, timeout_s))
    return settings_for(target, scenario)


def main_check(argv: list[str]) -> int:
    """``qpsweep check``: the exit code (0 can serve, 1 cannot); bad input raises."""
    settings = _settings(argv)
    mask = Masker(settings.secrets).mask
    url = mask(mask_url(settings.url))
    model = f" (model {mask(settings.model)})" if settings.model else ""
    print(f"checking {url}{model}")
    result = asyncio.run(run_probe(settings))
    for check in result.checks:
        print(check.line())
    failed = result.first_failure
    if failed is None:
        print(f"OK: {url} can serve a sweep of model {mask(result.model or '')!r}")
        return 0
    print(f"FAILED: {url} cannot serve a sweep ({failed.name}: {failed.detail})")
    return 1


def probe_before_sweep(settings: ClientSettings, console: TextIO | None = None) -> ProbeResult:
    """Run the probe and print its lines as ``check: ...`` on ``console`` (stderr)."""
    console = console or sys.stderr
    print(
        f"check: probing {mask_url(settings.url)} (one streamed completion, up to "
        f"{settings.timeout_s:g} s; --no-check skips)",
        file=console,
    )
    result = asyncio.run(run_probe(settings))
    for check in result.checks:
        print(f"check: {check.line()}", file=console)
    return result
