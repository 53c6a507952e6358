"""Named targets and scenarios from YAML: ``--target NAME``, ``--scenario NAME``, ``--config FILE``.

A file is a mapping with ``targets:`` and/or ``scenarios:``, each a mapping of names to
settings.  Target keys: ``base_url``, ``model``, ``supported_models``, ``api_key_env``,
``headers`` (a mapping), ``timeout`` (s), ``verify_tls``, ``cost_per_hour`` (USD, >= 0),
``notes``.  Scenario keys: ``qps`` (a
list, or ``auto``; with ``arrival: trace`` a level may be a multiple such as ``2x``),
``duration``, ``warmup``, ``max_tokens``, ``temperature``, ``arrival``, ``burstiness``,
``trace``, ``seed``, ``percentiles``, ``dataset``, ``timeout``, ``connect_timeout``, ``retries``,
``workers``, ``max_error_rate``, ``max_p95_latency``, ``headroom``, ``start_qps``, ``max_qps``,
``budget``, ``precision``, ``slo``, ``description``.  They mean what the
command-line flags of the same names mean.

``resolve(config_files, target, scenario)`` returns argparse defaults (``dest -> value``): the
named scenario's, then the named target's; flags given on the command line override both.
Names are looked up in the ``--config`` files in order, then ``config/targets.yaml`` and
``config/scenarios.yaml`` in the current directory, then the ones shipped with qpsweep (its
package data once installed, or its source checkout's: ``qpsweep.config.shipped``).
Every file on that path is validated when it is read: an unknown key or a bad value is a
``ConfigError`` naming the file, the line, the entry and the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qpsweep.config.scenario import APIS, ARRIVALS, parse_percentiles
from qpsweep.config.sessions import HISTORIES, parse_think_time
from qpsweep.config.shards import parse_workers
from qpsweep.config.shipped import shipped_path
from qpsweep.config.slo import parse_slos
from qpsweep.errors import ConfigError

FILE_NAMES = ("targets.yaml", "scenarios.yaml")

Check = Callable[[Any], Any]
MAX_YAML_NODES = 100_000  # a --config file of settings: far more than any holds


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _number(low: float, low_ok: bool) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if not math.isfinite(value) or value < low or (value == low and not low_ok):
            raise ValueError(f"must be {'at least' if low_ok else 'greater than'} {low:g}")
        return float(value)

    return check


def _integer(low: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"must be a whole number of at least {low}")
        return value

    return check


def _ratio(value: Any) -> float:
    number = _number(0.0, False)(value)
    if number > 1:
        raise ValueError("must be in (0, 1]")
    return float(number)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _qps(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("must be a list of QPS levels or auto")
    return ",".join(_level(q) for q in items)


def _level(value: Any) -> str:
    """A QPS level, or a multiple of a trace's mean rate (``2x``, for ``arrival: trace``)."""
    if isinstance(value, str) and value.strip().lower().endswith("x"):
        try:
            multiple = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a QPS level nor a multiple such as 2x"
            ) from None
        return f"{_number(0.0, False)(multiple):g}x"
    return f"{_number(0.0, False)(value):g}"


def _checked_by(parse: Callable[[str], object], text: str) -> str:
    """``text`` if the flag's own parser accepts it; its message (without the flag) if not."""
    try:
        parse(text)
    except ConfigError as err:
        raise ValueError(str(err).split(": ", 1)[-1]) from None
    return text


def _percentiles(value: Any) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return _checked_by(parse_percentiles, text)


def _arrival(value: Any) -> str:
    if value not in ARRIVALS:
        raise ValueError(f"must be one of {', '.join(ARRIVALS)}")
    return str(value)


def _api(value: Any) -> str:
    if value not in APIS:
        raise ValueError(f"must be one of {', '.join(APIS)}")
    return str(value)


