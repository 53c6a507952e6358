"""A run as llm-d-benchmark "Benchmark Report" documents, schema version 0.2 (pure).

llm-d-benchmark's benchmark report (``llmdbenchmark/analysis/benchmark_report``, version
"0.2") is one document per load point: ``version``, ``run``, ``scenario`` (the stack and the
load) and ``results.request_performance.aggregate`` (requests, latency, throughput), each
figure a ``Statistics`` object with ``units``.  ``benchmark_reports(analysis)`` returns one such
document per level, in the analysis' order; ``report_name`` names its file the way llm-d's
tools look for reports (``benchmark_report_v0.2,_*.yaml``); ``write_reports`` writes them, as
YAML or (``as_json``) JSON.  Only fields of the published
schema are written, and a field is left out (never ``null``) when the run cannot fill it.

Mapping (per level; "ok" = successful requests, as in ``qpsweep.analysis.summary``):

* ``run.uid``: a hash of the run's start, endpoint, model and the level index (the same on
  every export); ``run.eid``: the same without the level, common to a run's reports;
  ``run.time``: the level's start (``metadata.json``), its end (its last response) and the
  duration between them (ISO-8601); ``run.description`` and ``run.keywords``: the target
  QPS, the level's state and the verdict.
* ``scenario.stack``: one ``generic`` component, the endpoint (tool
  ``openai-compatible-endpoint``, version ``unknown``: qpsweep does not see the server's
  software), with the model name; ``scenario.load``: tool ``qpsweep`` and its version,
  ``parallelism`` = ``--workers``, ``source`` ``sampled`` (prompts from the dataset file),
  ``stage`` = the level index, ``input_seq_len`` (``distribution: other``; mean, min, max of
  the ok requests' input tokens; the load is left out when the server reported none),
  ``rate_qps`` = the target QPS; ``native.args`` = the command line (secrets redacted), and
  ``native.config`` = the arrival process, seed, duration, ``max_tokens`` and dataset.
* ``results.request_performance.aggregate.requests``: ``total`` = sent, ``failures`` =
  failed but not interrupted, ``incomplete`` = interrupted (Ctrl-C), ``input_length`` and
  ``output_length`` (count) over the ok requests.
* ``latency``: ``time_to_first_token`` (s) = first content chunk - send;
  ``request_latency`` (s) = end - send; ``time_per_output_token`` (ms/token) =
  (E2E - TTFT) / (output tokens - 1); ``inter_token_latency`` (ms/token) = the gaps between
  consecutive content chunks, pooled (a chunk may carry more than one token);
  ``normalized_time_per_output_token`` (ms/token) = E2E / output tokens.  All over ok
  requests, with mean, stddev (n - 1), min, p0.1 ... p99.9 and max (numpy's linear
  percentiles, as in qpsweep's own tables).
* ``throughput`` (aggregate rates, given as ``mean``): ``request_rate`` (queries/s) =
  qpsweep's achieved QPS (ok / time to the last response); ``output_token_rate`` (tokens/s)
  = ok output tokens / the same time; ``input_token_rate`` and ``total_token_rate`` likewise
  (when input tokens are known).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qpsweep._version import __version__
from qpsweep.analysis.summary import LevelSummary
from qpsweep.errors import RunDirError
from qpsweep.output.rebuild import Analysis
from qpsweep.records.table import NO_INT, RecordTable

VERSION = "0.2"
COMPONENT_SCHEMA_VERSION = "0.0.1"
LOAD_SCHEMA_VERSION = "0.0.1"
PERCENTILE_KEYS = (
    ("p0p1", 0.1),
    ("p1", 1.0),
    ("p5", 5.0),
    ("p10", 10.0),
    ("p25", 25.0),
    ("p50", 50.0),
    ("p75", 75.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99p9", 99.9),
)
DIGITS = 6


def _rnd(value: float) -> float:
    return round(float(value), DIGITS)


def statistics(values: np.ndarray, units: str) -> dict[str, Any] | None:
    """A ``Statistics`` object of ``values`` (finite ones) in ``units``; ``None`` when empty."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    out: dict[str, Any] = {
        "units": units,
        "mean": _rnd(arr.mean()),
        "stddev": _rnd(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": _rnd(arr.min()),
    }
    points = np.percentile(arr, [p for _, p in PERCENTILE_KEYS])
    out.update({key: _rnd(v) for (key, _), v in zip(PERCENTILE_KEYS, points, strict=True)})
    out["max"] = _rnd(arr.max())
    return out


