"""A fast local OpenAI-style streaming target: nginx with its echo module, from a temp dir.

Variants (every request, whatever its body, gets the same chat-completions SSE stream of
``N_EVENTS`` = 18 events: 16 content chunks, a final chunk with ``finish_reason`` and
``usage`` (``completion_tokens`` = 16), then ``data: [DONE]``; Content-Type text/event-stream):

* ``fast``: no delay; nginx writes the whole stream at once (one or a few TCP segments);
* ``flush``: no delay, but ``echo_flush`` after every event (many small writes);
* ``ttft50``: ``echo_sleep`` ``TTFT50_S`` = 50 ms before the first content chunk, then the other
  15 content chunks ``ITL50_S`` = 10 ms apart, each flushed; the injected TTFT is 50 ms.

nginx runs as one process (``master_process off; daemon off;``) under its own prefix in a
temporary directory (config, pid file, error log, temp paths), listening on a free
``127.0.0.1`` port, pinned to one core when asked; it never touches the system nginx service
and is always stopped (SIGQUIT, then SIGKILL) when the context manager exits.  The request body
is read (``echo_read_request_body``) so that keep-alive connections stay usable.

Standalone: ``python tests/perf/nginx_target.py [--variant fast|flush|ttft50] [--seconds 60]``
prints the URL and serves until the time is up or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MODULE_PATHS = (
    Path("/usr/lib/nginx/modules/ngx_http_echo_module.so"),
    Path("/usr/share/nginx/modules/ngx_http_echo_module.so"),
)
INSTALL_HINT = "apt-get install -y nginx libnginx-mod-http-echo"
VARIANTS = ("fast", "flush", "ttft50")
N_CONTENT_CHUNKS = 16
N_EVENTS = N_CONTENT_CHUNKS + 2  # content chunks, the finish+usage chunk, [DONE]
TTFT50_S = 0.050
ITL50_S = 0.010
CHAT_PATH = "/v1/chat/completions"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def accepted_connections(base_url: str) -> int:
    """Connections nginx has accepted since it started (``stub_status`` at ``/status``)."""
    with urllib.request.urlopen(f"{base_url}/status", timeout=5) as resp:
        text = resp.read().decode()
    return int(text.splitlines()[2].split()[0])  # "accepts handled requests" values


class MissingNginx(RuntimeError):
    """nginx or its echo module is not installed; ``INSTALL_HINT`` says how to get them."""


@dataclass(frozen=True)
class Target:
    """A running target: its chat-completions URL, its base URL (``/status`` has nginx's
    connection counters), its variant and the nginx pid."""

    url: str
    base_url: str
    variant: str
    pid: int
    injected_ttft_s: float
    prefix: Path


def find_nginx() -> tuple[str, Path]:
    """The nginx binary and the echo module's ``.so``; ``MissingNginx`` when either is absent."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    module = next((p for p in MODULE_PATHS if p.is_file()), None)
    if binary is None or module is None:
        raise MissingNginx(f"nginx and its echo module are needed: {INSTALL_HINT}")
    return binary, module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def sse_events() -> list[str]:
    """The ``N_EVENTS`` SSE events of one response, each ``data: ...\\n\\n``."""
    chunks = [
        _chunk({"role": "assistant", "content": "tok"} if k == 0 else {"content": " tok"})
        for k in range(N_CONTENT_CHUNKS)
    ]
    final = _chunk({}, "stop")
    final["usage"] = {
        "prompt_tokens": 8,
        "completion_tokens": N_CONTENT_CHUNKS,
        "total_tokens": 8 + N_CONTENT_CHUNKS,
    }
    lines = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in [*chunks, final]]
    lines.append("data: [DONE]\n\n")
    assert len(lines) == N_EVENTS
    return lines


def _quote(text: str) -> str:
    """An nginx single-quoted string; ``\\n`` is nginx's own newline escape."""
    assert "'" not in text and "\\" not in text.replace("\n", "")
    return "'" + text.replace("\n", "\\n") + "'"


def echo_commands(variant: str) -> list[str]:
    """The echo-module directives of the location for ``variant``."""
    events = sse_events()
    flush_each = variant in ("flush", "ttft50")
    out = ["echo_read_request_body;"]
    for k, event in enumerate(events):
        if variant == "ttft50":
            if k == 0:
                out.append(f"echo_sleep {TTFT50_S:g};")
            elif k < N_CONTENT_CHUNKS:
                out.append(f"echo_sleep {ITL50_S:g};")
        out.append(f"echo -n {_quote(event)};")
        if flush_each:
            out.append("echo_flush;")
    return out


def nginx_conf(variant: str, port: int, prefix: Path, module: Path) -> str:
    """A complete nginx.conf for one variant, every path inside ``prefix``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    body = "\n            ".join(echo_commands(variant))
    return f"""load_module {module};
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_body_buffer_size 64k;
    client_max_body_size 1m;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = {CHAT_PATH} {{
            default_type text/event-stream;
            {body}
        }}
        location = /health {{
            return 200 "ok\\n";
        }}
        location = /status {{
            stub_status;
        }}
    }}
}}
"""


def _wait_ready(proc: subprocess.Popen[bytes], port: int, error_log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            raise RuntimeError(f"nginx exited with {proc.returncode}: {log[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGQUIT (graceful), then SIGKILL after ``STOP_TIMEOUT_S``; only this process."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def nginx_target(variant: str = "fast", cpu: int | None = None) -> Iterator[Target]:
    """Run the target for ``variant`` (pinned to core ``cpu`` when given) for the block."""
    binary, module = find_nginx()
    with tempfile.TemporaryDirectory(prefix="qpsweep-nginx-") as tmp:
        prefix = Path(tmp)
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(variant, port, prefix, module), encoding="utf-8")
        error_log = prefix / "error.log"
        cmd = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(error_log)]
        with (prefix / "stderr.log").open("wb") as stderr:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            if cpu is not None:
                os.sched_setaffinity(proc.pid, {cpu})
            _wait_ready(proc, port, error_log)
            injected_s = TTFT50_S if variant == "ttft50" else 0.0
            base = f"http://127.0.0.1:{port}"
            yield Target(f"{base}{CHAT_PATH}", base, variant, proc.pid, injected_s, prefix)
        finally:
            _stop(proc)


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="fast")
    parser.add_argument("--seconds", type=float, default=60.0, help="serve this long (max 3600)")
    parser.add_argument("--cpu", type=int, default=None, help="pin nginx to this core")
    parser.add_argument("--print-conf", action="store_true", help="print nginx.conf and exit")
    args = parser.parse_args()
    try:
        if args.print_conf:
            _, module = find_nginx()
            print(nginx_conf(args.variant, 8080, Path("/tmp/PREFIX"), module))
            return 0
        with nginx_target(args.variant, args.cpu) as target:
            print(f"{target.variant}: {target.url} (nginx pid {target.pid}, {target.prefix})")
            print(f"try: curl -sN -X POST -d '{{}}' {target.url}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(min(args.seconds, 3600.0))
    except MissingNginx as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
