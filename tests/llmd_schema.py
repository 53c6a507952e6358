"""A checker of llm-d-benchmark's Benchmark Report, version 0.2, written for qpsweep's tests.

Transcribed by hand from the published field definitions (the pydantic models of
``llmdbenchmark/analysis/benchmark_report/schema_v0_2.py``, ``schema_v0_2_components.py`` and
the units of ``base.py`` in github.com/llm-d/llm-d-benchmark), for the parts qpsweep writes:
``version``, ``run``, ``scenario`` (``stack`` with the ``generic`` and ``inference_engine``
component kinds, ``load``) and ``results.request_performance.aggregate``.  Like the models,
it refuses a key a class does not define (``extra="forbid"``; ``generic`` components allow
extra keys), a missing required field, a value of the wrong type or below its bound, and a
``Statistics`` whose ``units`` the field does not allow.  Parts of the schema qpsweep never
writes (time series, observability, session metrics, health) are refused too, so a report
that grows them has to extend this file first.  ``problems(report)`` lists every violation
as ``path: what``; an empty list means the report validates.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str], list[str]]

UNITS_QUANTITY = ("count", "pixels")
UNITS_TIME = ("ms", "s")
UNITS_GEN_LATENCY = ("ms/token", "s/token")
UNITS_GEN_THROUGHPUT = ("tokens/s",)
UNITS_REQUEST_THROUGHPUT = ("queries/s",)
ALL_UNITS = (
    *("count", "pixels", "percent", "fraction", "ratio", "ms", "s", "bytes", "MB", "GB", "TB"),
    *("MiB", "GiB", "TiB", "Mbit/s", "Gbit/s", "Tbit/s", "GiB/s", "MB/s", "GB/s", "TB/s"),
    *("ms/token", "s/token", "tokens/s", "queries/s", "images/s", "videos/s", "audios/s"),
    "Watts",
)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def string(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]


def anything(value: Any, path: str) -> list[str]:
    return []


def number(ge: float | None = None, gt: float | None = None, integer: bool = False) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not _number(value) or (integer and not isinstance(value, int)):
            return [f"{path}: {value!r} is not {'an integer' if integer else 'a number'}"]
        if ge is not None and value < ge:
            return [f"{path}: {value!r} is below {ge}"]
        if gt is not None and value <= gt:
            return [f"{path}: {value!r} is not above {gt}"]
        return []

    return check


def one_of(*allowed: str) -> Check:
    def check(value: Any, path: str) -> list[str]:
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]

    return check


def timestamp(value: Any, path: str) -> list[str]:
    try:
        datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return [f"{path}: {value!r} is not an ISO-8601 timestamp"]
    return []


def list_of(item: Check) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for i, v in enumerate(value) for p in item(v, f"{path}[{i}]")]

    return check


def mapping(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, dict) else [f"{path}: {value!r} is not a mapping"]


def obj(fields: dict[str, tuple[Check, bool]], extra: bool = False) -> Check:
    """A model: ``fields`` maps each key to (its check, whether it is required)."""

    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a mapping"]
        out = [f"{path}.{k}: required" for k, (_, req) in fields.items() if req and k not in value]
        for key, item in value.items():
            if key in fields:
                out += fields[key][0](item, f"{path}.{key}")
            elif not extra:
                out.append(f"{path}.{key}: not a field of the schema")
        return out

    return check


OPT_NUM = (number(), False)


def statistics(units: tuple[str, ...]) -> Check:
    """``Statistics`` whose ``units`` must be one of ``units``."""
    keys = ("mode", "min", "p0p1", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95")
    fields = {
        "units": (one_of(*ALL_UNITS), True),
        "mean": (number(), True),
        "stddev": (number(ge=0), False),
        **{k: OPT_NUM for k in (*keys, "p99", "p99p9", "max")},
    }
    base = obj(fields)

    def check(value: Any, path: str) -> list[str]:
        out = base(value, path)
        if isinstance(value, dict) and value.get("units") not in units:
            out.append(f"{path}.units: {value.get('units')!r} must be one of {units}")
        return out

    return check


SEQUENCE_LENGTH = obj(
    {
        "distribution": (one_of("fixed", "gaussian", "uniform", "other"), True),
        "value": (number(ge=0), True),
        "std_dev": (number(ge=0), False),
        "min": (number(ge=0, integer=True), False),
        "max": (number(ge=1, integer=True), False),
    }
)
NATIVE = obj({"args": (mapping, False), "envars": (mapping, False), "config": (anything, False)})
LOAD = obj(
    {
        "metadata": (
            obj(
                {
                    "schema_version": (string, False),
                    "cfg_id": (string, False),
                    "description": (string, False),
                }
            ),
            True,
        ),
        "standardized": (
            obj(
                {
                    "tool": (string, True),
                    "tool_version": (string, True),
                    "parallelism": (number(ge=1, integer=True), False),
                    "source": (one_of("random", "sampled", "unknown"), True),
                    "stage": (number(ge=0, integer=True), False),
                    "input_seq_len": (SEQUENCE_LENGTH, True),
                    "output_seq_len": (SEQUENCE_LENGTH, False),
                    "prefix": (mapping, False),
                    "multi_turn": (mapping, False),
                    "rate_qps": (number(gt=0), False),
                    "concurrency": (number(ge=1), False),
                }
            ),
            True,
        ),
        "native": (NATIVE, True),
    }
)
_COMMON = {"tool": (string, True), "tool_version": (string, True)}
_GENERIC = obj({"kind": (one_of("generic"), True), **_COMMON}, extra=True)
_ENGINE = obj(
    {
        "kind": (one_of("inference_engine"), True),
        **_COMMON,
        "role": (one_of("replica", "prefill", "decode"), True),
        "replicas": (number(ge=1, integer=True), True),
        "model": (obj({"name": (string, True)}), True),
        "accelerator": (mapping, True),
    }
)


def component_standardized(value: Any, path: str) -> list[str]:
    """The ``kind`` discriminator picks the component class."""
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind == "generic":
        return _GENERIC(value, path)
    if kind == "inference_engine":
        return _ENGINE(value, path)
    return [f"{path}.kind: {kind!r} is not generic or inference_engine"]


COMPONENT = obj(
    {
        "metadata": (
            obj(
                {
                    "schema_version": (string, False),
                    "label": (string, True),
                    "cfg_id": (string, True),
                    "description": (string, False),
                }
            ),
            True,
        ),
        "standardized": (component_standardized, True),
        "native": (NATIVE, True),
    }
)
AGGREGATE = obj(
    {
        "requests": (
            obj(
                {
                    "total": (number(ge=0, integer=True), True),
                    "failures": (number(ge=0, integer=True), False),
                    "incomplete": (number(ge=0, integer=True), False),
                    "input_length": (statistics(UNITS_QUANTITY), False),
                    "output_length": (statistics(UNITS_QUANTITY), False),
                }
            ),
            False,
        ),
        "latency": (
            obj(
                {
                    "time_to_first_token": (statistics(UNITS_TIME), False),
                    "normalized_time_per_output_token": (statistics(UNITS_GEN_LATENCY), False),
                    "time_per_output_token": (statistics(UNITS_GEN_LATENCY), False),
                    "inter_token_latency": (statistics(UNITS_GEN_LATENCY), False),
                    "request_latency": (statistics(UNITS_TIME), False),
                }
            ),
            False,
        ),
        "throughput": (
            obj(
                {
                    "input_token_rate": (statistics(UNITS_GEN_THROUGHPUT), False),
                    "output_token_rate": (statistics(UNITS_GEN_THROUGHPUT), False),
                    "total_token_rate": (statistics(UNITS_GEN_THROUGHPUT), False),
                    "request_rate": (statistics(UNITS_REQUEST_THROUGHPUT), False),
                }
            ),
            False,
        ),
    }
)
REPORT = obj(
    {
        "version": (one_of("0.2"), False),
        "run": (
            obj(
                {
                    "uid": (string, True),
                    "eid": (string, False),
                    "cid": (string, False),
                    "pid": (string, False),
                    "time": (
                        obj(
                            {
                                "start": (timestamp, False),
                                "end": (timestamp, False),
                                "duration": (string, False),
                            }
                        ),
                        False,
                    ),
                    "user": (string, False),
                    "description": (string, False),
                    "keywords": (list_of(string), False),
                }
            ),
            True,
        ),
        "scenario": (obj({"stack": (list_of(COMPONENT), False), "load": (LOAD, False)}), False),
        "results": (
            obj(
                {
                    "request_performance": (
                        obj({"aggregate": (AGGREGATE, False)}),  # time_series: not written
                        False,
                    )
                }
            ),
            True,
        ),
    }
)


def problems(report: Any) -> list[str]:
    """Every violation of the v0.2 schema in ``report`` (empty: it validates)."""
    return REPORT(report, "report")
