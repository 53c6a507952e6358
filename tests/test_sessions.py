"""``--multi-turn``: conversations as sessions, against the scripted server on 127.0.0.1.

What a user sees: each turn's record (``session``, ``turn``, its release as ``scheduled_s``),
the request bodies the server received (the history with the model's real answers or the
dataset's), the session counts in ``metadata.json``, the results JSON and the report; and
bad input (``--think-time``, an empty session, ``--workers``) as one line with exit code 2.
"""

from __future__ import annotations

import itertools
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from qpsweep.config.sessions import SessionPlan
from qpsweep.datasets.prompts import Prompt, load_prompts
from qpsweep.datasets.sessions import session_of, turn_messages
from qpsweep.load.sessions import think_times_s
from qpsweep.sim.server import SimConfig

from conftest import DATASET, Run, sim_process
from servers import BODIES, ServerThread

TURNS = 3


def _dataset(tmp_path: Path, marker: str, n: int = 4) -> Path:
    """``n`` conversations of ``TURNS`` user turns, the dataset's answers marked."""
    samples = []
    for i in range(n):
        history: list[dict[str, str]] = []
        for k in range(TURNS):
            history.append({"role": "user", "content": f"{marker} question {i}.{k} about tea"})
            if k < TURNS - 1:
                history.append({"role": "assistant", "content": f"DATASET-ANSWER {i}.{k}"})
        samples.append({"prompt_content": "Be brief.", "cut_chat_history": history})
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(samples))
    return path


def _bodies(server: ServerThread, marker: str) -> list[dict[str, Any]]:
    return [b for b in server.app[BODIES] if marker in json.dumps(b["messages"])]


def _assert_valid(run: Run) -> None:
    """Every file of the run validates against its JSON Schema."""
    from test_schemas import SCHEMAS, _problems  # the schemas' own test helpers

    assert run.run_dir is not None
    for name, schema in SCHEMAS.items():
        text = (run.run_dir / name).read_text()
        items = (
            [json.loads(x) for x in text.splitlines()]
            if name.endswith(".jsonl")
            else [json.loads(text)]
        )
        for item in items:
            assert _problems(schema, item) == [], (name, item)


def _by_session(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["session"], []).append(r)
    return {s: sorted(rs, key=lambda r: r["turn"]) for s, rs in out.items()}


def test_turn_messages_hold_the_real_or_the_dataset_answers() -> None:
    prompt = Prompt(
        3,
        (("system", "Be brief."), ("user", "a b"), ("assistant", "c d e"), ("user", "f")),
        max_tokens=9,
    )
    session = session_of(prompt)
    assert session is not None and session.n_turns == 2 and session.max_tokens == 9
    first, words = turn_messages(session, 0, [])
    assert first == (("system", "Be brief."), ("user", "a b")) and words == 2
    real, words = turn_messages(session, 1, ["x y z w"])
    assert real[-2:] == (("assistant", "x y z w"), ("user", "f")) and words == 2 + 2 + 4
    dataset, words = turn_messages(session, 1, None)
    assert dataset[-2:] == (("assistant", "c d e"), ("user", "f")) and words == 2 + 2 + 3
    assert session_of(Prompt(0, (("assistant", "hello"),))) is None


def test_think_times_are_drawn_up_front_from_the_seed() -> None:
    exp = SessionPlan(2.0, think_exp=True)
    a, b = think_times_s(exp, 500, 7, 10.0), think_times_s(exp, 500, 7, 10.0)
    assert a == b and a != think_times_s(exp, 500, 8, 10.0)
    assert 1.6 < sum(a) / len(a) < 2.4  # mean 2 s; sd of the mean 0.09 s
    assert think_times_s(SessionPlan(0.5), 3, 7, 10.0) == [0.5, 0.5, 0.5]


