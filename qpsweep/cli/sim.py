"""``qpsweep sim``: serve the built-in simulator until Ctrl-C."""

from __future__ import annotations

from dataclasses import fields

from qpsweep.cli.parser import Parser
from qpsweep.errors import ConfigError
from qpsweep.sim.server import SimConfig, serve


def main_sim(argv: list[str]) -> int:
    p = Parser(
        prog="qpsweep sim",
        description="Serve the built-in OpenAI-compatible LLM simulator on 127.0.0.1 until Ctrl-C: "
        "a continuous-batching engine whose capacity follows from these options.",
    )
    p.add_argument("--port", type=int, default=8000, help="default: %(default)s (0: any free)")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address (default: %(default)s)")
    for f in fields(SimConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        p.add_argument(
            flag, type=kind, default=f.default, help=f"{f.metadata['help']}; default: %(default)s"
        )
    ns = vars(p.parse_args(argv))
    host, port = ns.pop("host"), ns.pop("port")
    try:
        config = SimConfig(**ns)
        serve(config, host, port)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except OSError as err:
        raise ConfigError(f"--port: cannot listen on {host}:{port} ({err.strerror})") from None
    return 0
