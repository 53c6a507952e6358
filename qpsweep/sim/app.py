"""Serving an aiohttp app on loopback: in a background thread (``AppServer``) for the demo
and the tests, which share the process with the load generator, or awaited (``start_app``).

Only loopback addresses are accepted: qpsweep never serves anything on a network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import sys
import threading
from typing import TypeVar

from aiohttp import web

_Server = TypeVar("_Server", bound="AppServer")
GIL_SWITCH_S = 0.0005


def check_loopback(host: str) -> None:
    """``ValueError`` unless ``host`` is a loopback address or ``localhost``."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"host: the simulator binds loopback only, got {host!r}")


def app_url(host: str, port: int, scheme: str = "http") -> str:
    """``scheme://host:port``, with brackets around an IPv6 host."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


async def start_app(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns its runner (``await runner.cleanup()`` to stop) and the
    bound port (a free one when ``port`` is 0)."""
    check_loopback(host)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


class AppServer:
    """Context manager serving an aiohttp app on loopback from a background thread with its
    own event loop; ``port=0`` binds a free port, read back from ``port`` / ``base_url``.
    With ``ssl_context`` it serves HTTPS."""

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        check_loopback(host)
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._switch_s = sys.getswitchinterval()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (``https`` with TLS) with the bound port."""
        return app_url(self.host, self.port, "https" if self.ssl_context else "http")

    def __enter__(self: _Server) -> _Server:
        # Sharing the process with a load generator: hand the GIL over every 0.5 ms instead of
        # 5 ms, or a send can wait behind a simulator step (measured: send lag p99 14-18 ms at
        # 18 QPS in the demo with 5 ms, at most 5 ms with 0.5 ms).  Restored on exit.
        self._switch_s = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="qpsweep-sim", daemon=True)
        self._thread.start()
        try:
            started = asyncio.run_coroutine_threadsafe(
                start_app(self.app, self.host, self.port, self.ssl_context), loop
            )
            self._runner, self.port = started.result()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        self._loop = self._thread = self._runner = None
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        sys.setswitchinterval(self._switch_s)
