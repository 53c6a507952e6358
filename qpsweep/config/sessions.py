"""``--multi-turn`` settings: the think time between turns and whose answers the history holds.

``--think-time`` is ``SECONDS`` (a constant, ``>= 0``) or ``exp:MEAN`` (exponential with mean
``MEAN > 0`` seconds, drawn up front from the run's seed); ``--history`` is ``real`` (the
model's own answers to the earlier turns) or ``dataset`` (the dataset's assistant turns).
``parse_think_time`` raises ``ConfigError`` with one line naming the flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qpsweep.errors import ConfigError

HISTORIES = ("real", "dataset")


@dataclass(frozen=True)
class SessionPlan:
    """How sessions run: think time ``think_s`` (constant, or the mean when
    ``think_exp``) after each answer, and ``history`` (``real`` or ``dataset``)."""

    think_s: float = 0.0
    think_exp: bool = False
    history: str = "real"

    @property
    def think_time(self) -> str:
        """The ``--think-time`` value that gives this plan."""
        return f"exp:{self.think_s:g}" if self.think_exp else f"{self.think_s:g}"


def parse_think_time(text: str) -> tuple[float, bool]:
    """``"2"`` -> ``(2.0, False)``, ``"exp:3"`` -> ``(3.0, True)``."""
    raw = text.strip()
    exp = raw.lower().startswith("exp:")
    number = raw[4:] if exp else raw
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(
            f"--think-time: {text!r} must be SECONDS (e.g. 2) or exp:MEAN (e.g. exp:2)"
        ) from None
    if not math.isfinite(value) or value < 0 or (exp and value == 0):
        least = "greater than 0" if exp else "0 or more"
        raise ConfigError(f"--think-time: {text!r}: the seconds must be finite and {least}")
    return value, exp


def session_plan(think_time: str, history: str) -> SessionPlan:
    """The plan of ``--think-time`` and ``--history``."""
    if history not in HISTORIES:
        raise ConfigError(f"--history: {history!r} is not one of {', '.join(HISTORIES)}")
    think_s, think_exp = parse_think_time(think_time)
    return SessionPlan(think_s, think_exp, history)
