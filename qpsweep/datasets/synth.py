"""``qpsweep dataset synth``: write a synthetic seed-format dataset with chosen token lengths.

Token rule: 1 token = 1 whitespace-separated word; no tokenizer is downloaded; real tokenizers
give roughly 1.3 tokens per English word. It is the rule the built-in simulator uses to count
prompt tokens, so a synthetic sample of W words is W prompt tokens there.

Output: a JSON array (one sample per line) of
``{"prompt_content": "", "cut_chat_history": [{"role", "content"}, ...], "max_tokens": M}``,
readable by :func:`qpsweep.datasets.prompts.load_prompts`. ``prompt_content`` is empty, so no system
message is sent and every word counted below is a word of the request.

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
) -> list[dict[str, Any]]:
    """``count`` seed-format samples drawn as the module docstring states."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(_VOCABULARY)
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
        samples.append(
            {"prompt_content": "", "cut_chat_history": history, "max_tokens": max_tokens}
        )
    return samples