@pytest.mark.slow
def test_sessions_send_turns_in_order_with_the_real_answers(
    qpsweep: Any, server: ServerThread, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    run: Run = qpsweep(
        "--endpoint", server.url("ok", tokens=3), "--model", "m", "--qps", "15",
        "--duration", "1", "--arrival", "constant", "--multi-turn",
        dataset=_dataset(tmp_path, marker),
    )  # fmt: skip
    assert run.code == 0, run.err
    records = run.records()
    sessions = _by_session(records)
    level = run.json("metadata.json")["levels"][0]
    counts = level["sessions"]
    assert counts["session_qps"] == pytest.approx(15 / TURNS)
    assert counts["started"] == len(sessions) == 5  # constant: 0, 0.2, ... 0.8 s
    # every turn of a started session is sent or counted as not sent, by reason
    assert len(records) + sum(counts["not_sent"].values()) == TURNS * counts["started"]
    assert level["n_sent"] == len(records) == level["n_scheduled"]
    for turns in sessions.values():
        assert [r["turn"] for r in turns] == list(range(1, len(turns) + 1))
        assert len({r["prompt_id"] for r in turns}) == 1
        for before, after in itertools.pairwise(turns):
            # released at the previous answer's end (think time 0): the wait is no send lag
            assert after["scheduled_s"] == pytest.approx(before["done_s"], abs=2e-6)
            assert after["sent_s"] >= after["scheduled_s"] - 0.002
            assert after["history_tokens"] > before["history_tokens"]
    later = [b for b in _bodies(server, marker) if len(b["messages"]) > 2]
    assert later, "no second turn was sent"
    for body in later:
        answers = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
        assert answers and set(answers) == {"w0 w1 w2 "}  # the model's own answers
    results = run.json("benchmark_qps_results.json")[0]["sessions"]
    assert results["n_sessions"] == 5
    assert results["requests_per_session"] == pytest.approx(len(records) / 5)
    assert results["ttft_first_turn"]["n"] == 5
    _assert_valid(run)
    report = (run.run_dir / "report.txt").read_text()  # type: ignore[operator]
    assert "Sessions (--multi-turn" in report
    assert 'id="sessions"' in (run.run_dir / "report.html").read_text()  # type: ignore[operator]


@pytest.mark.slow
def test_dataset_history_and_think_time(qpsweep: Any, server: ServerThread, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    run: Run = qpsweep(
        "--endpoint", server.url("ok", tokens=2), "--model", "m", "--qps", "15",
        "--duration", "1", "--arrival", "constant", "--multi-turn", "--history", "dataset",
        "--think-time", "0.05",
        dataset=_dataset(tmp_path, marker),
    )  # fmt: skip
    assert run.code == 0, run.err
    for turns in _by_session(run.records()).values():
        for before, after in itertools.pairwise(turns):
            assert after["scheduled_s"] == pytest.approx(before["done_s"] + 0.05, abs=2e-6)
    later = [b for b in _bodies(server, marker) if len(b["messages"]) > 2]
    assert later
    for body in later:  # each answer is the dataset's to the question before it
        pairs = list(itertools.pairwise(body["messages"][1:]))[::2]
        assert pairs and all(q["role"] == "user" for q, _ in pairs)
        for question, answer in pairs:
            number = question["content"].split()[2]  # "<marker> question i.k about tea"
            assert answer == {"role": "assistant", "content": f"DATASET-ANSWER {number}"}
    assert run.json("metadata.json")["multi_turn"] == {
        "think_s": 0.05,
        "think_exp": False,
        "history": "dataset",
    }


def test_a_failed_turn_ends_its_session(qpsweep: Any, server: ServerThread, tmp_path: Path) -> None:
    run: Run = qpsweep(
        "--endpoint", server.url("status", code=503), "--model", "m", "--qps", "15",
        "--duration", "0.5", "--arrival", "constant", "--multi-turn",
        dataset=_dataset(tmp_path, "x"),
    )  # fmt: skip
    assert run.code == 0, run.err
    records = run.records()
    counts = run.json("metadata.json")["levels"][0]["sessions"]
    assert {r["turn"] for r in records} == {1}
    assert {r["error_kind"] for r in records} == {"http_503"}
    assert counts["failed"] == counts["started"] == len(records) == 3
    assert counts["not_sent"] == {"failed_turn": 2 * 3}
    _assert_valid(run)
    assert "turns not sent: failed_turn 6" in run.out


def test_turns_released_after_the_window_are_not_sent(
    qpsweep: Any, server: ServerThread, tmp_path: Path
) -> None:
    run: Run = qpsweep(
        "--endpoint", server.url("ok", tokens=2), "--model", "m", "--qps", "15",
        "--duration", "0.5", "--arrival", "constant", "--multi-turn", "--think-time", "5",
        dataset=_dataset(tmp_path, "x"),
    )  # fmt: skip
    assert run.code == 0, run.err
    counts = run.json("metadata.json")["levels"][0]["sessions"]
    assert {r["turn"] for r in run.records()} == {1}
    assert counts["completed"] == counts["failed"] == 0
    assert counts["not_sent"] == {"window_closed": 2 * counts["started"]}


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (("--multi-turn", "--think-time", "exp:0"), "--think-time: 'exp:0'"),
        (("--multi-turn", "--think-time", "-1"), "--think-time: '-1'"),
        (("--multi-turn", "--think-time", "soon"), "--think-time: 'soon' must be SECONDS"),
        (("--think-time", "2"), "--think-time and --history: only with --multi-turn"),
        (("--multi-turn", "--workers", "2"), "--multi-turn: not with --workers 2"),
        (
            ("--multi-turn", "--arrival", "trace", "--trace", "datasets/trace_mooncake.jsonl"),
            "--multi-turn: not with --arrival trace",
        ),
    ],
)
def test_bad_session_flags_are_one_line_exit_2(
    qpsweep: Any, server: ServerThread, flags: tuple[str, ...], needle: str
) -> None:
    run: Run = qpsweep("--endpoint", server.url("ok"), "--model", "m", "--qps", "5", *flags)
    assert run.code == 2
    assert run.err.count("\n") == 1 and needle in run.err, run.err
    assert run.run_dir is None


