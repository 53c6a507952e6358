"""Validated run settings: the endpoint (``Target``) and the load (``Scenario``).

Everything a user types is checked here, once, and turned into frozen dataclasses; the
rest of qpsweep never sees raw strings.  Each parser raises ``ConfigError`` with one line
that names the flag and the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

from qpsweep.config.secrets import MASK, is_secret_header, mask_url, redact_header
from qpsweep.config.sessions import SessionPlan
from qpsweep.config.shards import Shard
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.errors import ConfigError

ARRIVALS = ("poisson", "constant", "gamma", "trace")
MAX_LEVEL_ARRIVALS = 10**8  # QPS x duration of one level: the schedule is held in memory
ALLOWED_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
CHAT_PATH = "/chat/completions"
SESSIONS_NOT_TRACE = (
    "--multi-turn: not with --arrival trace (a trace gives every request's arrival; a "
    "session's turns wait for its answers): give poisson, constant or gamma"
)
COMPLETIONS_PATH = "/completions"
APIS = ("chat", "completions")


@dataclass(frozen=True)
class Target:
    """Where requests go.  ``api_key`` is excluded from ``repr`` and never written anywhere."""

    url: str
    model: str
    headers: tuple[tuple[str, str], ...] = ()
    api_key: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    cost_per_hour: float | None = None  # --cost-per-hour: USD per hour (qpsweep.analysis.cost)
    api: str = "chat"  # --api: "chat" (/chat/completions) or "completions" (/completions)

    def __post_init__(self) -> None:
        """Headers and the key go into the request as written: a line break would end the
        header early (or add one), so it is refused, naming the header, never its value."""
        for name, value in self.headers:
            if _breaks_line(name) or _breaks_line(value):
                raise ConfigError(f"--header: {name!r} must be on one line (no line breaks)")
        if self.api_key is not None and _breaks_line(self.api_key):
            raise ConfigError("the API key contains a line break (a trailing newline from a file?)")


def _breaks_line(text: str) -> bool:
    return "\n" in text or "\r" in text or "\0" in text


@dataclass(frozen=True)
class Scenario:
    """What load to offer: one level per entry of ``qps`` (or chosen by ``auto``), each
    ``duration_s`` of arrivals, and the thresholds of the verdict and the stop rules."""

    qps: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0)
    duration_s: float = 60.0
    max_tokens: int = 512
    temperature: float = 0.7
    timeout_s: float = 300.0
    connect_timeout_s: float = 30.0
    seed: int = 0
    arrival: str = "poisson"
    burstiness: float = 1.0
    warmup: int = 0
    percentiles: tuple[float, ...] = (50.0, 95.0, 99.0)
    thresholds: Thresholds = field(default_factory=Thresholds)
    auto: AutoPlan | None = None  # --qps auto: levels chosen by the adaptive search
    rerun_client_limited: bool = True  # run a level where the generator fell behind once more
    retries: int = 0  # --retries: tries again on connection errors and 503 (see client)
    workers: int = 1  # --workers: processes that share each level's sends (see workers)
    shard: Shard | None = None  # --shard I/N --start-at: this process sends part I of N
    trace_rate_qps: float | None = None  # --arrival trace: the trace's own mean rate (1x)
    sessions: SessionPlan | None = None  # --multi-turn: conversations as sessions


def normalize_endpoint(raw: str, api: str = "chat") -> str:
    """Full chat-completions URL (``api="completions"``: completions URL) from a full URL or
    a base URL.

    ``http://h:8000`` and ``http://h:8000/v1`` become ``http://h:8000/v1/chat/completions``;
    a URL already ending in ``/chat/completions`` is kept; any other path is taken as a base
    (``http://h/openai`` -> ``http://h/openai/v1/chat/completions``).  For the completions API
    the path ends in ``/completions`` instead: a URL ending in ``/chat/completions`` is cut back
    to its base first, one ending in ``/completions`` is kept.
    """
    parts = checked_url("--endpoint", raw)
    path = parts.path.rstrip("/")
    if api not in APIS:
        raise ConfigError(f"--api: {api!r} is not one of {', '.join(APIS)}")
    suffix = CHAT_PATH if api == "chat" else COMPLETIONS_PATH
    if api == "completions" and path.endswith(CHAT_PATH):
        path = path.removesuffix(CHAT_PATH)
    if not path.endswith(suffix):
        path = path + suffix if path.endswith("/v1") else path + "/v1" + suffix
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def checked_url(flag: str, raw: str) -> SplitResult:
    """``raw`` split, once it is an http(s) URL with a host and, if given, a port in
    1..65535 (``http://[::1]:8000/v1``); else ``ConfigError`` naming ``flag``."""
    shown = mask_url(raw)
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError as err:  # an unclosed [IPv6 address, a port that is no number
        raise ConfigError(f"{flag}: {shown!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag}: {shown!r} needs an http:// or https:// scheme and a host")
    if port == 0:
        raise ConfigError(f"{flag}: {shown!r}: port 0 cannot be connected to")
    return parts


def _positive_float(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag}: {text!r} must be a positive number")
    return value


def parse_cost_per_hour(value: str | float | None) -> float | None:
    """``--cost-per-hour``: the endpoint's price in USD per hour, a finite number >= 0
    (``None`` when not given); a ``ConfigError`` naming the flag otherwise."""
    if value is None:
        return None
    try:
        cost = float(value)
    except ValueError:
        raise ConfigError(f"--cost-per-hour: {value!r} is not a number (USD per hour)") from None
    if not math.isfinite(cost) or cost < 0:
        raise ConfigError(
            f"--cost-per-hour: {value!r} must be a finite number of at least 0 (USD per hour)"
        )
    return cost


def parse_qps(text: str, per_x: float | None = None) -> tuple[float, ...]:
    """``"1,5,10"`` -> ``(1.0, 5.0, 10.0)``; every level must be a positive finite number.

    With ``per_x`` (``--arrival trace``: the trace's mean rate), a level may be a multiple of
    it: ``"1x,2.5x"`` -> ``(per_x, 2.5 * per_x)``, each rounded to 4 significant digits."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ConfigError(f"--qps: {text!r} must be a comma-separated list such as 1,5,10,20")
    out = []
    for item in items:
        if item.lower().endswith("x"):
            if per_x is None:
                raise ConfigError(
                    f"--qps: {item!r}: a multiple (Nx) of the trace's mean rate needs "
                    "--arrival trace --trace FILE"
                )
            out.append(float(f"{_positive_float('--qps', item[:-1]) * per_x:.4g}"))
        else:
            out.append(_positive_float("--qps", item))
    return tuple(out)


def parse_percentiles(text: str) -> tuple[float, ...]:
    """``"50,95,99"`` -> ``(50.0, 95.0, 99.0)``; each must be one of 50, 90, 95, 99, 99.9."""
    out: list[float] = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if value not in ALLOWED_PERCENTILES:
            allowed = ", ".join(f"{p:g}" for p in ALLOWED_PERCENTILES)
            raise ConfigError(f"--percentiles: {item.strip()!r} is not one of {allowed}")
        if value not in out:
            out.append(value)
    return tuple(sorted(out))


def parse_header(text: str) -> tuple[str, str]:
    """``"X-Team: infra"`` -> ``("X-Team", "infra")``; the name must be a non-empty token."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(ch.isspace() for ch in name):
        shown = MASK if is_secret_header(text) else redact_header(text)  # never a key
        raise ConfigError(f"--header: {shown!r} must look like 'Name: value'")
    return name, value.strip()


def plain_name(flag: str, name: str | None) -> str | None:
    """``name`` if it is ``None`` or a plain file or directory name (no path, not ``.`` or
    ``..``), else ``ConfigError`` naming ``flag``."""
    if name is not None and (Path(name).name != name or name in (".", "..")):
        raise ConfigError(f"{flag}: {name!r} must be a plain name, without a path")
    return name


def positive(flag: str, value: float) -> float:
    """``value`` if it is finite and > 0, else ``ConfigError`` naming ``flag``."""
    if not math.isfinite(value):
        raise ConfigError(f"{flag}: {value:g} must be a finite number greater than 0")
    if value <= 0:
        raise ConfigError(f"{flag}: {value:g} must be greater than 0")
    return value


def non_negative_int(flag: str, value: int) -> int:
    """``value`` if it is >= 0, else ``ConfigError`` naming ``flag``."""
    if value < 0:
        raise ConfigError(f"{flag}: {value} must be 0 or more")
    return value


def check_scenario(scenario: Scenario) -> Scenario:
    """Validate the numeric fields that argparse cannot; returns ``scenario`` unchanged."""
    positive("--duration", scenario.duration_s)
    positive("--timeout", scenario.timeout_s)
    positive("--connect-timeout", scenario.connect_timeout_s)
    positive("--burstiness", scenario.burstiness)
    if scenario.max_tokens < 1:
        raise ConfigError(f"--max-tokens: {scenario.max_tokens} must be at least 1")
    if not 0.0 <= scenario.temperature <= 2.0:
        raise ConfigError(f"--temperature: {scenario.temperature:g} must be between 0 and 2")
    if scenario.arrival not in ARRIVALS:
        raise ConfigError(f"--arrival: {scenario.arrival!r} is not one of {', '.join(ARRIVALS)}")
    if (scenario.arrival == "trace") != (scenario.trace_rate_qps is not None):
        raise ConfigError("--arrival trace and --trace FILE go together: give both or neither")
    non_negative_int("--seed", scenario.seed)
    for qps in scenario.qps:
        _bounded_level("--qps", qps, scenario.duration_s)
    non_negative_int("--warmup", scenario.warmup)
    non_negative_int("--retries", scenario.retries)
    if scenario.workers < 1:
        raise ConfigError(f"--workers: {scenario.workers} must be at least 1")
    if scenario.shard is not None and scenario.auto is not None:
        raise ConfigError(
            "--shard: --qps auto cannot be sharded (each shard would search on its own); "
            "give the levels, e.g. --qps 100,200,400"
        )
    if scenario.sessions is not None and scenario.arrival == "trace":
        raise ConfigError(SESSIONS_NOT_TRACE)
    if scenario.sessions is not None and (scenario.workers > 1 or scenario.shard is not None):
        flag = "--shard" if scenario.shard is not None else f"--workers {scenario.workers}"
        raise ConfigError(
            f"--multi-turn: not with {flag} (a session's next turn waits for its own answer, "
            "in one process); run it with one process"
        )
    t = scenario.thresholds
    if not 0.0 < t.headroom <= 1.0:
        raise ConfigError(f"--headroom: {t.headroom:g} must be in (0, 1], e.g. 0.75")
    if not 0.0 <= t.max_error_rate < 1.0:
        raise ConfigError(f"--max-error-rate: {t.max_error_rate:g} must be in [0, 1), e.g. 0.05")
    if t.max_p95_latency_s is not None:
        positive("--max-p95-latency", t.max_p95_latency_s)
    if scenario.auto is not None:
        _check_auto(scenario.auto, scenario.duration_s)
    return scenario


def _bounded_level(flag: str, qps: float, duration_s: float) -> None:
    """``ConfigError`` when a level of ``qps`` for ``duration_s`` would schedule more than
    ``MAX_LEVEL_ARRIVALS`` requests."""
    if qps * duration_s > MAX_LEVEL_ARRIVALS:
        raise ConfigError(
            f"{flag}: {qps:g} QPS for --duration {duration_s:g} s is {qps * duration_s:.3g} "
            f"requests in one level; at most {MAX_LEVEL_ARRIVALS:.0e}"
        )


def _check_auto(plan: AutoPlan, duration_s: float) -> None:
    positive("--start-qps", plan.start_qps)
    positive("--max-qps", plan.max_qps)
    positive("--budget", plan.budget_s)
    positive("--precision", plan.precision)
    _bounded_level("--max-qps", plan.max_qps, duration_s)
    if plan.max_qps <= plan.start_qps:
        raise ConfigError(
            f"--max-qps: {plan.max_qps:g} must be above --start-qps {plan.start_qps:g}"
        )
    if plan.budget_s < 2 * duration_s:
        raise ConfigError(
            f"--budget: {plan.budget_s:g} s cannot fit the two levels of --duration "
            f"{duration_s:g} s that --qps auto needs at the least"
        )
