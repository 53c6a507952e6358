import json
from pathlib import Path

import pytest

from qpsweep.dataset import load_prompts, prompt_order
from qpsweep.errors import DatasetError

from conftest import REPO


@pytest.mark.parametrize("path", sorted((REPO / "datasets").glob("*.json*")), ids=lambda p: p.name)
def test_every_shipped_dataset_loads(path: Path) -> None:
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
