"""A run's ``metadata.json``, typed: ``RunMetadata`` and its ``LevelEntry`` per level.

The one contract every stage shares: the sweep writes it (``new_metadata``, then
``dataclasses.replace`` as the run goes, ``write_metadata`` after each change), and
``qpsweep report``, ``merge``, ``diff``, the HTML and the plots read it (``read_metadata``).
``RunMetadata.to_json`` / ``from_json`` are the only places that know its keys: every field is
written, ``null`` when unset; a key this version does not know (``--notes`` such as the demo's
``simulator``, ``check``, ``all_models``) is kept in ``notes`` and written back as it was.
``from_json`` reads older runs: a missing key takes its field's default.  ``schema_version``
(``run_files.SCHEMA_VERSION``) covers this file and the run's ``requests.jsonl``: a file
without one is version 1, and ``read_metadata`` refuses a version this qpsweep does not know.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from qpsweep._version import __version__
from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.secrets import (
    MASK,
    Masker,
    is_secret_header,
    redact_argv,
    secrets_of,
    utf8_safe,
)
from qpsweep.config.sessions import SessionPlan
from qpsweep.config.slo import Slo
from qpsweep.config.thresholds import AutoPlan, Thresholds
from qpsweep.errors import RunDirError
from qpsweep.records.run_files import (
    DEFAULT_PLOT_FILE,
    DEFAULT_RESULTS_FILE,
    METADATA_FILE,
    SCHEMA_VERSION,
    RunFiles,
    write_json,
)

METRIC_FORMULAS = {
    "ttft_s": "first content chunk arrival - actual send",
    "e2e_s": "end of response - actual send",
    "itl_ms": "gap between consecutive content chunks",
    "tpot_ms": "(e2e - ttft) / (output_tokens - 1)",
    "tokens_per_sec": "output_tokens / e2e, per request",
    "send_lag_ms": "actual send - scheduled send (with --multi-turn a turn's scheduled send is "
    "its release: the previous answer's end + think time)",
    "actual_qps": "requests sent / arrival window",
    "achieved_qps": "successful requests / (level start to last response)",
    "output_tokens": "usage.completion_tokens when the server sends usage, else content chunks",
}
Status = Literal["running", "complete", "interrupted"]


@dataclass(frozen=True)
class ShardInfo:
    """``--shard I/N --start-at EPOCH`` as recorded: part ``index`` of ``count``."""

    index: int
    count: int
    start_at: float


@dataclass(frozen=True)
class ClockInfo:
    """This machine's clock minus the server's (``offset_s`` within ``± uncertainty_s``),
    measured from the Date header of ``url``."""

    offset_s: float
    uncertainty_s: float
    url: str


@dataclass(frozen=True)
class Warmup:
    """The ``--warmup`` (or ``--qps auto`` probe) requests: not part of any level."""

    sent: int
    ok: int
    e2e_p50_s: float | None


@dataclass(frozen=True)
class TraceInfo:
    """``--arrival trace --trace FILE`` as replayed: the file, the SHA-256 of the bytes read,
    its format (``mooncake``, ``azure``, ``plain``), its requests, span and mean rate
    ``(requests - 1) / span_s`` (the rate of ``1x``), and which token counts it gave."""

    path: str
    sha256: str
    format: str
    requests: int
    span_s: float
    mean_rate_qps: float
    input_tokens: bool = False
    output_tokens: bool = False
    hash_ids: bool = False


@dataclass(frozen=True)
class SessionCounts:
    """A ``--multi-turn`` level's sessions: started at ``session_qps`` (the start rate),
    ``started`` of them sent their first turn, ``completed`` had every turn answered,
    ``failed`` ended at a failed turn; ``not_sent`` counts the turns never sent, by reason:
    ``failed_turn`` (an earlier turn of the session failed), ``window_closed`` (the turn
    would have been released after the level's arrival window), ``interrupted`` (the run
    was stopped first)."""

    session_qps: float
    started: int = 0
    completed: int = 0
    failed: int = 0
    not_sent: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionCounts:
        """The ``sessions`` object of a level entry."""
        values = _known(cls, data)
        values["not_sent"] = {str(k): int(v) for k, v in (values.get("not_sent") or {}).items()}
        return cls(**values)


@dataclass(frozen=True)
class LevelEntry:
    """One level as the sweep ran it.  ``started_at``: Unix seconds; ``arrival_window_s`` and
    ``n_sent`` are ``None`` until the level's arrivals end; ``completed`` is false for a level
    cut short; ``n_sent_by_worker`` only with ``--workers``; ``trace_passes`` only with
    ``--arrival trace``: how many passes of the trace the level's schedule makes (0.25: its
    first quarter; over 1: it wrapped around); ``sessions`` only with ``--multi-turn``
    (then ``n_scheduled`` is the number of turns released in the window: a turn is
    scheduled when the answer before it ends, not up front)."""

    index: int
    qps_target: float
    duration_s: float = 0.0
    n_scheduled: int = 0
    started_at: float = 0.0
    arrival_window_s: float | None = None
    n_sent: int | None = None
    completed: bool = False
    n_sent_by_worker: tuple[int, ...] | None = None
    trace_passes: float | None = None
    sessions: SessionCounts | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as ``metadata.json``'s ``levels`` holds it."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LevelEntry:
        """An entry of ``levels``; ``n_sent_by_worker`` becomes a tuple."""
        values = _known(cls, data)
        if values.get("n_sent_by_worker") is not None:
            values["n_sent_by_worker"] = tuple(int(n) for n in values["n_sent_by_worker"])
        if values.get("sessions") is not None:
            values["sessions"] = SessionCounts.from_json(values["sessions"])
        return cls(**values)


@dataclass(frozen=True)
class RunMetadata:
    """``metadata.json``: the seed tool's fields first (``timestamp`` .. ``show_tokens``), then
    qpsweep's settings, environment, state and per-level entries, then what the run learnt.
    ``cost_per_hour``: the endpoint's price in USD per hour (``--cost-per-hour``), ``None``
    when not priced."""

    timestamp: str
    endpoint: str
    model: str
    dataset: str
    qps_levels: tuple[float, ...] | Literal["auto"]
    duration: float = 60.0
    max_tokens: int = 512
    temperature: float = 0.7
    percentiles: tuple[float, ...] = (50.0, 95.0, 99.0)
    show_tokens: bool = True
    schema_version: int = 1  # of this file and requests.jsonl; absent in a file: 1
    qpsweep_version: str = ""
    argv: tuple[str, ...] = ()
    dataset_sha256: str = ""
    dataset_samples: int = 0
    seed: int = 0
    arrival: str = "poisson"
    burstiness: float = 1.0
    timeout_s: float = 300.0
    connect_timeout_s: float = 30.0
    retries: int = 0
    workers: int = 1
    shard: ShardInfo | None = None
    trace: TraceInfo | None = None
    multi_turn: SessionPlan | None = None
    warmup_requests: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key_used: bool = False
    verify_tls: bool = True
    results_file: str = DEFAULT_RESULTS_FILE
    plot_file: str = DEFAULT_PLOT_FILE
    plot: bool = True
    html: bool = True
    csv: bool = False
    python: str = ""
    platform: str = ""
    metric_formulas: Mapping[str, str] = field(default_factory=dict)
    thresholds: Thresholds = Thresholds()
    adaptive: AutoPlan | None = None
    cost_per_hour: float | None = None
    status: Status = "running"
    interrupted: bool = False
    levels: tuple[LevelEntry, ...] = ()
    clock: ClockInfo | None = None
    metrics_url: str | None = None
    metrics_gauges: tuple[str, ...] | None = None
    metrics_preset: str | None = None
    warmup: Warmup | None = None
    stopped_early: str | None = None
    include_usage: bool | None = None
    finished_at: str | None = None
    merged_from: tuple[Mapping[str, Any], ...] | None = None
    merge_problems: tuple[str, ...] = ()
    notes: Mapping[str, Any] = field(default_factory=dict)

    def with_level(self, entry: LevelEntry) -> RunMetadata:
        """This metadata with ``entry`` in place of the level of its index (or appended)."""
        kept = [lv for lv in self.levels if lv.index != entry.index]
        return replace(self, levels=tuple(sorted([*kept, entry], key=lambda lv: lv.index)))

    def to_json(self) -> dict[str, Any]:
        """Every field, in order, then the ``notes`` keys."""
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "notes"}
        return out | {k: v for k, v in self.notes.items() if k not in out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunMetadata:
        """Read ``metadata.json``'s object; ``TypeError``/``ValueError``/``KeyError`` when a
        field has the wrong shape (``read_metadata`` turns those into one line)."""
        values = _known(cls, data)
        for name, parse in _PARSE.items():
            if values.get(name) is not None:
                values[name] = parse(values[name])
        notes = {k: v for k, v in data.items() if k not in _FIELDS}
        return cls(**values, notes=notes)


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON's dicts and lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _scalar(kind: str, value: Any) -> Any:
    """``value`` checked against a field's annotation when it is a plain ``int``, ``float``,
    ``str`` or ``bool`` (optionally ``| None``); other kinds pass through (``_PARSE``)."""
    base = kind.removesuffix(" | None")
    if value is None:
        if base != kind or base not in _SCALARS:
            return value
        raise ValueError("null where a value is needed")
    if base not in _SCALARS:
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if base == "int" and number and float(value).is_integer():
        return int(value)
    if base == "float" and number:
        return float(value)
    if (base == "str" and isinstance(value, str)) or (base == "bool" and isinstance(value, bool)):
        return value
    raise TypeError(f"{value!r} is not {'an' if base == 'int' else 'a'} {base}")


_SCALARS = {"int", "float", "str", "bool"}


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls``, plain values checked by ``_scalar``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{data!r} is not an object")
    kinds = {f.name: str(f.type) for f in fields(cls) if f.name != "notes"}
    out = {}
    for key, value in data.items():
        if key in kinds:
            try:
                out[key] = _scalar(kinds[key], value)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{key}: {err}") from None
    return out


def _thresholds(data: Mapping[str, Any]) -> Thresholds:
    values = _known(Thresholds, data)
    values["slos"] = tuple(Slo(**slo) for slo in values.get("slos") or ())
    return Thresholds(**values)


_PARSE: dict[str, Callable[[Any], Any]] = {
    "qps_levels": lambda v: v if v == "auto" else tuple(float(q) for q in v),
    "percentiles": lambda v: tuple(float(p) for p in v),
    "argv": lambda v: tuple(str(a) for a in v),
    "shard": lambda v: ShardInfo(**_known(ShardInfo, v)),
    "trace": lambda v: TraceInfo(**_known(TraceInfo, v)),
    "multi_turn": lambda v: SessionPlan(**_known(SessionPlan, v)),
    "headers": lambda v: {str(k): str(x) for k, x in v.items()},
    "metric_formulas": dict,
    "thresholds": _thresholds,
    "adaptive": lambda v: AutoPlan(**_known(AutoPlan, v)),
    "levels": lambda v: tuple(LevelEntry.from_json(lv) for lv in v),
    "clock": lambda v: ClockInfo(**_known(ClockInfo, v)),
    "metrics_gauges": lambda v: tuple(str(g) for g in v),
    "warmup": lambda v: Warmup(**_known(Warmup, v)),
    "merged_from": lambda v: tuple(dict(m) for m in v),
    "merge_problems": lambda v: tuple(str(m) for m in v),
}
_FIELDS = {f.name for f in fields(RunMetadata)}


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _shard(scenario: Scenario) -> ShardInfo | None:
    shard = scenario.shard
    return None if shard is None else ShardInfo(shard.index, shard.count, shard.start_at_epoch)


def new_metadata(
    target: Target,
    scenario: Scenario,
    dataset: str,
    dataset_sha256: str,
    n_samples: int,
    argv: list[str],
    files: RunFiles,
    notes: Mapping[str, Any] | None = None,
    trace: TraceInfo | None = None,
) -> RunMetadata:
    """The metadata of a run about to start: its settings and environment, no level yet.
    Every text in it is masked of the target's secrets (``qpsweep.config.secrets``): the
    command line, the model (a name a server listed), the dataset path and ``notes``."""
    secrets = secrets_of(target.api_key, target.headers, target.url)
    masker = Masker(secrets)
    return RunMetadata(
        timestamp=datetime.now().isoformat(),
        endpoint=masker.mask(_public_url(target.url)),
        model=utf8_safe(masker.mask(target.model)),
        dataset=utf8_safe(masker.mask(dataset)),
        qps_levels="auto" if scenario.auto else tuple(scenario.qps),
        duration=scenario.duration_s,
        max_tokens=scenario.max_tokens,
        temperature=scenario.temperature,
        percentiles=tuple(scenario.percentiles),
        schema_version=SCHEMA_VERSION,
        qpsweep_version=__version__,
        argv=tuple(redact_argv(argv, secrets)),
        dataset_sha256=dataset_sha256,
        dataset_samples=n_samples,
        seed=scenario.seed,
        arrival=scenario.arrival,
        burstiness=scenario.burstiness,
        timeout_s=scenario.timeout_s,
        connect_timeout_s=scenario.connect_timeout_s,
        retries=scenario.retries,
        workers=scenario.workers,
        shard=_shard(scenario),
        trace=None if trace is None else replace(trace, path=utf8_safe(masker.mask(trace.path))),
        multi_turn=scenario.sessions,
        warmup_requests=scenario.warmup,
        headers={k: (MASK if is_secret_header(k) else v) for k, v in target.headers},
        api_key_used=target.api_key is not None,
        verify_tls=target.verify_tls,
        results_file=files.results,
        plot_file=files.plot,
        plot=files.want_plot,
        csv=files.csv,
        python=sys.version.split()[0],
        platform=platform.platform(),
        metric_formulas=METRIC_FORMULAS,
        thresholds=scenario.thresholds,
        adaptive=scenario.auto,
        cost_per_hour=target.cost_per_hour,
        notes=masker.mask_json(dict(notes or {})),  # type: ignore[arg-type]
    )


def write_metadata(run_dir: Path, metadata: RunMetadata) -> None:
    """Write ``run_dir/metadata.json`` atomically."""
    write_json(run_dir / METADATA_FILE, metadata.to_json())


def check_schema_version(path: Path, version: Any) -> None:
    """``RunDirError`` naming ``path`` unless ``version`` is a schema version this qpsweep
    reads: a whole number from 1 to ``SCHEMA_VERSION``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RunDirError(f"{path}: schema_version {version!r} is not a qpsweep schema version")
    if version > SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: schema_version {version} is newer than this qpsweep {__version__} reads "
            f"(up to {SCHEMA_VERSION}); upgrade qpsweep to read this run"
        )


def read_metadata(run_dir: Path) -> RunMetadata:
    """``metadata.json`` of ``run_dir``; ``RunDirError`` when it is not a qpsweep run or a
    field cannot be read."""
    path = run_dir / METADATA_FILE
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = f"{run_dir}: not a qpsweep result directory (no {METADATA_FILE})"
        raise RunDirError(message) from None
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, dict) or "qps_levels" not in data:
        raise RunDirError(f"{path}: not qpsweep metadata (no qps_levels)")
    check_schema_version(path, data.get("schema_version", 1))
    try:
        return RunMetadata.from_json(data)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise RunDirError(f"{path}: a field has the wrong shape ({err})") from None
