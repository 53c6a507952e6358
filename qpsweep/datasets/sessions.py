"""Conversations -> sessions of turns, and the messages each turn sends (pure).

A ``Prompt``'s messages split at its user messages: ``prefix`` is everything before the first
user message (the system prompt), turn ``k`` is user message ``k``, and ``answers[k]`` the
messages between it and the next user message (the dataset's assistant turns; after the last
user message there are none).  Turn ``k`` (0-based) is sent as::

    prefix + [user_0, answer_0, ..., user_{k-1}, answer_{k-1}] + [user_k]

where ``answer_i`` is the model's actual answer to turn ``i`` as one assistant message
(``--history real``) or ``answers[i]`` as the dataset has it (``--history dataset``).
``history_tokens`` of a turn counts the words (whitespace-separated: qpsweep's token rule,
see ``datasets/README.md``) of every message sent before ``user_k``.

A conversation without a user message cannot be a session: ``sessions_of`` raises
``DatasetError`` naming the file and the sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from qpsweep.datasets.prompts import Prompt
from qpsweep.errors import DatasetError

Message = tuple[str, str]


@dataclass(frozen=True)
class Session:
    """One conversation as turns; see the module docstring."""

    prompt_id: int
    prefix: tuple[Message, ...]
    users: tuple[str, ...]
    answers: tuple[tuple[Message, ...], ...]
    max_tokens: int | None = None
    turn_ids: int = -1  # turn k with the dataset's history is prompt id turn_ids + k

    @property
    def n_turns(self) -> int:
        """How many requests the session sends when nothing fails."""
        return len(self.users)


def session_of(prompt: Prompt) -> Session | None:
    """``prompt`` split into turns, or ``None`` when it has no user message."""
    starts = [i for i, (role, _) in enumerate(prompt.messages) if role == "user"]
    if not starts:
        return None
    ends = [*starts[1:], len(prompt.messages)]
    messages = prompt.messages
    return Session(
        prompt.id,
        messages[: starts[0]],
        tuple(messages[i][1] for i in starts),
        tuple(messages[i + 1 : end] for i, end in zip(starts, ends, strict=True)),
        prompt.max_tokens,
    )


def sessions_of(prompts: Sequence[Prompt], path: str) -> tuple[Session, ...]:
    """Every prompt as a session; ``DatasetError`` (``FILE: sample N: ...``) for one that has
    no user turn.  Each session's ``turn_ids`` starts a block of ``n_turns`` prompt ids, the
    blocks one after the other from above every sample's id: turn ``k`` sent with the
    dataset's history (always the same messages) is prompt ``turn_ids + k``, so the client
    encodes it once (see ``Sender.body``)."""
    out = []
    next_id = 1 + max((p.id for p in prompts), default=-1)
    for prompt in prompts:
        session = session_of(prompt)
        if session is None:
            raise DatasetError(
                f"{path}: sample {prompt.id}: no user turn, so no --multi-turn session: each "
                "conversation needs at least one"
            )
        out.append(replace(session, turn_ids=next_id))
        next_id += session.n_turns
    return tuple(out)


def mean_turns(sessions: Sequence[Session]) -> float:
    """The mean number of turns per session of the dataset."""
    return sum(s.n_turns for s in sessions) / len(sessions)


def _words(messages: Sequence[Message]) -> int:
    return sum(len(content.split()) for _, content in messages)


def turn_messages(
    session: Session, turn: int, real_answers: Sequence[str] | None
) -> tuple[tuple[Message, ...], int]:
    """``(messages, history_tokens)`` of turn ``turn`` (0-based): with ``real_answers`` (the
    model's answers to turns ``0 .. turn - 1``) the history holds those, else the dataset's."""
    history = list(session.prefix)
    for i in range(turn):
        history.append(("user", session.users[i]))
        if real_answers is not None:
            history.append(("assistant", real_answers[i]))
        else:
            history.extend(session.answers[i])
    return (*history, ("user", session.users[turn])), _words(history)
