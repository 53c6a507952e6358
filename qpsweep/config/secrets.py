"""Keeping secrets out of everything qpsweep writes or prints.

Two tools: ``redact_argv`` rewrites a command line so that API keys and secret-looking
header values become ``***``; ``scrub`` replaces every occurrence of known secret strings
in a text.  Both are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MASK = "***"
_SECRET_FLAGS = ("--api-key",)
_HEADER_FLAGS = ("-H", "--header")
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "password")


def is_secret_header(name: str) -> bool:
    """True when a header's value should never be written (Authorization, X-Api-Key, ...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def redact_header(value: str) -> str:
    """``"K: V"`` -> ``"K: ***"`` when K looks secret; other values unchanged."""
    name, sep, _ = value.partition(":")
    return f"{name}{sep} {MASK}" if sep and is_secret_header(name.strip()) else value


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Copy of ``argv`` with ``--api-key`` values and secret header values masked.

    Handles both ``--flag value`` and ``--flag=value`` spellings.
    """
    out: list[str] = []
    pending: str | None = None
    for arg in argv:
        if pending is not None:
            out.append(MASK if pending in _SECRET_FLAGS else redact_header(arg))
            pending = None
            continue
        flag, eq, value = arg.partition("=")
        if flag in _SECRET_FLAGS + _HEADER_FLAGS and eq:
            masked = MASK if flag in _SECRET_FLAGS else redact_header(value)
            out.append(f"{flag}={masked}")
        elif arg in _SECRET_FLAGS + _HEADER_FLAGS:
            out.append(arg)
            pending = arg
        else:
            out.append(arg)
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
