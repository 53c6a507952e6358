import json
from pathlib import Path

import pytest

from qpsweep.datasets.prompts import load_prompts, prompt_order
from qpsweep.errors import DatasetError

from conftest import REPO

DATASETS = [p for p in (REPO / "datasets").glob("*.json*") if not p.name.startswith("trace_")]


@pytest.mark.parametrize("path", sorted(DATASETS), ids=lambda p: p.name)
def test_every_shipped_dataset_loads(path: Path) -> None:
    """Every conversation dataset shipped (the ``trace_*`` samples are traces: test_trace.py)."""
    prompts = load_prompts(path)
    assert len(prompts) >= 5
    assert all(p.messages and p.messages[-1][0] == "user" for p in prompts)


def test_seed_format_system_turns_skipped_unknown_fields_ignored(tmp_path: Path) -> None:
    f = tmp_path / "d.json"
    f.write_text(
        json.dumps(
            [
                {
                    "prompt_content": "Be brief.",
                    "turnXp": 3,
                    "cut_chat_history": [
                        {"role": "system", "content": "ignored"},
                        {"role": "user", "content": "hi", "animation": "wave"},
                    ],
                }
            ]
        )
    )
    (prompt,) = load_prompts(f)
    assert prompt.as_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_jsonl_and_openai_messages_with_per_sample_max_tokens(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}], "max_tokens": 9})
        + "\n\n"
        + json.dumps({"prompt_content": "", "cut_chat_history": [{"role": "user", "content": "b"}]})
        + "\n"
    )
    first, second = load_prompts(f)
    assert first.max_tokens == 9 and first.messages == (("user", "a"),)
    assert second.max_tokens is None and second.messages == (("user", "b"),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [{"prompt_content": "s", "cut_chat_history": [{"role": "user", "content": "x"}]}] * 17
            + [
                {
                    "prompt_content": "s",
                    "cut_chat_history": [
                        {"role": "user", "content": "x"},
                        {"role": "user", "content": "y"},
                        {"role": "robot", "content": "z"},
                    ],
                }
            ],
            "datasets.json: sample 17: cut_chat_history[2].role must be user/assistant/system",
        ),
        (
            [{"cut_chat_history": [{"role": "user", "content": "x"}]}],
            "datasets.json: sample 0: prompt_content must be a string",
        ),
        (
            [{"prompt_content": "s", "cut_chat_history": []}],
            "datasets.json: sample 0: cut_chat_history must be a non-empty list",
        ),
        (
            [{"messages": [{"role": "user", "content": 5}]}],
            "datasets.json: sample 0: messages[0].content must be a string",
        ),
        ([{"text": "hello"}], "datasets.json: sample 0: needs cut_chat_history"),
        ([], "datasets.json: contains no samples"),
        (
            [{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}],
            "datasets.json: sample 0: max_tokens must be a positive integer",
        ),
    ],
)
def test_bad_samples_name_file_sample_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: object, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("datasets.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError) as err:
        load_prompts(Path("datasets.json"))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"a": ', "invalid JSON at line 1"),
        (b"\x00\x01\x02", "is a binary file"),
        (b"\xff\xfe[]", "is not UTF-8 text"),
        (b"", "contains no samples"),
        (b'{"messages": []}\nnot json\n', "line 2: invalid JSON"),
    ],
)
def test_bad_files(tmp_path: Path, data: bytes, message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        load_prompts(f)


def test_prompt_order_is_a_seeded_permutation() -> None:
    a, b, c = prompt_order(40, 1), prompt_order(40, 1), prompt_order(40, 2)
    assert sorted(a.tolist()) == list(range(40))
    assert a.tolist() == b.tolist() != c.tolist()


SHAREGPT = [
    {
        "id": "sys-1",
        "conversations": [
            {"from": "system", "value": "Be terse."},
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"},
            {"from": "human", "value": "bye"},
        ],
    },
    {
        "id": "trailing-gpt",
        "max_tokens": 7,
        "conversations": [
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": "the answer the server must generate itself"},
        ],
    },
    {
        "id": "user-assistant",
        "conversations": [
            {"from": "user", "value": "x"},
            {"from": "assistant", "value": "y"},
            {"from": "user", "value": "z", "markdown": None},
        ],
    },
]
SHAREGPT_MESSAGES = [
    (("system", "Be terse."), ("user", "hi"), ("assistant", "hello"), ("user", "bye")),
    (("user", "q1"), ("assistant", "a1"), ("user", "q2")),
    (("user", "x"), ("assistant", "y"), ("user", "z")),
]


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_sharegpt_cut_after_the_last_human_turn(tmp_path: Path, layout: str) -> None:
    f = tmp_path / f"sharegpt.{layout}"
    if layout == "json":
        f.write_text(json.dumps(SHAREGPT, indent=2))
    else:
        f.write_text("\n".join(json.dumps(s) for s in SHAREGPT) + "\n")
    prompts = load_prompts(f)
    assert [p.messages for p in prompts] == SHAREGPT_MESSAGES
    assert [p.id for p in prompts] == [0, 1, 2]
    assert [p.max_tokens for p in prompts] == [None, 7, None]


def _human(text: str) -> dict[str, str]:
    return {"from": "human", "value": text}


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (
            [{"conversations": [_human("a")]}] * 3
            + [{"conversations": [_human("a"), {"from": "bing", "value": "b"}]}],
            "sharegpt.json: sample 3: conversations[1].from must be human/gpt/system",
        ),
        (
            [{"conversations": [{"from": "system", "value": "s"}, {"from": "gpt", "value": "a"}]}],
            "sharegpt.json: sample 0: conversations: no human turn",
        ),
        (
            [{"conversations": [{"from": "human", "value": 3}]}],
            "sharegpt.json: sample 0: conversations[0].value must be a string",
        ),
        (
            [{"conversations": []}],
            "sharegpt.json: sample 0: conversations must be a non-empty list of {from, value} "
            "turns",
        ),
        (
            [{"conversations": [_human("a")], "messages": [{"role": "user", "content": "a"}]}],
            "sharegpt.json: sample 0: mixes the keys of OpenAI format and ShareGPT format "
            "(messages, conversations); use one format",
        ),
        (
            [{"prompt_content": "s"}],
            "sharegpt.json: sample 0: cut_chat_history must be a non-empty list of {role, "
            "content} turns",
        ),
        (
            [{"id": 1, "text": "hello"}],
            "sharegpt.json: sample 0: needs cut_chat_history (seed format), messages (OpenAI "
            "format), conversations (ShareGPT format) or prompt",
        ),
    ],
)
def test_sharegpt_and_detection_errors_are_exact_one_liners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, samples: object, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sharegpt.json").write_text(json.dumps(samples))
    with pytest.raises(DatasetError) as err:
        load_prompts(Path("sharegpt.json"))
    assert str(err.value) == message


def test_plain_text_one_user_message_per_non_blank_line(tmp_path: Path) -> None:
    f = tmp_path / "prompts.TXT"
    f.write_bytes(b"\xef\xbb\xbfWhy is the sky blue?\r\n\r\n   \n  [not JSON] {\n\tlast line")
    prompts = load_prompts(f)
    assert [p.messages for p in prompts] == [
        (("user", "Why is the sky blue?"),),
        (("user", "[not JSON] {"),),
        (("user", "last line"),),
    ]
    assert [p.id for p in prompts] == [0, 1, 2]
    assert all(p.max_tokens is None for p in prompts)


def test_plain_text_without_a_prompt_has_no_samples(tmp_path: Path) -> None:
    f = tmp_path / "empty.txt"
    f.write_text("\n  \n\t\n")
    with pytest.raises(DatasetError, match=r"empty\.txt: contains no samples$"):
        load_prompts(f)


def test_jsonl_lines_split_at_newlines_only(tmp_path: Path) -> None:
    # U+2028 / U+0085 are legal raw inside JSON strings; str.splitlines() would cut there
    f = tmp_path / "d.jsonl"
    text = "a\u2028b\x85c"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=False))
    (prompt,) = load_prompts(f)
    assert prompt.messages == (("user", text),)
