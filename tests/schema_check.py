"""Validate a run directory's files against qpsweep's JSON Schemas
(``qpsweep/records/schemas/``), for the tests of every mode that writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from qpsweep.records.run_files import SCHEMAS_DIR

SCHEMAS = {
    "metadata.json": "metadata.schema.json",
    "benchmark_qps_results.json": "benchmark_qps_results.schema.json",
    "saturation.json": "saturation.schema.json",
    "requests.jsonl": "request_record.schema.json",
}


def validator(name: str) -> Draft202012Validator:
    """The validator of schema file ``name``, itself checked as a draft 2020-12 schema."""
    schema = json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(schema: str, data: Any) -> list[str]:
    """Each way ``data`` breaks ``schema``, as ``path: message``; empty when it validates."""
    errors = validator(schema).iter_errors(data)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def run_problems(run_dir: Path) -> list[str]:
    """Every problem of the run's four files (each record of ``requests.jsonl`` on its own),
    as ``file[:line]: path: message``."""
    out = []
    for name, schema in SCHEMAS.items():
        path = run_dir / name
        if name == "requests.jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                out += [f"{name}:{n}: {p}" for p in problems(schema, json.loads(line))]
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            out += [f"{name}: {p}" for p in problems(schema, data)]
    return out
