"""The run's ``server_metrics.jsonl``: the Prometheus samples scraped during the run
(``qpsweep.http.prometheus`` writes them), read back and summarised per level."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "server_metrics.jsonl"


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Samples of a ``METRICS_FILE`` in file order; a last line cut short by a killed process is
    skipped, any other bad line raises ``ValueError`` naming its line number."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        with contextlib.suppress(ValueError):
            sample = json.loads(line)
            if isinstance(sample, dict) and isinstance(sample.get("values"), dict):
                out.append(sample)
                continue
        if number == len(lines):  # unterminated last line: a write cut short
            break
        raise ValueError(f"{path}: line {number}: not a metrics sample")
    return out


def summarize_metrics(
    samples: Sequence[dict[str, Any]],
) -> dict[int, dict[str, dict[str, float]]]:
    """Level index -> metric name -> ``{"mean", "max", "last", "n"}`` over the samples tagged
    with that level that carry the metric (failed scrapes carry none; untagged are left out)."""
    series: dict[int, dict[str, list[float]]] = {}
    for sample in samples:
        level = sample.get("level")
        if not isinstance(level, int):
            continue
        per_name = series.setdefault(level, {})
        for name, value in sample["values"].items():
            per_name.setdefault(name, []).append(float(value))
    return {
        level: {
            name: {"mean": sum(v) / len(v), "max": max(v), "last": v[-1], "n": len(v)}
            for name, v in per_name.items()
        }
        for level, per_name in sorted(series.items())
    }
