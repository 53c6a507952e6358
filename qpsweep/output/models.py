"""``--all-models``: the same sweep for each model of a target, in one run directory.

Layout: ``RESULTS_DIR/YYYY-MM-DD_HH-MM-SS/`` holds one ordinary run directory per model
(named by ``model_slug``: the name with every run of characters other than letters, digits,
``.``, ``_`` and ``-`` replaced by ``_``) and the comparison:

* ``models.json``: per model, in the order run: ``model``, ``dir``, ``status``
  (``complete``, ``interrupted`` or ``not_run``), ``reason`` (why it was not run), the
  verdict's ``saturation_qps``, ``max_sustainable_qps``, ``recommended_qps``, and per level
  ``qps_target``, ``state``, ``success_pct``, ``ttft_p95_s``, ``e2e_p95_s``,
  ``output_tok_per_s``; with ``--cost-per-hour`` also ``cost_per_hour_usd``, the cost at the
  recommended QPS (``cost_per_1m_output_tokens_usd``, ``cost_per_1k_requests_usd``) and each
  level's ``cost_per_1m_output_tokens_usd`` (``qpsweep.analysis.cost``);
* ``report.txt``: the same as text tables (also printed), with a cost column when priced;
* ``report.html``: the tables, with a link to each model's own ``report.html``.

A model that fails the probe before its sweep is listed as ``not_run`` with the failing
check, and the next model is swept; an interrupted sweep ends the series.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qpsweep.output.rebuild import Analysis
from qpsweep.records.run_files import create_run_dir, write_json, write_text

MODELS_FILE = "models.json"
REPORT_FILE = "report.txt"
HTML_FILE = "report.html"


def model_slug(model: str) -> str:
    """A directory name: ``meta-llama/Llama-3.1-8B`` -> ``meta-llama_Llama-3.1-8B``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    return slug[:100]


@dataclass(frozen=True)
class ModelRun:
    """What happened to one model: its directory and analysis, or why it was not run."""

    model: str
    run_dir: Path | None
    analysis: Analysis | None
    interrupted: bool = False
    reason: str | None = None


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def model_entry(run: ModelRun, parent: Path) -> dict[str, Any]:
    """One model's entry of ``models.json``."""
    entry: dict[str, Any] = {
        "model": run.model,
        "dir": None if run.run_dir is None else str(run.run_dir.relative_to(parent)),
        "status": "not_run"
        if run.analysis is None
        else ("interrupted" if run.interrupted else "complete"),
        "reason": run.reason,
    }
    if run.analysis is None:
        return entry
    v = run.analysis.verdict
    states = {st.index: st.state for st in v.levels}
    cost = run.analysis.cost
    if cost is not None:
        rec = cost.recommended
        entry.update(
            cost_per_hour_usd=cost.cost_per_hour_usd,
            cost_per_1m_output_tokens_usd=_r(rec.per_1m_output_tokens_usd, 6) if rec else None,
            cost_per_1k_requests_usd=_r(rec.per_1k_requests_usd, 6) if rec else None,
        )
    entry.update(
        saturation_qps=v.saturation_qps,
        max_sustainable_qps=_r(v.max_sustainable_qps, 4),
        recommended_qps=_r(v.recommended_qps, 4),
        levels=[
            {
                "qps_target": s.qps_target,
                "state": states.get(s.index),
                "success_pct": round(s.success_pct, 3),
                "ttft_p95_s": _r(s.ttft_s.get(95.0), 6),
                "e2e_p95_s": _r(s.e2e_s.get(95.0), 6),
                "output_tok_per_s": round(s.output_tok_per_s, 3),
                **(
                    {"cost_per_1m_output_tokens_usd": _r(c.per_1m_output_tokens_usd, 6)}
                    if cost is not None and (c := cost.level(s.index)) is not None
                    else {}
                ),
            }
            for s in run.analysis.summaries
        ],
    )
    return entry


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_models(entries: Sequence[dict[str, Any]]) -> str:
    """The comparison as text: one verdict row per model, then one row per model and level."""
    width = max([len("model"), *(len(e["model"]) for e in entries)])
    priced = any("cost_per_hour_usd" in e for e in entries)
    lines = [
        "Models compared (same scenario, dataset and seed):",
        f"{'model':<{width}}  {'status':<11} {'saturation':>10} {'max sust.':>10} "
        f"{'recommended':>11}" + (f" {'$/1M out @rec':>13}" if priced else ""),
    ]
    for e in entries:
        cost = e.get("cost_per_1m_output_tokens_usd")
        lines.append(
            f"{e['model']:<{width}}  {e['status']:<11} {_cell(e.get('saturation_qps'), 'g'):>10} "
            f"{_cell(e.get('max_sustainable_qps'), '.3g'):>10} "
            f"{_cell(e.get('recommended_qps'), '.3g'):>11}"
            + (f" {'-' if cost is None else f'${cost:.4g}':>13}" if priced else "")
        )
    lines += [
        "",
        f"{'model':<{width}}  {'QPS':>7} {'state':<14} {'success%':>8} {'TTFT p95':>9} "
        f"{'E2E p95':>8} {'out tok/s':>9}",
    ]
    for e in entries:
        for lv in e.get("levels", []):
            lines.append(
                f"{e['model']:<{width}}  {lv['qps_target']:>7g} {lv['state'] or '-':<14} "
                f"{lv['success_pct']:>8.1f} {_cell(lv['ttft_p95_s'], '.3f'):>9} "
                f"{_cell(lv['e2e_p95_s'], '.3f'):>8} {lv['output_tok_per_s']:>9.1f}"
            )
    for e in entries:
        if e["reason"]:
            lines.append(f"not run: {e['model']}: {e['reason']}")
    return "\n".join(lines) + "\n"


