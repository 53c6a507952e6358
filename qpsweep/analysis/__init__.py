"""Pure computation over records: per-level summaries (``summary``), percentiles, estimates and
their intervals (``estimate``), the SLO early-stopping rule, the saturation verdict
(``verdict``), the price of a run at ``--cost-per-hour`` (``cost``), the adaptive search's next
level (``auto_search``), the comparison of two runs (``diff``), the server's scraped view of
each level (``server_view``), and the statistics across ``--repeat`` runs and their comparison
(``repeats``, ``repeat_diff``). No I/O.

May import: ``config``, ``records``.
"""