def _headers(value: Any) -> list[str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a mapping of header names to values")
    return [f"{k}: {v}" for k, v in value.items()]


def _models(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise ValueError("must be a list of model names")
    return list(value)


def _slo(value: Any) -> str:
    return _checked_by(parse_slos, _text(value))


def _history(value: Any) -> str:
    if value not in HISTORIES:
        raise ValueError(f"must be one of {', '.join(HISTORIES)}")
    return str(value)


def _workers(value: Any) -> str:
    text = "" if isinstance(value, bool) else str(value)
    return _checked_by(parse_workers, text)


# key -> (argparse dest, or None when the key only informs; check)
TARGET_KEYS: dict[str, tuple[str | None, Check]] = {
    "base_url": ("endpoint", _text),
    "model": ("model", _text),
    "api": ("api", _api),
    "supported_models": ("supported_models", _models),
    "api_key_env": ("api_key_env", _text),
    "headers": ("header", _headers),
    "timeout": ("timeout", _number(0.0, False)),
    "verify_tls": ("no_verify_tls", lambda v: not _flag(v)),
    "cost_per_hour": ("cost_per_hour", _number(0.0, True)),
    "notes": (None, _text),
}
SCENARIO_KEYS: dict[str, tuple[str | None, Check]] = {
    "qps": ("qps", _qps),
    "duration": ("duration", _number(0.0, False)),
    "warmup": ("warmup", _integer(0)),
    "max_tokens": ("max_tokens", _integer(1)),
    "temperature": ("temperature", _number(0.0, True)),
    "arrival": ("arrival", _arrival),
    "burstiness": ("burstiness", _number(0.0, False)),
    "trace": ("trace", _text),
    "seed": ("seed", _integer(0)),
    "percentiles": ("percentiles", _percentiles),
    "dataset": ("dataset", _text),
    "timeout": ("timeout", _number(0.0, False)),
    "connect_timeout": ("connect_timeout", _number(0.0, False)),
    "retries": ("retries", _integer(0)),
    "workers": ("workers", _workers),
    "max_error_rate": ("max_error_rate", _ratio),
    "max_p95_latency": ("max_p95_latency", _number(0.0, False)),
    "headroom": ("headroom", _ratio),
    "start_qps": ("start_qps", _number(0.0, False)),
    "max_qps": ("max_qps", _number(0.0, False)),
    "budget": ("budget", _number(0.0, False)),
    "precision": ("precision", _number(0.0, False)),
    "slo": ("slo", _slo),
    "multi_turn": ("multi_turn", _flag),
    "think_time": ("think_time", lambda v: _checked_by(parse_think_time, _text(str(v)))),
    "history": ("history", _history),
    "description": (None, _text),
}
SECTIONS = {"targets": ("target", TARGET_KEYS), "scenarios": ("scenario", SCENARIO_KEYS)}


@dataclass(frozen=True)
class Entry:
    """One named target or scenario: its checked values and where it was defined."""

    name: str
    values: dict[str, Any]  # YAML key -> checked value
    path: Path
    line: int

    def defaults(self, keys: dict[str, tuple[str | None, Check]]) -> dict[str, Any]:
        """The argparse defaults this entry sets."""
        out = {}
        for key, value in self.values.items():
            dest = keys[key][0]
            if dest is not None:
                out[dest] = value
        return out


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for with every alias expanded, counted without
    expanding (each node once, ``memo`` by identity); an alias that contains itself counts
    as more than ``MAX_YAML_NODES``."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_YAML_NODES + 1  # seen again before it is counted: a cycle
    count = 1
    if isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            count += _expanded_nodes(name, memo) + _expanded_nodes(value, memo)
    elif isinstance(node, yaml.SequenceNode):
        count += sum(_expanded_nodes(item, memo) for item in node.value)
    memo[key] = count
    return count


def _parse(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read ({reason})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_nodes(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}: more than {MAX_YAML_NODES} YAML nodes once its aliases (*name) are "
                "expanded; refused before expanding them"
            )
        return (loader.construct_document(node) if node is not None else None), node
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML (nested too deeply)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    finally:
        loader.dispose()


def _lines(node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """1-based line of every key, by its path of keys (at most three levels deep)."""
    out: dict[tuple[str, ...], int] = {}

    def walk(n: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(n, yaml.MappingNode) and len(prefix) < 3:
            for key, value in n.value:
                path = (*prefix, str(key.value))
                out[path] = key.start_mark.line + 1
                walk(value, path)

    if node is not None:
        walk(node, ())
    return out


def load_file(path: Path) -> dict[str, dict[str, Entry]]:
    """``{"targets": {name: Entry}, "scenarios": {name: Entry}}`` of one YAML file."""
    data, node = _parse(path)
    lines = _lines(node)
    out: dict[str, dict[str, Entry]] = {"targets": {}, "scenarios": {}}
    if data is None:
        return out
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: must be a mapping with targets: and/or scenarios:")
    for section, entries in data.items():
        where = f"{path}:{lines.get((str(section),), 1)}"
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r} (known: targets, scenarios)")
        kind, keys = SECTIONS[section]
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: {section} must be a mapping of names to settings")
        for name, settings in entries.items():
            line = lines.get((section, str(name)), 1)
            if not isinstance(settings, dict):
                raise ConfigError(f"{path}:{line}: {kind} {name!r} must be a mapping of settings")
            values = {}
            for key, value in settings.items():
                at = f"{path}:{lines.get((section, str(name), str(key)), line)}: {kind} {name!r}"
                if key not in keys:
                    raise ConfigError(f"{at}: unknown key {key!r} (known: {', '.join(keys)})")
                try:
                    values[key] = keys[key][1](value)
                except ValueError as err:
                    raise ConfigError(f"{at}: {key} {err}") from None
            out[section][str(name)] = Entry(str(name), values, path, line)
    return out


def search_path(config_files: Sequence[str]) -> list[Path]:
    """The files names are looked up in, in order (missing shipped files are skipped)."""
    paths = [Path(f) for f in config_files]
    local = [Path.cwd() / "config" / name for name in FILE_NAMES]
    shipped = [shipped_path(f"config/{name}") for name in FILE_NAMES]
    for candidate in [*local, *shipped]:
        if candidate is None or not candidate.is_file():
            continue
        if candidate.resolve() not in {p.resolve() for p in paths}:
            paths.append(candidate)
    return paths


def load_all(config_files: Sequence[str]) -> dict[str, dict[str, Entry]]:
    """Every entry on the search path; the first definition of a name wins."""
    merged: dict[str, dict[str, Entry]] = {"targets": {}, "scenarios": {}}
    for path in search_path(config_files):
        if not path.is_file():
            raise ConfigError(f"--config: {path}: no such file")
        for section, entries in load_file(path).items():
            for name, entry in entries.items():
                merged[section].setdefault(name, entry)
    return merged


def find(merged: dict[str, dict[str, Entry]], section: str, name: str) -> Entry:
    """The entry called ``name``; a ``ConfigError`` listing the known names otherwise."""
    entries = merged[section]
    if name not in entries:
        kind = SECTIONS[section][0]
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"--{kind}: no {kind} named {name!r} (known: {known})")
    return entries[name]


def resolve(
    config_files: Sequence[str], target: str | None, scenario: str | None
) -> dict[str, Any]:
    """argparse defaults from the named scenario, then target (``{}`` when neither is named)."""
    if not (target or scenario or config_files):
        return {}
    merged = load_all(config_files)
    defaults: dict[str, Any] = {}
    if scenario:
        defaults.update(find(merged, "scenarios", scenario).defaults(SCENARIO_KEYS))
    if target:
        defaults.update(find(merged, "targets", target).defaults(TARGET_KEYS))
    return defaults
