"""Pure computation over records: per-level summaries (``summary``), percentiles,
estimates and their intervals (``estimate``), the SLO early-stopping rule, the saturation
verdict (``verdict``), the adaptive search's next level (``auto_search``) and the comparison of
two runs (``diff``).  No I/O.

May import: ``config``, ``records``.
"""
