"""No secret reaches a file or the console: every spelling of a flag, every piece of a key.

A scripted server on 127.0.0.1 leaks the key in every way issue 19 found (a 401 echoing the
bare key of ``Authorization: Bearer KEY``, an error body cut at 8 KiB inside the key, a
``protocol`` error quoting a chunk that holds a prefix of it, a model id that contains it);
each run must leave no trace of the key, nor of any 8-character piece of it, in any file of
its directory (names included) or on stdout/stderr.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from qpsweep.config.secrets import MASK, Masker, argv_secrets, redact_argv, scrub
from qpsweep.sim.app import AppServer

KEY = "sk-TESTKEY-0123456789abcdefXYZ"
PIECES = [KEY[i : i + 8] for i in range(len(KEY) - 7)]
QUICK = ("--qps", "10", "--duration", "0.5", "--arrival", "constant")
CUT_BYTES = 8192  # the client keeps the first 8 KiB of an error body


def _leaks(text: str | bytes) -> list[str]:
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return [piece for piece in PIECES if piece in blob]


async def _mix(request: web.Request) -> web.StreamResponse:
    """Each request in turn: a 401 echoing the key it was sent (or KEY), an error body cut
    inside the key, a stream whose invalid chunk holds a prefix of the key."""
    await request.read()
    turn = next(request.app[TURNS]) % 3
    auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
    sent = auth or request.headers.get("X-Api-Key", "") or KEY
    if turn == 0:
        return web.json_response({"error": {"message": f"invalid api key {sent}"}}, status=401)
    resp = web.StreamResponse(status=500 if turn == 1 else 200)
    if turn == 1:
        resp.content_type = "text/plain"
        await resp.prepare(request)
        head = b" " * (CUT_BYTES - 12) + KEY.encode()[:12]
        await resp.write(head)
        await asyncio.sleep(0.05)  # the client's first read ends inside the key
        await resp.write(KEY.encode()[12:] + b" the rest")
        return resp
    resp.content_type = "text/event-stream"
    await resp.prepare(request)
    await resp.write(b'data: {"choices": [{"delta": {"content": "x ' + KEY.encode() + b"\n\n")
    return resp


def _json_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _percent_escaped(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


ESCAPED = (_json_escaped(KEY), _percent_escaped(KEY), KEY.replace("-", "%2D"))


async def _escaped(request: web.Request) -> web.Response:
    """A 401 whose body (not JSON, so no decoder undoes its escapes) echoes the key escaped:
    as JSON ``\\u`` escapes, wholly percent-encoded, or with only its ``-`` encoded."""
    await request.read()
    spelling = ESCAPED[next(request.app[TURNS]) % len(ESCAPED)]
    body = f'<pre>{{"error": "invalid key \\"{spelling}\\""}}</pre> see /keys?k={spelling}'
    return web.Response(status=401, text=body, content_type="text/html")


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"data": [{"id": f"model-{KEY}"}, {"id": "plain"}]})


TURNS = web.AppKey("turns", itertools.count)


@pytest.fixture(scope="module")
def leaky() -> Iterator[str]:
    app = web.Application()
    app[TURNS] = itertools.count()
    app.router.add_post("/mix/v1/chat/completions", _mix)
    app.router.add_get("/mix/v1/models", _models)
    app.router.add_post("/esc/v1/chat/completions", _escaped)
    with AppServer(app) as srv:
        yield f"{srv.base_url}/mix/v1"


def _escaped_leaks(blob: str) -> list[str]:
    """Pieces of the key, in the spellings ``_escaped`` echoes, found in ``blob``."""
    spelled = [_json_escaped(p) for p in PIECES] + [_percent_escaped(p) for p in PIECES]
    spelled += [p.replace("-", "%2D") for p in PIECES if "-" in p]
    return [piece for piece in spelled if piece.lower() in blob.lower()]


def _assert_no_trace(run, kinds: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert run.run_dir is not None, run.err
    root = run.run_dir
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(
        p.name == "metadata.json" for p in files
    )
    for path in [root, *root.rglob("*")]:
        assert not _leaks(path.name), path
        if path.is_file():
            assert not _leaks(path.read_bytes()), (path, _leaks(path.read_bytes()))
    assert not _leaks(run.out) and not _leaks(run.err)
    records = [r for p in root.rglob("requests.jsonl") for r in _records(p)]
    assert {r["error_kind"] for r in records} >= kinds
    assert any(MASK in (r["error"] or "") for r in records)  # the server did echo it


def _records(path: Path) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


ARGVS = {
    "attached -H": ["-HAuthorization: Bearer " + KEY],
    "-H=": ["-H=Authorization: Bearer " + KEY],
    "abbreviated --heade": ["--heade", "X-Api-Key: " + KEY],
    "--header=": ["--header=Api-Key: " + KEY],
    "cookie": ["-H", f"Cookie: session={KEY}; theme=dark"],
    "--api-key": ["--api-key", KEY],
    "--api-key=": ["--api-key=" + KEY],
}


@pytest.mark.slow
@pytest.mark.parametrize("flags", ARGVS.values(), ids=ARGVS.keys())
def test_no_piece_of_a_key_given_in_any_spelling_reaches_a_file_or_the_console(
    qpsweep, leaky, flags
) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", leaky, "--model", "m", *QUICK, *flags, plots=True)
    _assert_no_trace(run, {"http_4xx", "http_5xx", "protocol"})


@pytest.mark.slow
def test_a_key_echoed_json_escaped_or_percent_encoded_is_masked(qpsweep, leaky) -> None:  # type: ignore[no-untyped-def]
    endpoint = leaky.replace("/mix/", "/esc/")
    run = qpsweep("--endpoint", endpoint, "--model", "m", *QUICK, "--api-key", KEY)
    _assert_no_trace(run, {"http_4xx"})
    for path in run.run_dir.rglob("*"):  # type: ignore[union-attr]
        if path.is_file():
            blob = path.read_bytes().decode("utf-8", "replace")
            assert not _escaped_leaks(blob), (path, _escaped_leaks(blob))
    assert not _escaped_leaks(run.out + run.err)
    errors = {r["error"] for r in _records(run.run_dir / "requests.jsonl")}  # type: ignore[operator]
    assert any("see /keys?k=***" in str(e) for e in errors), errors


@pytest.mark.slow
def test_a_password_in_the_endpoint_url_and_a_key_in_the_environment(
    qpsweep, leaky, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEAKY_KEY", KEY[::-1])  # another secret, from the environment
    endpoint = leaky.replace("http://", f"http://user:{KEY}@")
    run = qpsweep("--endpoint", endpoint, "--model", "m", *QUICK, "--api-key-env", "LEAKY_KEY")
    _assert_no_trace(run, {"http_4xx", "http_5xx", "protocol"})
    assert "http://user:***@127.0.0.1" in (run.run_dir / "metadata.json").read_text()  # type: ignore[operator]
    assert KEY[::-1][:8] not in run.out + run.err
    meta = (run.run_dir / "metadata.json").read_text()  # type: ignore[operator]
    assert KEY[::-1][:8] not in meta


@pytest.mark.slow
def test_a_model_id_holding_the_key_is_masked_with_all_models(qpsweep, leaky) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", leaky, "--model", "m", "--all-models", *QUICK, "--api-key", KEY)
    assert run.code == 0, run.err
    assert "--all-models: 2 models: model-***, plain" in run.err
    parent = run.run_dir.parent if (run.run_dir / "metadata.json").exists() else run.run_dir  # type: ignore[union-attr]
    assert (parent / "models.json").exists()
    for path in [parent, *parent.rglob("*")]:
        assert not _leaks(path.name), path
        if path.is_file():
            assert not _leaks(path.read_bytes()), path
    assert "model-***" in (parent / "models.json").read_text()
    assert not _leaks(run.out) and not _leaks(run.err)


def test_a_bad_header_is_refused_without_echoing_it(qpsweep, leaky) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("--endpoint", leaky, "--model", "m", "-H", f"Authorization Bearer {KEY}")
    assert run.code == 2 and "--header" in run.err and not _leaks(run.err)
    run = qpsweep("--endpoint", f"ftp://u:{KEY}@127.0.0.1/v1", "--model", "m")
    assert run.code == 2 and "--endpoint" in run.err and not _leaks(run.err)


def test_redact_argv_masks_every_spelling_argparse_accepts() -> None:
    argv = [
        "qpsweep",
        "-HAuthorization: Bearer " + KEY,
        "-H=X-Api-Key: " + KEY,
        "--heade",
        "Api-Key: " + KEY,
        "--header=Cookie: a=" + KEY,
        "--api-k",
        KEY,
        "--api-key=" + KEY,
        "--endpoint",
        f"http://user:{KEY}@127.0.0.1:9/v1",
        "-H",
        "X-Team: infra",
        "--api-key-env",
        "MY_KEY",
        "--model",
        f"m-{KEY}",
    ]
    out = redact_argv(argv)
    assert not any(_leaks(arg) for arg in out), out
    assert out[-4:] == ["--api-key-env", "MY_KEY", "--model", "m-***"]
    assert "X-Team: infra" in out and "http://user:***@127.0.0.1:9/v1" in out
    assert set(argv_secrets(argv)) >= {KEY, "Bearer " + KEY}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"echo {KEY} echo", "echo *** echo"),
        ("cut " + KEY[:12], "cut ***"),  # a body cut inside the key
        (f"b'x {KEY[:9]}", "b'x ***"),  # a quoted chunk with a prefix of it
        (f"{KEY[3:11]}/{KEY[20:]}", "***/***"),  # any 8 characters of it
        (f"{KEY[:7]} is short", f"{KEY[:7]} is short"),  # less than 8: not a secret's piece
        ("nothing here", "nothing here"),
        (f"json {_json_escaped(KEY[:9])}!", "json ***!"),  # escaped as in a JSON string
        (f"url {_percent_escaped(KEY)}&x", "url ***&x"),  # percent-encoded
        (f"mixed {KEY[:2]}%2D{_json_escaped(KEY[3:9])}", "mixed ***"),
        ("100% \\u0041 plain", "100% \\u0041 plain"),
    ],
)
def test_the_masker_hides_every_piece_of_8_characters(text: str, masked: str) -> None:
    assert Masker([KEY]).mask(text) == masked
    assert scrub(text, [KEY]) == masked


def test_short_secrets_are_masked_whole_only_when_long_enough_to_mean_something() -> None:
    assert scrub("key sk-1 and sk-1", ["sk-1", ""]) == "key *** and ***"
    assert Masker(["k"]).mask("kick") == "kick" and not Masker(["k", ""])