def _rate(value: float, units: str) -> dict[str, Any]:
    return {"units": units, "mean": _rnd(value)}


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]


def _iso(epoch_s: float) -> str:
    stamp = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pruned(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its ``None`` values (the schema's optional fields are omitted)."""
    return {k: v for k, v in data.items() if v is not None}


def _argv_args(argv: Sequence[str]) -> dict[str, Any]:
    """The command line's flags as a mapping (llm-d's ``native.args``): ``--flag value`` and
    ``--flag=value`` -> value, a flag without a value -> ``None``, a repeated flag -> the list
    of its values, anything else under ``_positional``."""
    args: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key not in args:
            args[key] = value
        elif isinstance(args[key], list):
            args[key].append(value)
        else:
            args[key] = [args[key], value]

    rest = list(argv[1:])
    i = 0
    while i < len(rest):
        item = rest[i]
        if item.startswith("-") and "=" in item:
            key, _, value = item.partition("=")
            put(key, value)
        elif item.startswith("-"):
            takes = i + 1 < len(rest) and not rest[i + 1].startswith("--")
            put(item, rest[i + 1] if takes else None)
            i += 1 if takes else 0
        else:
            args.setdefault("_positional", []).append(item)
        i += 1
    return args


def _tokens(column: np.ndarray) -> np.ndarray:
    return np.asarray(column[column != NO_INT], dtype=float)


def _requests(t: RecordTable) -> dict[str, Any]:
    ok = t.ok
    interrupted = int(t.error_kind.equals("interrupted").sum()) if len(t) else 0
    return _pruned(
        {
            "total": len(t),
            "failures": len(t) - int(ok.sum()) - interrupted,
            "incomplete": interrupted,
            "input_length": statistics(_tokens(t.input_tokens[ok]), "count"),
            "output_length": statistics(t.output_tokens[ok].astype(float), "count"),
        }
    )


def _latency(t: RecordTable) -> dict[str, Any]:
    ok = t.ok
    first = ok & ~np.isnan(t.first_token_s)
    multi = first & (t.output_tokens > 1)
    some = ok & (t.output_tokens > 0)
    tpot_ms = (t.done_s[multi] - t.first_token_s[multi]) / (t.output_tokens[multi] - 1) * 1e3
    ntpot_ms = (t.done_s[some] - t.sent_s[some]) / t.output_tokens[some] * 1e3
    return _pruned(
        {
            "time_to_first_token": statistics(t.first_token_s[first] - t.sent_s[first], "s"),
            "normalized_time_per_output_token": statistics(ntpot_ms, "ms/token"),
            "time_per_output_token": statistics(tpot_ms, "ms/token"),
            "inter_token_latency": statistics(t.itl_ms(), "ms/token"),
            "request_latency": statistics(t.done_s[ok] - t.sent_s[ok], "s"),
        }
    )


def _throughput(s: LevelSummary, t: RecordTable) -> dict[str, Any]:
    end_s = float(t.done_s.max()) if len(t) else 0.0
    out = {
        "output_token_rate": _rate(s.output_tok_per_s, "tokens/s"),
        "request_rate": _rate(s.achieved_qps, "queries/s"),
    }
    inputs = _tokens(t.input_tokens[t.ok])
    if inputs.size and end_s > 0:
        input_rate = float(inputs.sum()) / end_s
        out["input_token_rate"] = _rate(input_rate, "tokens/s")
        out["total_token_rate"] = _rate(input_rate + s.output_tok_per_s, "tokens/s")
    return out


def _load(analysis: Analysis, s: LevelSummary, t: RecordTable) -> dict[str, Any] | None:
    """``scenario.load``; ``None`` when no input length is known (the schema needs one)."""
    meta = analysis.metadata
    inputs = _tokens(t.input_tokens[t.ok])
    if not inputs.size:
        return None
    config = {
        "qps_target": s.qps_target,
        "arrival": meta.arrival,
        "burstiness": meta.burstiness,
        "seed": meta.seed,
        "duration_s": s.duration_s,
        "max_tokens": meta.max_tokens,
        "temperature": meta.temperature,
        "dataset": meta.dataset,
        "dataset_sha256": meta.dataset_sha256,
    }
    standardized = {
        "tool": "qpsweep",
        "tool_version": meta.qpsweep_version or __version__,
        "parallelism": max(1, meta.workers),
        "source": "sampled",
        "stage": s.index,
        "input_seq_len": {
            "distribution": "other",
            "value": _rnd(inputs.mean()),
            "min": int(inputs.min()),
            "max": max(1, int(inputs.max())),
        },
        "rate_qps": s.qps_target,
    }
    return {
        "metadata": {
            "schema_version": LOAD_SCHEMA_VERSION,
            "cfg_id": _hash(*sorted(config.items())),
            "description": f"qpsweep open-loop {meta.arrival} arrivals at {s.qps_target:g} QPS",
        },
        "standardized": standardized,
        "native": {"args": _argv_args(meta.argv), "config": config},
    }


def _stack(analysis: Analysis) -> list[dict[str, Any]]:
    meta = analysis.metadata
    config = {"endpoint": meta.endpoint, "model": meta.model}
    return [
        {
            "metadata": {
                "schema_version": COMPONENT_SCHEMA_VERSION,
                "label": "endpoint",
                "cfg_id": _hash(meta.endpoint, meta.model),
                "description": "the OpenAI-compatible endpoint qpsweep measured",
            },
            "standardized": {
                "kind": "generic",
                "tool": "openai-compatible-endpoint",
                "tool_version": "unknown",
                "model": {"name": meta.model},
            },
            "native": {"config": config},
        }
    ]


def _run(analysis: Analysis, s: LevelSummary, t: RecordTable, state: str) -> dict[str, Any]:
    meta = analysis.metadata
    v = analysis.verdict
    started = {lv.index: lv.started_at for lv in meta.levels}.get(s.index, 0.0)
    time = None
    if started > 0:
        end_s = float(t.done_s.max()) if len(t) else 0.0
        time = {
            "start": _iso(started),
            "end": _iso(started + end_s),
            "duration": f"PT{end_s:.3f}S",
        }
    rec = "-" if v.recommended_qps is None else f"{v.recommended_qps:.3g}"
    sat = "-" if v.saturation_qps is None else f"{v.saturation_qps:.3g}"
    return _pruned(
        {
            "uid": _hash(meta.timestamp, meta.endpoint, meta.model, s.index),
            "eid": _hash(meta.timestamp, meta.endpoint, meta.model),
            "time": time,
            "description": (
                f"qpsweep level {s.index}: {s.qps_target:g} QPS target, offered "
                f"{s.offered_qps:.3g}, state {state}; run verdict: saturation {sat} QPS, "
                f"recommended {rec} QPS"
            ),
            "keywords": ["qpsweep", f"state={state}"],
        }
    )


def benchmark_report(analysis: Analysis, s: LevelSummary) -> dict[str, Any]:
    """The Benchmark Report v0.2 document of level ``s`` of ``analysis``."""
    t = analysis.table.levels.get(s.index)
    if t is None:
        t = RecordTable.from_records(())
    state = {st.index: st.state for st in analysis.verdict.levels}.get(s.index, "-")
    scenario = _pruned({"stack": _stack(analysis), "load": _load(analysis, s, t)})
    aggregate = {
        "requests": _requests(t),
        "latency": _latency(t),
        "throughput": _throughput(s, t),
    }
    return {
        "version": VERSION,
        "run": _run(analysis, s, t, state),
        "scenario": scenario,
        "results": {"request_performance": {"aggregate": aggregate}},
    }


def benchmark_reports(analysis: Analysis) -> list[dict[str, Any]]:
    """One report per level, in the analysis' order (target QPS)."""
    return [benchmark_report(analysis, s) for s in analysis.summaries]


def report_name(s: LevelSummary, as_json: bool) -> str:
    """``benchmark_report_v0.2,_qpsweep_level02_qps8.yaml``: the pattern llm-d's tools read."""
    qps = f"{s.qps_target:g}".replace(".", "p")
    suffix = "json" if as_json else "yaml"
    return f"benchmark_report_v{VERSION},_qpsweep_level{s.index:02d}_qps{qps}.{suffix}"


def write_reports(out_dir: Path, analysis: Analysis, as_json: bool = False) -> list[Path]:
    """Write one report per level into ``out_dir`` (created), YAML unless ``as_json``; each
    file atomically (temporary file, then rename).  Returns their paths."""
    paths = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in analysis.summaries:
            report = benchmark_report(analysis, s)
            if as_json:
                text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
            else:
                text = yaml.safe_dump(report, sort_keys=False, allow_unicode=True)
            path = out_dir / report_name(s, as_json)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            paths.append(path)
    except OSError as err:
        raise RunDirError(f"{out_dir}: cannot write the reports ({err.strerror})") from None
    return paths
