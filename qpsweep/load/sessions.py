"""One ``--multi-turn`` level: sessions started open-loop, each turn sent when the one before
it has been answered.

``SessionLevel`` has ``LevelAttack``'s interface (``schedule``, ``drain``, ``cancel_rest``,
``n_sent``), so the sweep runs it the same way.  ``schedule(t0)`` walks the session start
offsets, computed up front (``session_starts_s``: the level's arrival process at the session
rate ``qps / mean turns per session``), and sends each session's first turn right at its
instant, as ``LevelAttack`` sends a request; it never waits for a response.  The other turns
are released by their session: when turn k's record is in (``done_s``), turn k+1 is released
at ``done_s + think`` (think times drawn up front, ``think_times_s``) and sent by a loop timer
at that instant.  That wait for the server is the session's own design, not the generator
falling behind, so each turn's ``scheduled_s`` is its release time and its send lag is
``sent_s - release``, as for any request.

A session ends at its last turn, at a failed turn (its remaining turns are not sent:
``failed_turn``), when its next release would fall at or after the level's arrival window
(``window_closed``: no send leaves after the window, as in a plain level), or when the run is
stopped (``interrupted``: schedule or drain cancelled, or ``cancel_rest``).  ``counts()`` gives
those as ``SessionCounts``: every turn of a started session is either sent (and recorded, by
``LevelAttack``'s rules: a cancelled request is recorded ``interrupted``) or counted as not
sent under exactly one reason.  ``drain`` waits for every session to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from time import perf_counter
from typing import Any

import numpy as np

from qpsweep.config.sessions import SessionPlan
from qpsweep.datasets.prompts import Prompt
from qpsweep.datasets.sessions import Session, turn_messages
from qpsweep.http.client import Sender, Trace
from qpsweep.load.attack import Sink
from qpsweep.load.schedule import arrival_offsets_s
from qpsweep.records.metadata import SessionCounts
from qpsweep.records.record import RequestRecord

_Reading = Coroutine[Any, Any, RequestRecord]


def session_starts_s(
    qps: float, mean_turns: float, duration_s: float, arrival: str, burstiness: float, seed: int
) -> tuple[float, np.ndarray]:
    """``(session_qps, offsets)``: sessions start at ``qps / mean_turns`` per second, so that
    in steady state the turns go out at ``qps``; the offsets are the arrival process's at
    that rate (``arrival_offsets_s``, seeded by the session rate)."""
    session_qps = qps / mean_turns
    return session_qps, arrival_offsets_s(session_qps, duration_s, arrival, burstiness, seed)


def think_times_s(plan: SessionPlan, n: int, seed: int, qps: float) -> list[float]:
    """``n`` think times (seconds), drawn up front: all ``plan.think_s``, or exponential with
    that mean from a generator of ``(seed, qps)``."""
    if not plan.think_exp:
        return [plan.think_s] * n
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4, round(qps * 1000)]))
    thinks: list[float] = rng.exponential(plan.think_s, n).tolist()
    return thinks


class _Run:
    """A session in progress: its number in the level, the turn last sent (0-based), the
    real answers so far (``--history real``) and where its think times start."""

    __slots__ = ("answers", "number", "session", "think_at", "timer", "turn")

    def __init__(self, number: int, session: Session, real: bool, think_at: int) -> None:
        self.number, self.session, self.think_at = number, session, think_at
        self.turn = 0
        self.answers: list[str] | None = [] if real else None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def remaining(self) -> int:
        """Turns after the one last sent."""
        return self.session.n_turns - self.turn - 1


class SessionLevel:
    """The sessions of one level: session ``j`` starts at ``starts_s[j]`` and plays
    ``sessions[j]``; ``thinks_s`` holds the think times of every turn after a first, session
    after session; turns released at or after ``window_s`` are not sent."""

    lead_s = 0.0

    def __init__(
        self,
        index: int,
        qps: float,
        session_qps: float,
        starts_s: Sequence[float],
        sessions: Sequence[Session],
        thinks_s: Sequence[float],
        plan: SessionPlan,
        window_s: float,
        sender: Sender,
        sink: Sink,
    ) -> None:
        self.index, self.qps, self.session_qps = index, qps, session_qps
        self._starts_s, self._sessions, self._thinks_s = starts_s, sessions, thinks_s
        self._real = plan.history == "real"
        self._window_s = window_s
        self._sender, self._sink = sender, sink
        self.in_flight: dict[asyncio.Task[None], tuple[Trace, _Reading, _Run]] = {}
        self._waiting: set[_Run] = set()
        self.n_sent = 0
        self.t0 = 0.0
        self._open = 0  # sessions started and not ended
        self._all_started = False
        self._closed = False  # no further turn is sent
        self._idle = asyncio.Event()
        self._started = self._completed = self._failed = 0
        self._not_sent: dict[str, int] = {}
        self._made: dict[int, tuple[Prompt, int]] = {}  # dataset history: prompt per turn id

    def counts(self) -> SessionCounts:
        """The level's sessions so far (see ``SessionCounts``)."""
        return SessionCounts(
            self.session_qps, self._started, self._completed, self._failed, dict(self._not_sent)
        )

    async def schedule(self, t0: float) -> None:
        """Start every session at ``t0 + its offset``; never awaits a response."""
        self.t0 = t0
        think_at = 0
        try:
            for j, offset in enumerate(self._starts_s):
                delay = t0 + offset - perf_counter()
                await asyncio.sleep(delay if delay > 0 else 0)
                session = self._sessions[j]
                run = _Run(j, session, self._real, think_at)
                think_at += session.n_turns - 1
                self._open += 1
                self._started += 1
                self._send(run, offset)
        except asyncio.CancelledError:
            self._closed = True
            raise
        finally:
            self._all_started = True
            self._check_idle()

    def _prompt(self, run: _Run) -> tuple[Prompt, int]:
        """Turn ``run.turn``'s prompt and history tokens: built for each turn with the real
        answers (id -1: never cached); with the dataset's, once per conversation and turn (id
        ``turn_ids + turn``: the client caches its request)."""
        session = run.session
        if run.answers is not None or session.turn_ids < 0:
            messages, hist = turn_messages(session, run.turn, run.answers)
            return Prompt(-1, messages, session.max_tokens), hist
        key = session.turn_ids + run.turn
        made = self._made.get(key)
        if made is None:
            messages, hist = turn_messages(session, run.turn, None)
            made = self._made[key] = (Prompt(key, messages, session.max_tokens), hist)
        return made

    def _send(self, run: _Run, release_s: float) -> None:
        session = run.session
        prompt, hist = self._prompt(run)
        trace = Trace(self.index, self.qps, self.n_sent, session.prompt_id, release_s)
        trace.session, trace.turn, trace.history_tokens = run.number, run.turn + 1, hist
        if self._real:
            trace.text = []
        reading = self._sender.fetch(trace, prompt, self.t0)
        self.n_sent += 1
        task = asyncio.get_running_loop().create_task(self._finish(trace, reading, run))
        self.in_flight[task] = (trace, reading, run)
        task.add_done_callback(self._settled)

    async def _finish(self, trace: Trace, reading: _Reading, run: _Run) -> None:
        try:
            record = await reading
        except asyncio.CancelledError:
            raise  # recorded by _settled
        except Exception as err:  # a bug must not lose the request: record it, keep going
            message = f"internal error: {type(err).__name__}: {err}"[:200]
            record = trace.finish(perf_counter() - self.t0, "protocol", message)
        self._answered(run, record, trace.text)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """A turn's task ended; a cancelled one (even before it ran) is recorded here."""
        trace, reading, run = self.in_flight.pop(task)
        if task.cancelled():
            reading.close()
            done_s = perf_counter() - self.t0
            record = trace.finish(done_s, "interrupted", "cancelled: the run was interrupted")
            self._answered(run, record, None)

    def _answered(self, run: _Run, record: RequestRecord, text: list[str] | None) -> None:
        """Record turn ``run.turn``, then end the session or release its next turn."""
        self._sink(record)
        if not record.ok:
            self._failed += 1
            failed = "interrupted" if record.error_kind == "interrupted" else "failed_turn"
            self._end(run, failed)
            return
        if not run.remaining:
            self._completed += 1
            self._end(run, "")
            return
        if run.answers is not None:
            run.answers.append("".join(text or ()))
        release_s = record.done_s + self._thinks_s[run.think_at + run.turn]
        if self._closed:
            self._end(run, "interrupted")
        elif release_s >= self._window_s:
            self._end(run, "window_closed")
        else:
            delay = self.t0 + release_s - perf_counter()
            loop = asyncio.get_running_loop()
            run.timer = loop.call_later(max(delay, 0.0), self._release, run, release_s)
            self._waiting.add(run)

    def _release(self, run: _Run, release_s: float) -> None:
        self._waiting.discard(run)
        run.timer = None
        if self._closed:
            self._end(run, "interrupted")
            return
        run.turn += 1
        self._send(run, release_s)

    def _end(self, run: _Run, reason: str) -> None:
        """The session ends; its turns after ``run.turn`` are not sent, for ``reason``."""
        if run.remaining:
            self._not_sent[reason] = self._not_sent.get(reason, 0) + run.remaining
        self._open -= 1
        self._check_idle()

    def _check_idle(self) -> None:
        if self._all_started and self._open == 0:
            self._idle.set()

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for every session to end; cancelled (the run stops): no
        further turn is sent."""
        if self._open == 0:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        except asyncio.CancelledError:
            self._closed = True
            raise

    async def cancel_rest(self) -> None:
        """Send no further turn (those waiting are not sent: ``interrupted``), cancel the
        turns in flight and wait until each has been recorded."""
        self._closed = True
        for run in list(self._waiting):
            if run.timer is not None:
                run.timer.cancel()
            self._waiting.discard(run)
            self._end(run, "interrupted")
        pending = set(self.in_flight)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
