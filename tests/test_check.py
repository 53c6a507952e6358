"""``qpsweep check`` and the probe before a sweep, against real servers on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from qpsweep.sim.app import AppServer
from qpsweep.sim.server import SimConfig

from conftest import Run, sim_process
from servers import ServerThread, _chunk, _start_stream

KEY = "sk-probe-secret-4711"
SERVED = "org/served-model"


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _refused(request: web.Request) -> web.Response | None:
    if request.headers.get("Authorization") != f"Bearer {KEY}":
        return web.json_response({"error": {"message": "invalid API key"}}, status=401)
    return None


async def _models(request: web.Request) -> web.Response:
    return _refused(request) or web.json_response({"data": [{"id": SERVED}, {"id": "other"}]})


async def _chat(request: web.Request) -> web.StreamResponse:
    refused = _refused(request)
    if refused is not None:
        return refused
    body = await request.json()
    if body["model"] not in (SERVED, "other"):
        msg = f"The model `{body['model']}` does not exist."
        return web.json_response({"error": {"message": msg}}, status=404)
    resp = await _start_stream(request)
    for k in range(body["max_tokens"]):
        await resp.write(_chunk({"content": f"w{k} "}))
    usage = {"prompt_tokens": 9, "completion_tokens": body["max_tokens"], "total_tokens": 25}
    await resp.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


@pytest.fixture(scope="module")
def strict() -> Iterator[str]:
    """A vLLM-like server: /health, /v1/models, an API key, 404 for unknown models."""
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    with AppServer(app) as srv:
        yield srv.base_url


def _lines(run: Run) -> dict[str, str]:
    """check name -> its line, from ``qpsweep check`` output."""
    return {line.split()[1]: line for line in run.out.splitlines()[1:-1]}


def test_check_passes_against_the_simulator(qpsweep) -> None:  # type: ignore[no-untyped-def]
    with sim_process(SimConfig()) as url:
        run = qpsweep("check", url, dataset=None, results=False)
    assert run.code == 0, run.out + run.err
    lines = _lines(run)
    assert lines["health"].startswith("PASS") and "GET /health -> 200" in lines["health"]
    assert lines["models"].startswith("PASS") and "using 'qpsweep-sim'" in lines["models"]
    assert lines["stream"].startswith("PASS  stream  200, TTFT ")
    assert "16 tokens" in lines["stream"] and "(usage reported)" in lines["stream"]
    assert run.out.splitlines()[-1].startswith("OK: ")


def test_a_model_the_server_does_not_serve_fails_with_the_served_names(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = qpsweep("check", strict, "--model", "org/typo", dataset=None, results=False)
    assert run.code == 1
    lines = _lines(run)
    assert (
        lines["models"]
        == "FAIL  models  'org/typo' is not listed (served: org/served-model, other)"
    )
    assert lines["stream"].startswith("FAIL  stream  http_4xx: HTTP 404: The model `org/typo`")
    assert run.out.splitlines()[-1].startswith("FAILED: ") and KEY not in run.out

    ok = qpsweep("check", strict, "--model", SERVED, dataset=None, results=False)
    assert ok.code == 0 and _lines(ok)["models"].startswith("PASS")


def test_a_refused_key_fails_and_is_never_printed(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY + "-wrong")
    run = qpsweep("check", strict, "--api-key-env", "MY_KEY", dataset=None, results=False)
    assert run.code == 1
    assert _lines(run)["models"] == "FAIL  models  GET /v1/models -> 401: the API key was refused"
    assert "stream" not in _lines(run) and KEY not in run.out + run.err


def test_an_alias_missing_from_the_list_is_a_warning(qpsweep) -> None:  # type: ignore[no-untyped-def]
    with sim_process(SimConfig()) as url:  # the simulator answers for any model name
        run = qpsweep("check", url, "--model", "llama3.1", dataset=None, results=False)
    assert run.code == 0
    assert _lines(run)["models"].startswith("WARN  models  'llama3.1' is not listed")
    assert _lines(run)["models"].endswith("but the server answered for it")


def test_without_health_or_models_the_stream_decides(  # type: ignore[no-untyped-def]
    qpsweep, server: ServerThread
) -> None:
    ok = qpsweep("check", server.url("ok", usage=0), "--model", "m", dataset=None, results=False)
    assert ok.code == 0, ok.out
    lines = _lines(ok)
    assert lines["health"] == "SKIP  health  no /health here (404); not required"
    assert lines["models"] == "SKIP  models  no /ok/v1/models here (404); the stream decides"
    assert "(no usage: tokens are counted by chunks)" in lines["stream"]

    busy = qpsweep("check", server.url("status", code=503), "--model", "m", dataset=None,
                   results=False)  # fmt: skip
    assert busy.code == 1 and _lines(busy)["stream"].startswith("FAIL  stream  http_503: HTTP 503")


def test_an_unreachable_endpoint_fails_at_once(qpsweep) -> None:  # type: ignore[no-untyped-def]
    with AppServer(web.Application()) as srv:
        url = srv.base_url  # a port that was just free, and is closed again below
    run = qpsweep("check", url, "--model", "m", dataset=None, results=False)
    assert run.code == 1
    port = url.rsplit(":", 1)[1]
    assert list(_lines(run)) == ["health"]
    assert (
        _lines(run)["health"]
        == f"FAIL  health  cannot connect to 127.0.0.1:{port} (Connection refused)"
    )


def test_check_by_target_name_from_a_config_file(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRICT_KEY", KEY)
    config = tmp_path / "targets.yaml"
    config.write_text(
        f"targets:\n  strict:\n    base_url: {strict}/v1\n    model: {SERVED}\n"
        "    api_key_env: STRICT_KEY\n    timeout: 5\n"
    )
    run = qpsweep("check", "strict", "--config", str(config), dataset=None, results=False)
    assert run.code == 0, run.out + run.err
    assert f"(model {SERVED})" in run.out.splitlines()[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: ENDPOINT_OR_TARGET"),
        (["ftp://127.0.0.1/"], "needs an http:// or https:// scheme"),
        (["no-such-target"], "--target: no target named 'no-such-target'"),
        (["http://127.0.0.1:9", "--timeout", "0"], "--timeout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(qpsweep, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("check", *argv, dataset=None, results=False)
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1 and message in run.err


def test_the_sweep_stops_before_sending_when_the_probe_fails(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    argv = ["--endpoint", strict, "--qps", "5", "--duration", "1"]
    run = qpsweep(*argv, "--model", "org/typo", check=True)
    assert run.code == 1 and run.run_dir is None
    assert "check: FAIL  models  'org/typo' is not listed" in run.err
    assert run.err.splitlines()[-1].startswith(
        "qpsweep: the endpoint cannot serve a sweep: models: 'org/typo' is not listed"
    )
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())

    good = qpsweep(*argv, "--model", SERVED, check=True)
    assert good.code == 0, good.err
    assert "check: PASS  stream  200" in good.err
    check = good.json("metadata.json")["check"]
    assert check["ok"] and [c["status"] for c in check["checks"]] == ["pass", "pass", "pass"]
    assert all(r["error_kind"] is None for r in good.records())  # the probe is not a record
    assert len(good.records()) == good.json("metadata.json")["levels"][0]["n_sent"]


def _models_config(tmp_path: Path, base_url: str, models: list[str] | None) -> Path:
    config = tmp_path / "lab.yaml"
    listed = f"    supported_models: {json.dumps(models)}\n" if models else ""
    config.write_text(
        f"targets:\n  lab:\n    base_url: {base_url}\n    model: {SERVED}\n{listed}"
        "    api_key_env: LAB_KEY\n"
    )
    return config


def test_all_models_sweeps_each_into_one_directory_with_a_comparison(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_KEY", KEY)
    config = _models_config(tmp_path, strict, [SERVED, "org/typo", "other"])
    argv = ["--config", str(config), "--target", "lab", "--all-models"]
    run = qpsweep(*argv, "--qps", "10", "--duration", "0.5", "--arrival", "constant", check=True)
    assert run.code == 0, run.err
    parent = run.run_dir
    assert parent is not None and run.out.splitlines()[-1] == f"Results: {parent}"
    entries = json.loads((parent / "models.json").read_text())["models"]
    assert [(e["model"], e["dir"], e["status"]) for e in entries] == [
        (SERVED, "org_served-model", "complete"),
        ("org/typo", None, "not_run"),
        ("other", "other", "complete"),
    ]
    assert entries[1]["reason"].startswith("models: 'org/typo' is not listed")
    for e in (entries[0], entries[2]):
        meta = json.loads((parent / e["dir"] / "metadata.json").read_text())
        assert meta["model"] == e["model"] and meta["check"]["ok"]
        records = (parent / e["dir"] / "requests.jsonl").read_text().splitlines()
        assert len(records) == 5 and all('"error_kind":null' in r for r in records)
        assert [lv["qps_target"] for lv in e["levels"]] == [10]
    text = (parent / "report.txt").read_text()
    assert text.startswith("Models compared") and "not run: org/typo: models:" in text
    assert "Models compared" in run.out
    page = (parent / "report.html").read_text()
    assert 'href="org_served-model/report.html"' in page and "org/typo" in page

    # qpsweep report on the directory rebuilds each model's run and the comparison
    again = qpsweep("report", str(parent), dataset=None, results=False)
    assert again.code == 0 and again.out == text


def test_all_models_without_a_list_sweeps_what_the_server_serves(  # type: ignore[no-untyped-def]
    qpsweep, strict: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_KEY", KEY)
    config = _models_config(tmp_path, strict, None)
    argv = ["--config", str(config), "--target", "lab", "--all-models"]
    run = qpsweep(*argv, "--qps", "10", "--duration", "0.3", "--arrival", "constant")
    assert run.code == 0, run.err
    assert f"--all-models: 2 models: {SERVED}, other" in run.err
    assert run.run_dir is not None
    assert sorted(p.name for p in run.run_dir.iterdir() if p.is_dir()) == [
        "org_served-model",
        "other",
    ]
