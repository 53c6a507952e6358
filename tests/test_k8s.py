"""The shipped Kubernetes manifest: an Indexed Job whose pods are shards of one qpsweep run."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from qpsweep.cli.main import _parse_sweep, _scenario

from conftest import REPO

MANIFEST = REPO / "config" / "k8s" / "qpsweep-shards.yaml"


def _docs() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    return {d["metadata"]["name"].split("-$")[0]: d for d in docs}


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) and envsubst's ${VAR}."""
    return re.sub(r"\$[({](\w+)[)}]", lambda m: env[m.group(1)], arg)


def test_the_indexed_job_runs_every_shard_of_one_sweep_from_one_start() -> None:
    docs = _docs()
    job = docs["qpsweep-shards"]["spec"]
    n = job["completions"]
    assert job["completionMode"] == "Indexed" and job["parallelism"] == n
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "job-completion-index" in env["SHARD"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "secretKeyRef" in env["OPENAI_API_KEY"]["valueFrom"]  # the key is not in the file
    start_at = str(int(time.time()) + 120)
    shards = []
    for index in range(n):
        values = {"SHARD": str(index), "START_AT": start_at, "RUN": "r1"}
        argv = [_expand(str(a), values) for a in container["args"]]
        scenario = _scenario(_parse_sweep(argv))  # qpsweep's own parser: no traffic is sent
        assert scenario.shard is not None
        shards.append((scenario.shard.index, scenario.shard.count, scenario.shard.start_at_epoch))
        assert argv[argv.index("--results-dir") + 1] == "/results/r1"
    assert shards == [(i, n, float(start_at)) for i in range(n)]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/results" in mounts


def test_the_merge_job_waits_for_every_shard_then_merges_them() -> None:
    docs = _docs()
    n = docs["qpsweep-shards"]["spec"]["completions"]
    (container,) = docs["qpsweep-merge"]["spec"]["template"]["spec"]["containers"]
    script = " ".join(container["args"])
    loop = re.search(r"for i in ([\d ]+);", script)
    assert loop is not None and loop.group(1).split() == [str(i) for i in range(n)]
    assert "qpsweep merge /results/${RUN}/shard-*" in script
    claim = docs["qpsweep-results"]
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_image_holds_what_the_manifest_uses() -> None:
    dockerfile = (Path(MANIFEST).parent / "Dockerfile").read_text()
    for needed in ("pyproject.toml", "setup.py", "README.md", "qpsweep", "datasets"):
        assert re.search(rf"^COPY .*\b{needed}\b", dockerfile, re.M), needed
