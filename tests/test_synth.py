"""``qpsweep dataset synth`` through ``main_dataset``, into real files read back by
``load_prompts``."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qpsweep.cli.dataset import main_dataset
from qpsweep.datasets.prompts import load_prompts
from qpsweep.errors import ConfigError
from qpsweep.sim.server import _count_words

BASE = [
    "synth",
    "--input-tokens-mean",
    "500",
    "--input-tokens-std",
    "100",
    "--output-tokens-mean",
    "200",
    "--output-tokens-std",
    "50",
    "--turns",
    "1-5",
    "--count",
    "500",
    "--seed",
    "1",
]


def synth(out: Path, *extra: str, base: list[str] = BASE) -> int:
    return main_dataset([*base, *extra, "-o", str(out)])


def test_500_samples_follow_the_asked_distributions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth.json"
    assert synth(out) == 0
    line = capsys.readouterr().out
    match = re.fullmatch(
        rf"wrote 500 conversations to {re.escape(str(out))} \(input words mean (\d+\.\d), "
        r"output max_tokens mean (\d+\.\d)\)\n",
        line,
    )
    assert match, line
    raw = json.loads(out.read_text())
    assert {tuple(s) for s in raw} == {("prompt_content", "cut_chat_history", "max_tokens")}
    assert {s["prompt_content"] for s in raw} == {""}  # no system message: all words counted
    prompts = load_prompts(out)
    assert len(prompts) == 500
    turns = []
    for p in prompts:
        roles = [role for role, _ in p.messages]
        assert len(roles) % 2 == 1
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
        assert all(content.split() for _, content in p.messages)  # no empty message
        turns.append(len(roles) // 2 + 1)
    assert set(turns) == {1, 2, 3, 4, 5}
    # the simulator's prompt-token count is the word count synth aimed at
    words = np.array([_count_words(p.as_messages()) for p in prompts])
    assert words.tolist() == [sum(len(c.split()) for _, c in p.messages) for p in prompts]
    max_tokens = np.array([p.max_tokens for p in prompts])
    assert abs(words.mean() - 500) < 0.05 * 500
    assert abs(words.std() - 100) < 0.1 * 100
    assert abs(max_tokens.mean() - 200) < 0.05 * 200
    assert abs(max_tokens.std() - 50) < 0.1 * 50
    assert float(match[1]) == pytest.approx(words.mean(), abs=0.05)
    assert float(match[2]) == pytest.approx(max_tokens.mean(), abs=0.05)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    synth(tmp_path / "a.json")
    synth(tmp_path / "b.json")
    synth(tmp_path / "c.json", "--seed", "2")
    a = (tmp_path / "a.json").read_bytes()
    assert a == (tmp_path / "b.json").read_bytes()
    assert a != (tmp_path / "c.json").read_bytes()
    # samples are drawn one after the other: a shorter run is a prefix of a longer one
    synth(tmp_path / "d.json", "--count", "20")
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads(a)[:20]


def test_zero_std_gives_exact_lengths_and_small_means_keep_a_word_per_message(
    tmp_path: Path,
) -> None:
    base = ["synth", "--input-tokens-mean", "12", "--output-tokens-mean", "9", "--count", "30"]
    synth(tmp_path / "exact.json", "--turns", "2", base=base)
    prompts = load_prompts(tmp_path / "exact.json")
    assert all(len(p.messages) == 3 and p.max_tokens == 9 for p in prompts)
    assert {_count_words(p.as_messages()) for p in prompts} == {12}
    base[2] = "1"  # 1 word asked, 5 messages: clipped up to 1 word each
    synth(tmp_path / "clip.json", "--turns", "3", base=base)
    prompts = load_prompts(tmp_path / "clip.json")
    assert all(len(p.messages) == 5 for p in prompts)
    assert all(len(c.split()) == 1 for p in prompts for _, c in p.messages)


def test_existing_file_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "synth.json"
    out.write_text("keep me")
    with pytest.raises(ConfigError, match=r"^-o: .*synth\.json exists \(add --force"):
        synth(out)
    assert out.read_text() == "keep me"
    assert synth(out, "--force") == 0
    assert len(load_prompts(out)) == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--turns", "5-1"], '--turns: "5-1" must be N or LO-HI with 1 <= LO <= HI'),
        (["--turns", "0"], '--turns: "0" must be N or LO-HI with 1 <= LO <= HI'),
        (["--turns", "1-x"], '--turns: "1-x" must be N or LO-HI with 1 <= LO <= HI'),
        (["--count", "-5"], "--count: -5 must be a positive integer"),
        (["--count", "0"], "--count: 0 must be a positive integer"),
        (["--count", "many"], "argument --count: invalid int value: 'many'"),
        (["--seed", "-1"], "--seed: -1 must be a non-negative integer"),
        (["--input-tokens-std", "-1"], "--input-tokens-std: -1 must be a number >= 0"),
        (["--input-tokens-mean", "nan"], "--input-tokens-mean: nan must be a number >= 1"),
        (["--output-tokens-mean", "0"], "--output-tokens-mean: 0 must be a number >= 1"),
        (["--count", "10000000"], "--count: 10000000 samples of 500 words would be over"),
    ],
)
def test_bad_values_raise_one_line_config_errors_naming_the_flag(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "synth.json"
    with pytest.raises(ConfigError) as err:
        synth(out, *args)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/synth.json", r"^-o: cannot write .*missing/synth\.json \(No such file"),
        (".", r"^-o: .* is a directory$"),
        ("prompts.txt", r"^-o: .*prompts\.txt: \.txt files are read as plain-text prompts"),
    ],
)
def test_bad_output_paths(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        synth(tmp_path / name)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["fetch"], "argument COMMAND: invalid choice: 'fetch'"),
        (["synth", "--count", "3"], "the following arguments are required: --input-tokens-mean"),
    ],
)
def test_usage_errors_are_config_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        main_dataset(argv)
