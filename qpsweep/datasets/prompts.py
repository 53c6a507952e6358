"""Conversation datasets -> ``Prompt`` tuples, and the seeded order they are sent in.

Accepted files (format detected per sample by its keys, so files may mix them):

* seed format (``cut_chat_history`` / ``prompt_content``):
  ``{"prompt_content": str, "cut_chat_history": [{"role", "content"}, ...]}``;
  ``prompt_content`` becomes the system message (skipped when empty), ``system`` turns
  inside the history are skipped;
* OpenAI style (``messages``): ``{"messages": [{"role", "content"}, ...]}``;
* ShareGPT (``conversations``): ``{"conversations": [{"from", "value"}, ...]}`` with ``from``
  human/user -> user, gpt/assistant -> assistant, system -> system; the request is the
  conversation up to and including its last human turn (later gpt turns are dropped);
* each as a JSON array, or as JSON Lines (one object per line, blank lines ignored);
* a bare prompt (``prompt``): ``{"prompt": str}``, sent as it is to the completions API
  (``--api completions``) and as one user message to the chat API;
* plain text (by suffix ``.txt``): one prompt per non-blank line, sent as one user message
  (to the completions API: as it is).

A sample with keys of more than one format is an error. Unknown fields are ignored. Any JSON
sample may carry ``max_tokens`` (a positive integer) overriding ``--max-tokens``.
A bad file raises ``DatasetError`` with one line: ``FILE: sample N: FIELD problem``.

``dataset_path(text)`` is the file ``--dataset`` names: the path as given when it exists, else
the dataset shipped with qpsweep under that name (``datasets/conversations.json`` works from
any directory once qpsweep is installed: ``qpsweep.config.shipped``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qpsweep.config.shipped import shipped_path
from qpsweep.errors import DatasetError

ROLES = ("user", "assistant", "system")
MAX_DATASET_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Prompt:
    """One request's conversation; ``id`` is the sample's 0-based index in its file."""

    id: int
    messages: tuple[tuple[str, str], ...]
    max_tokens: int | None = None
    text: str | None = None  # a prompt string of its own (``prompt`` field, ``.txt`` line)

    def as_messages(self) -> list[dict[str, str]]:
        """The OpenAI ``messages`` list for this prompt."""
        return [{"role": role, "content": content} for role, content in self.messages]

    def as_text(self) -> str:
        """The prompt string for the completions API: ``text`` when the sample gave one,
        else the messages as ``"System: ..."``, ``"User: ..."``,
        ``"Assistant: ..."`` paragraphs joined by a blank line, then ``"\n\nAssistant:"``."""
        if self.text is not None:
            return self.text
        turns = [f"{role.capitalize()}: {content}" for role, content in self.messages]
        return "\n\n".join(turns) + "\n\nAssistant:"


class _SampleError(Exception):
    """A problem in one sample; ``load_prompts`` adds the file and index."""


def _turns(value: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise _SampleError(f"{field} must be a non-empty list of {{role, content}} turns")
    turns = []
    for i, turn in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(turn, dict):
            raise _SampleError(f"{where} must be an object with role and content")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise _SampleError(f"{where}.role must be user/assistant/system")
        if not isinstance(content, str):
            raise _SampleError(f"{where}.content must be a string")
        turns.append((role, content))
    return turns


def _max_tokens(sample: dict[str, Any]) -> int | None:
    value = sample.get("max_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _SampleError("max_tokens must be a positive integer")
    return value


_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
_FORMATS = (  # (name, keys that select it), in the order the "none of them" error lists them
    ("seed format", ("cut_chat_history", "prompt_content")),
    ("OpenAI format", ("messages",)),
    ("ShareGPT format", ("conversations",)),
    ("prompt format", ("prompt",)),
)


def _sharegpt(value: Any) -> list[tuple[str, str]]:
    """ShareGPT ``conversations`` -> turns up to and including the last human turn."""
    if not isinstance(value, list) or not value:
        raise _SampleError("conversations must be a non-empty list of {from, value} turns")
    turns = []
    for i, turn in enumerate(value):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise _SampleError(f"{where} must be an object with from and value")
        speaker, content = turn.get("from"), turn.get("value")
        role = _SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise _SampleError(f"{where}.from must be human/gpt/system")
        if not isinstance(content, str):
            raise _SampleError(f"{where}.value must be a string")
        turns.append((role, content))
    last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    if last_user is None:
        raise _SampleError("conversations: no human turn")
    return turns[: last_user + 1]


def parse_sample(sample: Any, index: int) -> Prompt:
    """One decoded JSON value -> ``Prompt``; raises ``_SampleError`` naming the field."""
    if not isinstance(sample, dict):
        raise _SampleError("must be a JSON object")
    found = [name for name, keys in _FORMATS if any(key in sample for key in keys)]
    if len(found) > 1:
        keys = ", ".join(k for _, ks in _FORMATS for k in ks if k in sample)
        raise _SampleError(f"mixes the keys of {' and '.join(found)} ({keys}); use one format")
    if not found:
        raise _SampleError(
            "needs cut_chat_history (seed format), messages (OpenAI format), "
            "conversations (ShareGPT format) or prompt"
        )
    if found[0] == "prompt format":
        text = sample["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise _SampleError("prompt must be a non-empty string")
        return Prompt(index, (("user", text),), _max_tokens(sample), text=text)
    if found[0] == "OpenAI format":
        messages = _turns(sample["messages"], "messages")
    elif found[0] == "ShareGPT format":
        messages = _sharegpt(sample["conversations"])
    else:
        system = sample.get("prompt_content")
        if not isinstance(system, str):
            raise _SampleError("prompt_content must be a string")
        history = _turns(sample.get("cut_chat_history"), "cut_chat_history")
        messages = [("system", system)] if system else []
        messages += [turn for turn in history if turn[0] != "system"]
    if not any(role != "system" for role, _ in messages):
        raise _SampleError("has no user or assistant turn")
    return Prompt(id=index, messages=tuple(messages), max_tokens=_max_tokens(sample))


def _decode(path: Path, text: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            samples = json.loads(text)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
        if not isinstance(samples, list):
            raise DatasetError(f"{path}: must hold a JSON array of samples")
        return samples
    samples = []
    # split on \n only: str.splitlines() also breaks at U+2028/U+0085, legal inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}: line {lineno}: invalid JSON: {err.msg}") from None
    return samples


def dataset_path(text: str) -> Path:
    """``Path(text)`` when that exists (or is absolute); otherwise the shipped file of that
    relative name when there is one, else ``Path(text)`` (so a missing file is reported as
    given)."""
    given = Path(text)
    if given.is_absolute() or given.exists():
        return given
    return shipped_path(text) or given


def load_prompts(path: Path) -> tuple[Prompt, ...]:
    """Read and validate every sample of ``path``; at least one sample is required."""
    return load_dataset(path)[0]


def read_text_file(path: Path, what: str, formats: str) -> tuple[str, str]:
    """The UTF-8 text of ``path`` (a file, a pipe or a device, read once) and the hex SHA-256
    of the very bytes read.  ``DatasetError`` naming the file when it is missing, a directory,
    unreadable, over ``MAX_DATASET_BYTES`` (``/dev/zero`` never ends: reading stops there),
    binary (a NUL; checked in the first MiB before reading on) or not UTF-8.  ``what`` names
    the file's kind (``dataset``), ``formats`` the formats it may hold."""
    limit_mib = MAX_DATASET_BYTES // 2**20
    binary = f"{path}: is a binary file, not {formats}"
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise DatasetError(f"{path}: {size / 2**20:.0f} MiB is over the {limit_mib} MiB limit")
        pieces: list[bytes] = []
        n_bytes = 0
        with path.open("rb") as file:
            while piece := file.read(2**20):
                if not pieces and b"\0" in piece:
                    raise DatasetError(binary)
                pieces.append(piece)
                n_bytes += len(piece)
                if n_bytes > MAX_DATASET_BYTES:
                    raise DatasetError(f"{path}: over the {limit_mib} MiB limit")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, not a {what} file") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot be read ({err.strerror})") from None
    raw = b"".join(pieces)
    if b"\0" in raw:
        raise DatasetError(binary)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: is not UTF-8 text (byte {err.start})") from None
    return text, hashlib.sha256(raw).hexdigest()


