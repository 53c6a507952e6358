"""A run's ``metadata.json``: what was asked, where, and what each level did."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from qpsweep._version import __version__
from qpsweep.config.scenario import Scenario, Target
from qpsweep.config.secrets import MASK, is_secret_header, redact_argv
from qpsweep.config.slo import Slo
from qpsweep.config.thresholds import Thresholds
from qpsweep.errors import RunDirError
from qpsweep.records.run_files import METADATA_FILE, RunFiles

METRIC_FORMULAS = {
    "ttft_s": "first content chunk arrival - actual send",
    "e2e_s": "end of response - actual send",
    "itl_ms": "gap between consecutive content chunks",
    "tpot_ms": "(e2e - ttft) / (output_tokens - 1)",
    "tokens_per_sec": "output_tokens / e2e, per request",
    "send_lag_ms": "actual send - scheduled send",
    "actual_qps": "requests sent / arrival window",
    "achieved_qps": "successful requests / (level start to last response)",
    "output_tokens": "usage.completion_tokens when the server sends usage, else content chunks",
}


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _shard_json(scenario: Scenario) -> dict[str, Any] | None:
    shard = scenario.shard
    if shard is None:
        return None
    return {"index": shard.index, "count": shard.count, "start_at": shard.start_at_epoch}


def new_metadata(
    target: Target,
    scenario: Scenario,
    dataset: str,
    dataset_sha256: str,
    n_samples: int,
    argv: list[str],
    files: RunFiles,
) -> dict[str, Any]:
    """The initial ``metadata.json``: the seed's fields first, then qpsweep's."""
    return {
        "timestamp": datetime.now().isoformat(),
        "endpoint": _public_url(target.url),
        "model": target.model,
        "dataset": dataset,
        "qps_levels": "auto" if scenario.auto else list(scenario.qps),
        "duration": scenario.duration_s,
        "max_tokens": scenario.max_tokens,
        "temperature": scenario.temperature,
        "percentiles": list(scenario.percentiles),
        "show_tokens": True,
        "qpsweep_version": __version__,
        "argv": redact_argv(argv),
        "dataset_sha256": dataset_sha256,
        "dataset_samples": n_samples,
        "seed": scenario.seed,
        "arrival": scenario.arrival,
        "burstiness": scenario.burstiness,
        "timeout_s": scenario.timeout_s,
        "connect_timeout_s": scenario.connect_timeout_s,
        "retries": scenario.retries,
        "workers": scenario.workers,
        "shard": _shard_json(scenario),
        "warmup_requests": scenario.warmup,
        "headers": {k: (MASK if is_secret_header(k) else v) for k, v in target.headers},
        "api_key_used": target.api_key is not None,
        "verify_tls": target.verify_tls,
        "results_file": files.results,
        "plot_file": files.plot,
        "plot": files.want_plot,
        "html": True,
        "csv": files.csv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "metric_formulas": METRIC_FORMULAS,
        "thresholds": asdict(scenario.thresholds),
        "adaptive": asdict(scenario.auto) if scenario.auto else None,
        "status": "running",
        "interrupted": False,
        "levels": [],
    }


def read_metadata(run_dir: Path) -> dict[str, Any]:
    """``metadata.json`` of ``run_dir``; ``RunDirError`` when it is not a qpsweep run."""
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
    return data


def thresholds_of(metadata: dict[str, Any]) -> Thresholds:
    """The verdict's thresholds as the run recorded them (defaults for older runs)."""
    known = {f.name for f in fields(Thresholds)}
    values = {k: v for k, v in (metadata.get("thresholds") or {}).items() if k in known}
    values["slos"] = tuple(Slo(**slo) for slo in values.get("slos") or ())
    return Thresholds(**values)
