"""Named sets of Prometheus metrics for the servers users run: ``--metrics-preset``.

A ``Preset`` lists what one server (or exporter) says about itself, under the names it
serves (checked against each project's source; see docs/server-metrics.md):

* ``vllm``: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, KV-cache usage
  (``vllm:kv_cache_usage_perc``, before v0.10 ``vllm:gpu_cache_usage_perc``, a fraction 0..1)
  and the prefix-cache hit rate, from the counters ``vllm:prefix_cache_hits_total`` /
  ``vllm:prefix_cache_queries_total`` (older: ``vllm:gpu_prefix_cache_*_total``) or the V0
  gauge ``vllm:gpu_prefix_cache_hit_rate``;
* ``sglang``: ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage``
  (KV pool usage, 0..1), ``sglang:cache_hit_rate``, ``sglang:gen_throughput``;
* ``tgi``: ``tgi_batch_current_size`` (running), ``tgi_queue_size`` (waiting),
  ``tgi_batch_current_max_tokens``;
* ``llamacpp``: ``llamacpp:requests_processing``, ``llamacpp:requests_deferred``,
  ``llamacpp:kv_cache_usage_ratio`` (older builds), ``llamacpp:predicted_tokens_seconds``;
* ``dcgm``: NVIDIA's DCGM exporter, ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_DEV_POWER_USAGE`` (W).

A gauge lists candidate names, the first one a sample carries wins (renamed metrics).  Label
sets of one name are summed (requests of several engines, MiB and W of several GPUs) except
for names in ``Preset.mean_names`` (fractions per engine or per GPU), which are averaged.
``auto`` scrapes every preset's names until a scrape finds some, then only the names of the
presets found (``MetricsPlan.narrowed``); the analysis keeps the presets whose names were served;
``none`` scrapes only ``--metrics-gauge`` names.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from qpsweep.errors import ConfigError


@dataclass(frozen=True)
class Gauge:
    """One panel: ``key`` (stable, used in the results JSON), a ``title`` for people, the
    candidate metric ``names`` (first present wins) and the ``unit`` of the value."""

    key: str
    title: str
    names: tuple[str, ...]
    unit: str = ""


@dataclass(frozen=True)
class HitRate:
    """A rate from two counters: per level, (hits_last - hits_first) / (queries_last -
    queries_first) over the level's samples; ``names`` pairs (hits, queries) by version."""

    key: str
    title: str
    names: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Preset:
    """A server's metrics; ``running`` and ``waiting`` are the keys of its queue gauges
    (``None`` for an exporter without requests, like DCGM's)."""

    name: str
    server: str
    gauges: tuple[Gauge, ...]
    hit_rates: tuple[HitRate, ...] = ()
    running: str | None = None
    waiting: str | None = None
    mean_names: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric name this preset scrapes, in a stable order."""
        out = [n for g in self.gauges for n in g.names]
        out += [n for r in self.hit_rates for pair in r.names for n in pair]
        return tuple(dict.fromkeys(out))

    def gauge(self, key: str) -> Gauge:
        """The gauge of ``key``."""
        return next(g for g in self.gauges if g.key == key)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "vllm",
            "vLLM",
            (
                Gauge("running", "requests running", ("vllm:num_requests_running",)),
                Gauge("waiting", "requests waiting", ("vllm:num_requests_waiting",)),
                Gauge(
                    "kv_cache_usage",
                    "KV cache usage",
                    ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
                    "fraction",
                ),
                Gauge(
                    "prefix_cache_hit_rate_gauge",
                    "prefix cache hit rate (gauge)",
                    ("vllm:gpu_prefix_cache_hit_rate",),
                    "fraction",
                ),
            ),
            (
                HitRate(
                    "prefix_cache_hit_rate",
                    "prefix cache hit rate",
                    (
                        ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
                        ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
                    ),
                ),
            ),
            running="running",
            waiting="waiting",
            mean_names=(
                "vllm:kv_cache_usage_perc",
                "vllm:gpu_cache_usage_perc",
                "vllm:gpu_prefix_cache_hit_rate",
            ),
        ),
        Preset(
            "sglang",
            "SGLang",
            (
                Gauge("running", "requests running", ("sglang:num_running_reqs",)),
                Gauge("waiting", "requests queued", ("sglang:num_queue_reqs",)),
                Gauge("kv_cache_usage", "token (KV) usage", ("sglang:token_usage",), "fraction"),
                Gauge(
                    "prefix_cache_hit_rate",
                    "cache hit rate",
                    ("sglang:cache_hit_rate",),
                    "fraction",
                ),
                Gauge("gen_throughput", "generation", ("sglang:gen_throughput",), "tokens/s"),
            ),
            running="running",
            waiting="waiting",
            mean_names=("sglang:token_usage", "sglang:cache_hit_rate"),
        ),
        Preset(
            "tgi",
            "TGI",
            (
                Gauge("running", "batch size (running)", ("tgi_batch_current_size",)),
                Gauge("waiting", "queue size (waiting)", ("tgi_queue_size",)),
                Gauge(
                    "batch_max_tokens",
                    "batch max tokens",
                    ("tgi_batch_current_max_tokens",),
                    "tokens",
                ),
            ),
            running="running",
            waiting="waiting",
        ),
        Preset(
            "llamacpp",
            "llama.cpp",
            (
                Gauge("running", "requests processing", ("llamacpp:requests_processing",)),
                Gauge("waiting", "requests deferred", ("llamacpp:requests_deferred",)),
                Gauge(
                    "kv_cache_usage",
                    "KV cache usage",
                    ("llamacpp:kv_cache_usage_ratio",),
                    "fraction",
                ),
                Gauge(
                    "gen_throughput",
                    "generation",
                    ("llamacpp:predicted_tokens_seconds",),
                    "tokens/s",
                ),
            ),
            running="running",
            waiting="waiting",
        ),
        Preset(
            "dcgm",
            "NVIDIA DCGM",
            (
                Gauge("gpu_util", "GPU utilisation (mean of GPUs)", ("DCGM_FI_DEV_GPU_UTIL",), "%"),
                Gauge("fb_used", "GPU memory used (sum of GPUs)", ("DCGM_FI_DEV_FB_USED",), "MiB"),
                Gauge("power", "power (sum of GPUs)", ("DCGM_FI_DEV_POWER_USAGE",), "W"),
            ),
            mean_names=("DCGM_FI_DEV_GPU_UTIL",),
        ),
    )
}
PRESET_CHOICES = ("auto", *PRESETS, "none")


@dataclass(frozen=True)
class MetricsPlan:
    """What ``--metrics-url`` scrapes: the URL, the ``preset`` chosen (a name of ``PRESETS``,
    ``auto`` or ``none``), the metric ``names`` and which of them are averaged over label sets
    (``mean_names``) instead of summed."""

    url: str
    preset: str
    names: tuple[str, ...]
    mean_names: frozenset[str]
    extra: tuple[str, ...] = ()

    def narrowed(self, found: Collection[str]) -> tuple[str, ...]:
        """For ``auto``, once a scrape has ``found`` some names: the names of the presets they
        belong to, plus ``extra`` (scanning a page for every preset's names costs about ten
        times as much as for one's); all ``names`` when no preset's name was found, or when
        the preset was named."""
        if self.preset != "auto":
            return self.names
        hit = [p for p in PRESETS.values() if not set(p.names).isdisjoint(found)]
        if not hit:
            return self.names
        return tuple(dict.fromkeys([*(n for p in hit for n in p.names), *self.extra]))


def metrics_plan(url: str, preset: str, extra: tuple[str, ...] = ()) -> MetricsPlan:
    """The plan for ``--metrics-preset preset`` plus the ``--metrics-gauge`` names ``extra``;
    a preset not in ``PRESET_CHOICES`` is a ``ConfigError`` naming the flag."""
    if preset not in PRESET_CHOICES:
        raise ConfigError(
            f"--metrics-preset: unknown preset {preset!r} (known: {', '.join(PRESET_CHOICES)})"
        )
    if preset == "auto":
        chosen = list(PRESETS.values())
    else:
        chosen = [PRESETS[preset]] if preset in PRESETS else []
    names = tuple(dict.fromkeys([*(n for p in chosen for n in p.names), *extra]))
    if not names:
        raise ConfigError("--metrics-preset none needs at least one --metrics-gauge")
    mean = frozenset(n for p in chosen for n in p.mean_names)
    return MetricsPlan(url, preset, names, mean, extra)