def load_dataset(path: Path) -> tuple[tuple[Prompt, ...], str]:
    """``load_prompts(path)`` and the hex SHA-256 of the bytes it read (a file rewritten or
    deleted after reading changes neither)."""
    text, sha256 = read_text_file(path, "dataset", "JSON or JSON Lines")
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in text.split("\n")]
        prompts = [
            Prompt(i, (("user", line),), text=line) for i, line in enumerate(filter(None, lines))
        ]
        if not prompts:
            raise DatasetError(f"{path}: contains no samples")
        return tuple(prompts), sha256
    samples = _decode(path, text)
    if not samples:
        raise DatasetError(f"{path}: contains no samples")
    prompts = []
    for index, sample in enumerate(samples):
        try:
            prompts.append(parse_sample(sample, index))
        except _SampleError as err:
            raise DatasetError(f"{path}: sample {index}: {err}") from None
    return tuple(prompts), sha256


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes (recorded in metadata for reproducibility)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


_VOCABULARY = (
    "plan",
    "capacity",
    "latency",
    "queue",
    "token",
    "batch",
    "model",
    "server",
    "request",
    "stream",
    "budget",
    "cache",
    "sweep",
    "level",
    "rate",
    "burst",
    "median",
    "tail",
    "window",
    "engine",
    "prompt",
    "answer",
    "summary",
    "detail",
    "explain",
    "compare",
    "measure",
    "limit",
    "steady",
    "growth",
    "signal",
    "report",
    "table",
    "figure",
)


def synthetic_prompts(count: int, words_mean: int, seed: int = 0) -> tuple[Prompt, ...]:
    """``count`` single-turn prompts of ``words_mean`` +- 50% whitespace words (uniform),
    drawn from a small fixed vocabulary with a seeded generator; no files involved."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    low, high = max(1, words_mean // 2), max(1, words_mean + words_mean // 2)
    prompts = []
    for index in range(count):
        words = rng.choice(_VOCABULARY, size=int(rng.integers(low, high + 1)))
        text = "Please answer briefly: " + " ".join(words.tolist())
        prompts.append(Prompt(index, (("user", text),)))
    return tuple(prompts)


def prompts_sha256(prompts: tuple[Prompt, ...]) -> str:
    """Hex SHA-256 of the prompts' messages (identifies a dataset that has no file)."""
    data = json.dumps([[list(m) for m in p.messages] for p in prompts]).encode()
    return hashlib.sha256(data).hexdigest()


def prompt_order(n_prompts: int, seed: int) -> np.ndarray:
    """Permutation of ``range(n_prompts)`` fixed by ``seed``; request k of a level uses
    ``order[k % n_prompts]``, so samples are cycled in the same shuffled order every level."""
    return np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(n_prompts)