def test_an_empty_session_is_one_line_exit_2(
    qpsweep: Any, server: ServerThread, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}]}
    turns = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    empty = {"messages": turns}
    path.write_text(json.dumps(good) + "\n" + json.dumps(empty) + "\n")
    run: Run = qpsweep(
        "--endpoint", server.url("ok"), "--model", "m", "--qps", "5", "--multi-turn",
        dataset=path,
    )  # fmt: skip
    assert run.code == 2 and run.run_dir is None
    assert run.err.count("\n") == 1
    assert f"{path}: sample 1: no user turn" in run.err


def test_the_answer_text_is_collected_from_every_kind_of_event() -> None:
    """``--history real``: plain chunks are cut out, others decoded (escapes, unicode)."""
    from qpsweep.http.client import _collect_text  # the stream's text, as the history holds it

    def chunk(delta: dict[str, str]) -> bytes:
        body = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Tea "}),
        chunk({"content": 'is "hot"\n'}),
        chunk({"reasoning_content": "hidden"}),
        chunk({"content": "caf\u00e9 \u2615"}),
        b"{not json",
        json.dumps({"choices": [], "usage": {"completion_tokens": 4}}).encode(),
        b"[DONE]",
    ]
    pieces: list[str] = []
    _collect_text(pieces, events)
    assert "".join(pieces) == 'Tea is "hot"\ncaf\u00e9 \u2615'


@pytest.mark.slow
def test_sessions_against_the_simulator_and_their_diff(qpsweep: Any, tmp_path: Path) -> None:
    """The simulator counts the prompt's words: a later turn, sent with its history, has a
    longer prompt than turn 1 of the same session; ``diff`` shows the session figures."""
    with sim_process(SimConfig()) as url:
        run: Run = qpsweep(
            "--endpoint", url, "--model", "qpsweep-sim", "--qps", "10", "--duration", "2",
            "--max-tokens", "4", "--arrival", "constant", "--multi-turn",
            dataset=_dataset(tmp_path, "sim"),
        )  # fmt: skip
    assert run.code == 0, run.err
    sessions = _by_session(run.records())
    assert len(sessions) == 7  # constant starts at 10 / 3 per second over 2 s
    grown = [
        (turns[0]["input_tokens"], later["input_tokens"])
        for turns in sessions.values()
        for later in turns[1:]
    ]
    assert grown and all(first < later for first, later in grown)
    assert run.run_dir is not None
    diff = qpsweep("diff", str(run.run_dir), str(run.run_dir), dataset=None)
    assert diff.code == 0, diff.err
    assert "session: requests/session" in diff.out
    assert "session: TTFT turns 2+ p50 (s)" in diff.out


def test_a_scenario_file_sets_sessions_and_a_bad_value_names_its_line(
    qpsweep: Any, server: ServerThread, tmp_path: Path
) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text("scenarios:\n  chat:\n    multi_turn: true\n    think_time: exp:-2\n")
    run: Run = qpsweep(
        "--config", str(config), "--scenario", "chat", "--endpoint", server.url("ok"),
        "--model", "m",
    )  # fmt: skip
    assert run.code == 2 and run.err.count("\n") == 1
    assert f"{config}:4: scenario 'chat': think_time 'exp:-2'" in run.err, run.err


@pytest.mark.slow
def test_ctrl_c_ends_the_sessions_and_counts_their_turns(
    server_process: str, tmp_path: Path
) -> None:
    """The first SIGINT stops new sessions and new turns; every turn of a started session is
    recorded or counted as not sent (``interrupted``), and the run stays readable."""
    from test_cli import _start, _wait_for_records  # the CLI tests' subprocess helpers

    url = f"{server_process}/ok/v1/chat/completions?ttft_ms=20&itl_ms=10&tokens=5"
    results = tmp_path / "results"
    flags = ["--endpoint", url, "--qps", "20", "--duration", "30", "--multi-turn"]
    proc = _start([*flags, "--think-time", "exp:0.5"], results)
    run_dir = _wait_for_records(results, 10, timeout_s=60)  # a loaded machine starts slowly
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    meta = json.loads((run_dir / "metadata.json").read_text())
    level = meta["levels"][0]
    records = [json.loads(x) for x in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(records) == level["n_sent"]
    started = {r["session"]: r["prompt_id"] for r in records}
    assert level["sessions"]["started"] == len(started)
    turns = {p.id: len([m for m in p.messages if m[0] == "user"]) for p in load_prompts(DATASET)}
    planned = sum(turns[prompt_id] for prompt_id in started.values())
    assert len(records) + sum(level["sessions"]["not_sent"].values()) == planned  # none lost
    assert set(level["sessions"]["not_sent"]) <= {"interrupted", "window_closed"}
    assert "sessions" in json.loads((run_dir / "benchmark_qps_results.json").read_text())[0]
