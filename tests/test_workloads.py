"""Issue 17: reasoning models, the completions API and shared prefixes, end to end.

Reasoning: a stream's reasoning deltas (``reasoning_content`` or ``reasoning``) and its visible
ones are timed apart (``first_reasoning_s``, ``first_visible_s``), both count as tokens, and
the usage's ``reasoning_tokens`` and ``cached_tokens`` are kept; the simulator emits
reasoning (``--reasoning-tokens``) and has a prefix cache (``--prefix-cache-tokens``);
``--api completions`` sends a prompt string to ``/v1/completions``; ``dataset synth
--prefix-tokens`` writes conversations whose system prompt is shared within groups.  Each is
checked on a real loopback server (scripted bytes or the simulator) through qpsweep's own
client or command line.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest

from qpsweep.config.scenario import normalize_endpoint
from qpsweep.datasets.prompts import Prompt, load_prompts
from qpsweep.errors import ConfigError
from qpsweep.http.client import ClientSettings, Sender, Trace
from qpsweep.records.record import RequestRecord, read_records
from qpsweep.records.table import read_table
from qpsweep.sim.server import PrefixCache, SimConfig, SimServer, block_hashes

from raw_server import raw_server
from schema_check import run_problems

PROMPT = Prompt(id=0, messages=(("system", "be brief"), ("user", "hi")))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"


def _event(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps({"choices": choices, **extra}).encode() + b"\n\n"


USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 5,
    "completion_tokens_details": {"reasoning_tokens": 3},
    "prompt_tokens_details": {"cached_tokens": 16},
}


def _fetch(pieces: list[bytes], api: str = "chat") -> tuple[RequestRecord, bytes]:
    """One request to a server that writes ``HEAD`` then each piece, 20 ms apart; the
    record, and the request the server read."""
    got: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        got.append(head + await reader.readexactly(length))
        writer.write(HEAD)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)

    async def main() -> RequestRecord:
        async with raw_server(serve) as server:
            url = server.url if api == "chat" else server.url.replace("/chat/", "/")
            settings = ClientSettings(url=url, model="m", timeout_s=5.0, api=api)
            with Sender(settings) as sender:
                return await sender.fetch(Trace(0, 1.0, 0, 0, 0.0), PROMPT, perf_counter())

    return asyncio.run(main()), got[0]


REASONING = [_event({"reasoning_content": w}) for w in ("let", "me", "think")]
VISIBLE = [_event({"content": w}) for w in ("yes", "no")]
END = [_event({}, "stop"), _event(None, usage=USAGE), b"data: [DONE]\n\n"]


@pytest.mark.parametrize("together", [False, True], ids=["piece-per-event", "one-piece"])
def test_reasoning_and_visible_tokens_are_timed_apart(together: bool) -> None:
    events = [*REASONING, *VISIBLE, *END]
    pieces = [b"".join(events)] if together else events
    record, _ = _fetch(pieces)
    assert record.error_kind is None, record.error
    assert len(record.chunk_s) == 5 and record.output_tokens == 5  # both kinds count
    assert record.first_reasoning_s == record.first_token_s == record.chunk_s[0]
    assert record.first_visible_s == record.chunk_s[3]
    if not together:
        assert record.first_visible_s - record.first_reasoning_s >= 0.05  # three pieces later
    assert (record.reasoning_tokens, record.cached_tokens, record.input_tokens) == (3, 16, 20)


def test_the_reasoning_key_of_other_servers_and_a_mixed_chunk_are_read() -> None:
    odd = _event({"reasoning": "hm", "content": None})  # gpt-oss / Ollama style key
    record, _ = _fetch([odd, *VISIBLE, *END])
    assert record.first_reasoning_s == record.chunk_s[0]
    assert record.first_visible_s == record.chunk_s[1]
    for mixed in (
        _event({"content": "ok", "reasoning_content": "so"}),  # both kinds in one chunk
        _event({"reasoning": "so", "content": "ok"}),
    ):
        record, _ = _fetch([mixed, *VISIBLE, *END])
        assert record.first_reasoning_s == record.first_visible_s == record.chunk_s[0]


def test_a_null_reasoning_key_beside_content_keeps_the_fast_path() -> None:
    from qpsweep.http.plain_chunk import REASONING, VISIBLE, plain_kind

    def chunk(delta: dict[str, Any]) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return json.dumps({"choices": [choice]}, separators=(",", ":")).encode()

    assert plain_kind(chunk({"content": "x", "reasoning_content": None})) == VISIBLE  # SGLang
    assert plain_kind(chunk({"content": None, "reasoning_content": "x"})) == REASONING
    assert plain_kind(chunk({"content": "x", "reasoning_content": "y"})) == 0


def test_a_stream_without_reasoning_writes_no_reasoning_keys(tmp_path: Path) -> None:
    record, _ = _fetch([*VISIBLE, _event({}, "stop"), b"data: [DONE]\n\n"])
    assert record.first_reasoning_s is None and record.first_visible_s is None
    line = record.to_json()
    assert "reasoning" not in line and "cached" not in line


def test_the_new_fields_survive_the_file_and_the_table(tmp_path: Path) -> None:
    record, _ = _fetch([*REASONING, *VISIBLE, *END])
    plain, _ = _fetch([*VISIBLE, _event({}, "stop"), b"data: [DONE]\n\n"])
    path = tmp_path / "requests.jsonl"
    path.write_text(record.to_json() + "\n" + plain.to_json() + "\n")
    again = list(read_records(path))
    assert again[0].first_visible_s == pytest.approx(record.first_visible_s, abs=1e-6)
    assert (again[0].reasoning_tokens, again[0].cached_tokens) == (3, 16)
    table = read_table(path)
    assert table.visible_s[0] == pytest.approx(record.first_visible_s, abs=1e-6)
    assert table.visible_s[1] == pytest.approx(plain.first_token_s, abs=1e-6)  # no reasoning
    assert [r.to_json() for r in table.records()] == [r.to_json() for r in again]


def test_a_negative_reasoning_count_is_a_protocol_failure() -> None:
    usage = {**USAGE, "completion_tokens_details": {"reasoning_tokens": -1}}
    record, _ = _fetch([*VISIBLE, _event(None, usage=usage), b"data: [DONE]\n\n"])
    assert record.error_kind == "protocol"
    assert "completion_tokens_details.reasoning_tokens -1" in (record.error or "")


def test_the_completions_api_sends_the_prompt_template_and_reads_text() -> None:
    text = [b'data: {"choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n' % w
            for w in (b"a", b"b")]  # fmt: skip
    last = b'data: {"choices":[{"index":0,"text":"","finish_reason":"stop"}]}\n\n'
    record, request = _fetch([*text, last, b"data: [DONE]\n\n"], api="completions")
    assert request.startswith(b"POST /v1/completions HTTP/1.1")
    body = json.loads(request.split(b"\r\n\r\n", 1)[1])
    assert body["prompt"] == "System: be brief\n\nUser: hi\n\nAssistant:"
    assert "messages" not in body and body["stream"] is True
    assert record.error_kind is None and len(record.chunk_s) == 2


def test_a_prompt_field_or_a_text_line_is_sent_as_it_is(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "Once upon a time", "max_tokens": 7}\n')
    (prompt,) = load_prompts(data)
    assert prompt.as_text() == "Once upon a time" and prompt.max_tokens == 7
    assert prompt.as_messages() == [{"role": "user", "content": "Once upon a time"}]
    lines = tmp_path / "p.txt"
    lines.write_text("one line\n")
    assert load_prompts(lines)[0].as_text() == "one line"


@pytest.mark.parametrize(
    ("raw", "api", "url"),
    [
        ("http://h:8000", "completions", "http://h:8000/v1/completions"),
        ("http://h:8000/v1/", "completions", "http://h:8000/v1/completions"),
        ("http://h/v1/chat/completions", "completions", "http://h/v1/completions"),
        ("http://h/v1/completions", "completions", "http://h/v1/completions"),
        ("http://h/v1", "chat", "http://h/v1/chat/completions"),
    ],
)
def test_the_endpoint_follows_the_api(raw: str, api: str, url: str) -> None:
    assert normalize_endpoint(raw, api) == url


def test_an_unknown_api_is_refused() -> None:
    with pytest.raises(ConfigError, match="--api"):
        normalize_endpoint("http://h", "embeddings")


def test_the_prefix_cache_matches_leading_blocks_and_evicts_the_oldest() -> None:
    words = [f"w{i}" for i in range(40)]
    blocks = block_hashes(words)
    assert len(blocks) == 2  # 40 words: two full blocks of 16
    assert block_hashes(["x", *words[1:]])[1] != blocks[1]  # a block names its whole prefix
    cache = PrefixCache(capacity_blocks=3)
    assert cache.admit(blocks) == 0
    assert cache.admit(blocks) == 2
    other = block_hashes([f"v{i}" for i in range(32)])
    assert cache.admit(other) == 0  # 4 blocks for 3 places: the least recently used went
    assert cache.admit(blocks) == 1


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    config = SimConfig(reasoning_tokens=4, prefix_cache_tokens=4096, decode_ms=2.0)
    with SimServer(config) as server:
        yield server.base_url


def _sim_fetch(base: str, prompt: Prompt, api: str = "chat") -> RequestRecord:
    async def main() -> RequestRecord:
        settings = ClientSettings(url=normalize_endpoint(base, api), model="m", api=api)
        with Sender(settings) as sender:
            return await sender.fetch(Trace(0, 1.0, 0, 0, 0.0), prompt, perf_counter())

    return asyncio.run(main())


def test_the_simulator_streams_reasoning_first_and_caches_a_shared_prefix(sim: str) -> None:
    system = " ".join(f"s{i}" for i in range(64))
    first = _sim_fetch(sim, Prompt(1, (("system", system), ("user", "one")), 10))
    second = _sim_fetch(sim, Prompt(2, (("system", system), ("user", "two")), 10))
    assert first.error_kind is None and second.error_kind is None
    assert (first.reasoning_tokens, first.output_tokens) == (4, 10)
    assert first.first_reasoning_s == first.chunk_s[0]
    assert first.first_visible_s == first.chunk_s[4]  # 4 reasoning tokens, then content
    assert (first.cached_tokens, second.cached_tokens) == (0, 64)
    completion = _sim_fetch(sim, Prompt(3, (("user", "x"),), 5, text="x"), api="completions")
    assert completion.error_kind is None and completion.first_reasoning_s is None
    assert completion.output_tokens == 5  # reasoning is a chat thing in the simulator


def test_check_says_what_reasoning_it_saw(qpsweep, sim: str) -> None:  # type: ignore[no-untyped-def]
    run = qpsweep("check", sim, "--model", "m", dataset=None, results=False)
    assert run.code == 0, run.out
    assert "reasoning, 4 tokens, first visible token at" in run.out
    run = qpsweep("check", sim, "--model", "m", "--api", "completions", dataset=None, results=False)
    assert run.code == 0 and "/v1/completions" in run.out and "reasoning" not in run.out


def test_a_target_of_the_completions_api_is_probed_there(qpsweep, sim: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "targets.yaml"
    config.write_text(f"targets:\n  raw:\n    base_url: {sim}/v1\n    api: completions\n")
    run = qpsweep("check", "raw", "--config", str(config), dataset=None, results=False)
    assert run.code == 0, run.out
    assert f"checking {sim}/v1/completions" in run.out


def _synth(qpsweep, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return qpsweep(
        "dataset", "synth", "--input-tokens-mean", "8", "--output-tokens-mean", "6",
        "--count", "40", "--seed", "3", "-o", str(out), *extra, dataset=None, results=False,
    )  # fmt: skip


def test_synth_shares_a_system_prompt_within_each_group(qpsweep, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain, shared = tmp_path / "plain.json", tmp_path / "shared.json"
    assert _synth(qpsweep, plain).code == 0
    run = _synth(qpsweep, shared, "--prefix-tokens", "32", "--prefix-groups", "3")
    assert run.code == 0 and "shared prefix of 32 words in 3 group(s)" in run.out
    a, b = json.loads(plain.read_text()), json.loads(shared.read_text())
    assert [s["cut_chat_history"] for s in a] == [s["cut_chat_history"] for s in b]
    systems = [s["prompt_content"] for s in b]
    assert len(set(systems)) == 3 and all(len(t.split()) == 32 for t in systems)
    assert load_prompts(shared)[0].messages[0] == ("system", systems[0])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prefix-groups", "2"], "--prefix-groups: only with --prefix-tokens"),
        (["--prefix-tokens", "-1"], "--prefix-tokens: -1 must be 0 or more"),
        (["--prefix-tokens", "8", "--prefix-groups", "0"], "--prefix-groups: 0 must be"),
        (["--prefix-tokens", "8", "--prefix-groups", "41"], "more than --count 40"),
    ],
)
def test_synth_refuses_bad_prefix_flags(qpsweep, tmp_path: Path, extra, message) -> None:  # type: ignore[no-untyped-def]
    run = _synth(qpsweep, tmp_path / "x.json", *extra)
    assert run.code == 2 and message in run.err and len(run.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_a_bad_prompt_field_names_the_sample(qpsweep, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "fine"}\n{"prompt": 3}\n')
    run = qpsweep("--endpoint", "http://127.0.0.1:9", "--model", "m", dataset=data)
    assert run.code == 2
    assert run.err.strip() == f"qpsweep: error: {data}: sample 1: prompt must be a non-empty string"


@pytest.mark.slow
def test_a_sweep_reports_reasoning_and_the_cached_share_everywhere(
    qpsweep, sim: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "shared.json"
    assert _synth(qpsweep, data, "--prefix-tokens", "64", "--prefix-groups", "2").code == 0
    args = (
        "--endpoint",
        sim,
        "--model",
        "m",
        "--qps",
        "10",
        "--duration",
        "1",
        "--max-tokens",
        "8",
    )
    chat = qpsweep(*args, "--csv", dataset=data)
    assert chat.code == 0, chat.err
    with (chat.run_dir / "levels.csv").open(newline="") as file:
        (row,) = csv.DictReader(file)
    assert float(row["ttft_visible_p50_s"]) > float(row["ttft_p50_s"])
    assert 0 < float(row["cached_share"]) < 1 and row["reasoning_tokens_mean"] == "4.0"
    assert "Reasoning and prefix cache" in chat.out
    (level,) = chat.json("benchmark_qps_results.json")
    assert level["n_reasoning"] == level["n_ok"] > 0
    assert level["ttft_visible"]["p50"] > level["ttft"]["p50"]  # 4 reasoning tokens first
    assert level["reasoning_tokens_mean"] == 4.0
    assert 0 < level["cached_share"] < 1  # two prefixes of 64 words: cached after the first
    assert "TTFV P50(s)" in (chat.run_dir / "report.txt").read_text()
    assert 'id="workload"' in (chat.run_dir / "report.html").read_text()
    assert run_problems(chat.run_dir) == []  # the reasoning and cache keys are in the schemas
    completions = qpsweep(*args, "--api", "completions", dataset=data)
    assert completions.code == 0, completions.err
    (other,) = completions.json("benchmark_qps_results.json")
    assert other["n_reasoning"] == 0 and other["n_ok"] > 0
    diff = qpsweep("diff", str(chat.run_dir), str(completions.run_dir), dataset=None)
    assert "TTFV p50 (s)" in diff.out and "cached (%)" in diff.out
