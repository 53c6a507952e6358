"""What a sweep needs from the machine, checked before any traffic: file descriptors and disk.

Every request in flight holds one socket, i.e. one file descriptor.  In the worst case (a server
that accepts and never answers) a level keeps every request it sends in flight until the
``--timeout``: ``peak_streams = qps x min(duration_s, timeout_s)``.  ``raise_file_limit()``
lifts the soft ``RLIMIT_NOFILE`` to the hard limit (as far as the OS allows), and
``file_limit_note`` says, before the run starts, when even that is below the worst case, since
past it new requests fail with "Too many open files" (recorded as ``connection`` errors).
"""

from __future__ import annotations

import math

from qpsweep.config.scenario import Scenario

RESERVED_FDS = 64  # stdio, the record file, the event loop, the interpreter's own files


def raise_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where allowed; the soft limit after."""
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


def peak_streams(qps: float, duration_s: float, timeout_s: float) -> int:
    """Worst-case requests in flight at once at one level: ``qps x min(duration, timeout)``."""
    return math.ceil(qps * min(duration_s, timeout_s))


def expected_requests(scenario: Scenario) -> float:
    """Requests a fixed sweep schedules: the sum of ``qps x duration``.  For ``--qps auto``
    the levels are not known in advance: 0 (only the fixed minimum of free space is asked)."""
    if scenario.auto:
        return 0.0
    return sum(q * scenario.duration_s for q in scenario.qps)


def file_limit_note(scenario: Scenario) -> str | None:
    """Raise the limit; a line for the console when a fixed sweep's worst case needs more
    descriptors than allowed (``--qps auto`` levels are not known in advance: no note)."""
    soft = raise_file_limit()
    if soft < 0 or scenario.auto:
        return None
    streams = soft - RESERVED_FDS
    peak = peak_streams(max(scenario.qps), scenario.duration_s, scenario.timeout_s)
    if peak <= streams:
        return None
    return (
        f"note: this machine allows about {streams} requests in flight at once (open files "
        f"limit {soft}); if the server stops answering, this sweep could hold up to {peak}, and "
        "requests past the limit would fail as 'Too many open files' connection errors. "
        "Raise it with `ulimit -n` (hard limit) or lower --timeout."
    )
