"""The argument parser of every qpsweep command: a usage error is one ``ConfigError`` line.

``main`` turns that error into ``qpsweep: error: ...`` on stderr and exit code 2, without
argparse's usage dump.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from qpsweep.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse that raises ``ConfigError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")
