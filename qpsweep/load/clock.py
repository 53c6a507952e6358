"""How far this machine's clock is from the server's, read from HTTP ``Date`` headers.

Shards on different machines start together only if their clocks agree.  They cannot see
each other, but they all talk to the same server, whose ``Date`` header (RFC 9110: whole
seconds) is a common reference.  One ``Date`` is only good to a second, but the moment it
turns over is sharp: ``measure_offset_s`` sends small requests every ``POLL_S`` until two
consecutive answers carry different seconds.  The server's clock reached the later second
``D`` between the send of the earlier request (local time ``a``) and the receipt of the later
answer (``b``), so::

    offset_s = local - server = (a + b) / 2 - D        uncertainty_s = (b - a) / 2

``qpsweep merge`` compares the shards' offsets: the server's own error cancels out, and what
remains is how far the shards' clocks were apart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

POLL_S = 0.01
WINDOW_S = 2.5  # the Date second must turn over within this; 1 s plus slack for slow answers


@dataclass(frozen=True)
class ClockOffset:
    """``offset_s``: this machine's clock minus the server's, within ``± uncertainty_s``."""

    offset_s: float
    uncertainty_s: float
    url: str


def _date_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


async def _date_at(session: aiohttp.ClientSession, url: str) -> tuple[float, float, float | None]:
    """``(sent, received, Date)`` of one GET, times in Unix seconds of this machine."""
    sent = time.time()
    async with session.get(url, allow_redirects=False) as resp:
        received = time.time()
        date = _date_s(resp.headers.get("Date"))
        await resp.read()
    return sent, received, date


async def measure_offset_s(session: aiohttp.ClientSession, url: str) -> ClockOffset | None:
    """This machine's clock minus the server's (see the module docstring), or ``None`` when
    the server sends no ``Date`` header, fails, or its second does not turn over in
    ``WINDOW_S``."""
    try:
        prev_sent, _, prev_date = await _date_at(session, url)
        if prev_date is None:
            return None
        give_up = time.time() + WINDOW_S
        while time.time() < give_up:
            await asyncio.sleep(POLL_S)
            sent, received, date = await _date_at(session, url)
            if date is None:
                return None
            if date > prev_date:
                middle = (prev_sent + received) / 2
                return ClockOffset(middle - date, (received - prev_sent) / 2, url)
            prev_sent, prev_date = sent, date
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return None
    return None