def render_models_html(entries: Sequence[dict[str, Any]], text: str) -> str:
    """A self-contained page: the comparison text and a link to each model's report."""
    e = html.escape
    links = "".join(
        f'<li><a href="{e(entry["dir"])}/report.html">{e(entry["model"])}</a> '
        f"({e(entry['status'])})</li>"
        if entry["dir"]
        else f"<li>{e(entry['model'])} (not run: {e(entry['reason'] or '')})</li>"
        for entry in entries
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>qpsweep: models compared</title>\n<style>body{font-family:sans-serif;"
        "margin:24px}pre{background:#f4f6f9;border:1px solid #dde3ec;padding:10px;"
        "overflow-x:auto}</style>\n</head>\n<body>\n<h1>Models compared</h1>\n"
        f"<pre>{e(text)}</pre>\n<h2>Each model's report</h2>\n<ul>{links}</ul>\n"
        "</body>\n</html>\n"
    )


def write_comparison(parent: Path, runs: Sequence[ModelRun]) -> str:
    """Write ``models.json``, ``report.txt`` and ``report.html`` into ``parent``; the text."""
    entries = [model_entry(run, parent) for run in runs]
    text = format_models(entries)
    write_json(parent / MODELS_FILE, {"models": entries})
    write_text(parent / REPORT_FILE, text)
    write_text(parent / HTML_FILE, render_models_html(entries, text))
    return text


SweepOne = Callable[[str, Path, str], ModelRun]


def sweep_models(
    models: Sequence[str],
    results_dir: Path,
    sweep_one: SweepOne,
    label: Callable[[str], str] = str,
) -> tuple[Path, list[ModelRun], str]:
    """Run ``sweep_one(model, parent, slug)`` for each model into one new directory; stops
    after an interrupted sweep.  Returns the directory, the runs and the comparison text.
    The slug is made from ``label(model)`` (the name with its secrets masked)."""
    parent = create_run_dir(results_dir)
    runs: list[ModelRun] = []
    used: set[str] = set()
    for model in models:
        slug = base = model_slug(label(model))
        n = 2
        while slug in used:
            slug, n = f"{base}_{n}", n + 1
        used.add(slug)
        run = sweep_one(model, parent, slug)
        runs.append(run)
        if run.interrupted:
            break
    return parent, runs, write_comparison(parent, runs)


def read_models(parent: Path) -> list[dict[str, Any]]:
    """The entries of a multi-model directory's ``models.json``."""
    data = json.loads((parent / MODELS_FILE).read_text(encoding="utf-8"))
    return list(data["models"])
