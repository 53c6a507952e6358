"""``qpsweep dataset synth``: write a synthetic seed-format dataset with chosen token lengths.

Token rule: 1 token = 1 whitespace-separated word; no tokenizer is downloaded; real tokenizers
give roughly 1.3 tokens per English word. It is the rule the built-in simulator uses to count
prompt tokens, so a synthetic sample of W words is W prompt tokens there.

Output: a JSON array (one sample per line) of
``{"prompt_content": "", "cut_chat_history": [{"role", "content"}, ...], "max_tokens": M}``,
readable by :func:`qpsweep.datasets.prompts.load_prompts`. ``prompt_content`` is empty (no
system message is sent and every word counted below is a word of the request) unless a shared
prefix is asked for (below).

Sample i draws, from one ``numpy.random.default_rng(seed)`` generator and in this order (so
the first N samples do not depend on ``--count``):

* turns ``T``: uniform integer in ``[LO, HI]`` (``--turns LO-HI``, or ``N`` for ``N-N``);
  the history is ``T - 1`` user/assistant pairs then the final user turn: ``2T - 1`` messages;
* input words ``W = max(round(normal(input_mean, input_std)), 2T - 1)``: at least 1 word per
  message (for ``T = 1`` this is ``W >= 1``);
* ``max_tokens = max(round(normal(output_mean, output_std)), 1)``;
* the split: each message gets 1 word plus a multinomial share of the other ``W - (2T - 1)``
  words with equal probabilities, so the message lengths add up to exactly ``W``;
* the words: uniform draws from the fixed vocabulary of :mod:`qpsweep.datasets.prompts`.

Shared prefixes (``--prefix-tokens N --prefix-groups G``, N > 0): first G prefixes of N words
each are drawn, then each sample's group, uniform in ``[0, G)``, both from a second generator
``numpy.random.default_rng(SeedSequence([seed, 3]))`` (so the conversations above are the
same bytes with or without a prefix); the sample's ``prompt_content`` (its system message) is
its group's prefix, shared by every sample of the group, as a real system prompt or a RAG
context is.  The prompt then has ``N + W`` words, ``N`` of them shared.

Same flags and seed -> the same bytes. The file is never overwritten without ``--force``.
Bad flags, an existing or unwritable output raise ``ConfigError`` (one line naming the flag).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from qpsweep.datasets.prompts import _VOCABULARY

TOKEN_RULE = (
    "1 token = 1 whitespace-separated word; no tokenizer is downloaded; "
    "real tokenizers give roughly 1.3 tokens per English word"
)


def synth_samples(
    count: int,
    input_mean: float,
    input_std: float,
    output_mean: float,
    output_std: float,
    turns: tuple[int, int],
    seed: int,
    prefix_tokens: int = 0,
    prefix_groups: int = 1,
) -> list[dict[str, Any]]:
    """``count`` seed-format samples drawn as the module docstring states."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(_VOCABULARY)
    shared = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    prefixes = [
        " ".join(vocabulary[shared.integers(0, len(vocabulary), size=prefix_tokens)].tolist())
        for _ in range(prefix_groups if prefix_tokens > 0 else 0)
    ]
    samples = []
    for _ in range(count):
        n_turns = int(rng.integers(turns[0], turns[1] + 1))
        n_messages = 2 * n_turns - 1
        words = max(round(float(rng.normal(input_mean, input_std))), n_messages)
        max_tokens = max(round(float(rng.normal(output_mean, output_std))), 1)
        lengths = 1 + rng.multinomial(words - n_messages, [1 / n_messages] * n_messages)
        text = vocabulary[rng.integers(0, len(vocabulary), size=words)].tolist()
        bounds = np.concatenate(([0], np.cumsum(lengths))).tolist()
        history = [
            {"role": "user" if k % 2 == 0 else "assistant", "content": " ".join(text[a:b])}
            for k, (a, b) in enumerate(itertools.pairwise(bounds))
        ]
        system = prefixes[int(shared.integers(0, prefix_groups))] if prefixes else ""
        samples.append(
            {"prompt_content": system, "cut_chat_history": history, "max_tokens": max_tokens}
        )
    return samples
