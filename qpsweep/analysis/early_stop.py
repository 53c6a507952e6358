"""The early-stopping rule for latency percentiles (pure), after MLPerf LoadGen.

A level *certifies* ``metric_pP <= limit`` at confidence ``c`` (default 0.99) when, with
``n`` requests of which ``k`` missed the limit, a server whose true miss share were
``q = 1 - P/100`` would show ``k`` or fewer misses with probability at most ``1 - c``::

    certified  <=>  BinomCDF(k; n, q) <= 1 - c

It *fails* when even ``k`` or more misses would be that unlikely under ``q``
(``BinomSF(k - 1; n, q) <= 1 - c``: the true miss share is over ``q`` at confidence ``c``).
Otherwise it cannot tell yet, and ``requests_needed(k, q, c)`` is the smallest ``n`` that would
certify with ``k`` misses.  At p99 and 99%: 459 requests with no miss, 662 with one, 838 with
two; at p95: 90, 130, 165; at p90: 44, 64, 81 (``docs/verdict.md`` has the table).
"""

from __future__ import annotations

CONFIDENCE = 0.99


def certified(n: int, misses: int, percentile: float, confidence: float = CONFIDENCE) -> bool:
    """True when ``misses`` of ``n`` prove the ``percentile`` within its limit."""
    from scipy.special import bdtr  # the binomial CDF; scipy loads slowly: only when judging

    q = 1.0 - percentile / 100.0
    return n > 0 and float(bdtr(misses, n, q)) <= 1.0 - confidence


def failed(n: int, misses: int, percentile: float, confidence: float = CONFIDENCE) -> bool:
    """True when ``misses`` of ``n`` prove the ``percentile`` over its limit."""
    from scipy.special import bdtrc  # the binomial survival function

    q = 1.0 - percentile / 100.0
    return misses > 0 and float(bdtrc(misses - 1, n, q)) <= 1.0 - confidence


def requests_needed(misses: int, percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest requests that certify the ``percentile`` with ``misses`` misses."""
    from scipy.special import bdtr

    q = 1.0 - percentile / 100.0
    lo, hi = misses + 1, max(misses + 1, 16)
    while float(bdtr(misses, hi, q)) > 1.0 - confidence:
        lo, hi = hi, hi * 2
    while lo < hi:  # the CDF falls with n: the first n where it is low enough
        mid = (lo + hi) // 2
        if float(bdtr(misses, mid, q)) <= 1.0 - confidence:
            hi = mid
        else:
            lo = mid + 1
    return lo
