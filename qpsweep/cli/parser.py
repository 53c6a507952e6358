"""The argument parser of every qpsweep command: a usage error is one ``ConfigError`` line.

``main`` turns that error into ``qpsweep: error: ...`` on stderr and exit code 2, without
argparse's usage dump.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from qpsweep.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse that raises ``ConfigError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, then ``ConfigError`` for a value with an undecodable byte (a lone
        surrogate from ``os.fsdecode``): it could be neither sent nor written."""
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(ns, action.dest, None)
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and not _is_utf8(text):
                    names = action.option_strings
                    flag = names[-1] if names else (action.metavar or action.dest)
                    raise ConfigError(f"{flag}: not valid UTF-8 (an undecodable byte)")
        return ns, rest


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
