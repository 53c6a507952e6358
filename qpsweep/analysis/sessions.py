"""A ``--multi-turn`` level's sessions, from its records and its ``SessionCounts`` (pure).

Definitions (rows with a ``session``; TTFT = first_token_s - sent_s of successful turns):

* ``session_qps``: the start rate the level scheduled (QPS / mean turns per session);
  ``started_qps`` = sessions started / the arrival window;
* ``requests_per_session`` = turns sent / sessions started;
* ``history_tokens``: words of the history sent with each turn (system prompt and earlier
  turns, ``qpsweep.datasets.sessions``), mean and p95 over the turns sent;
* ``ttft_first_turn_s`` / ``ttft_later_turns_s``: TTFT of turn 1 and of turns 2 and after;
  a server with a prefix cache answers later turns, whose history it has seen, sooner than
  their longer prompts alone would let it;
* ``completed`` / ``failed`` / ``not_sent`` as ``SessionCounts`` says (from metadata; without
  it, the sessions seen in the records and nothing not sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qpsweep.analysis.percentiles import Percentiles
from qpsweep.records.metadata import SessionCounts
from qpsweep.records.table import NO_INT, RecordTable


@dataclass(frozen=True)
class SessionSummary:
    """The sessions of one level; see the module docstring."""

    session_qps: float | None
    started_qps: float
    n_sessions: int
    n_completed: int | None
    n_failed: int | None
    requests_per_session: float | None
    history_tokens_mean: float | None
    history_tokens_p95: float | None
    ttft_first_turn_s: Percentiles
    ttft_later_turns_s: Percentiles
    not_sent: tuple[tuple[str, int], ...] = ()

    @property
    def n_not_sent(self) -> int:
        """Turns of started sessions that were never sent."""
        return sum(n for _, n in self.not_sent)


def session_summary(
    t: RecordTable,
    counts: SessionCounts | None,
    window_s: float,
    percentiles: Sequence[float],
) -> SessionSummary | None:
    """The level's ``SessionSummary``; ``None`` for a level without session turns."""
    turns = t.session != NO_INT
    if not turns.any() and counts is None:
        return None
    rows = t.take(turns) if not turns.all() else t
    n_sessions = counts.started if counts else int(np.unique(rows.session).size)
    history = rows.history_tokens[rows.history_tokens != NO_INT].astype(float)
    first = rows.ok & ~np.isnan(rows.first_token_s)
    ttft = rows.first_token_s - rows.sent_s
    return SessionSummary(
        session_qps=counts.session_qps if counts else None,
        started_qps=n_sessions / window_s if window_s > 0 else 0.0,
        n_sessions=n_sessions,
        n_completed=counts.completed if counts else None,
        n_failed=counts.failed if counts else None,
        requests_per_session=len(rows) / n_sessions if n_sessions else None,
        history_tokens_mean=float(history.mean()) if history.size else None,
        history_tokens_p95=float(np.percentile(history, 95)) if history.size else None,
        ttft_first_turn_s=Percentiles.of(ttft[first & (rows.turn == 1)], percentiles),
        ttft_later_turns_s=Percentiles.of(ttft[first & (rows.turn > 1)], percentiles),
        not_sent=tuple(sorted(counts.not_sent.items())) if counts else (),
    )
