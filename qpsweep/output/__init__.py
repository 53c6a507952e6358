"""What a person reads: the text table and JSON results (``text``), the HTML report, the plots,
CSV exports and llm-d Benchmark Reports (``export``, ``llmd``), the diff's text and plot, the
``--all-models`` comparison (``models``), the ``--repeat`` directory and its summary
(``repeats``, ``repeats_text``, ``repeat_diff_text``), and ``rebuild``, which reads a run
directory back, judges it and writes all of them (``qpsweep report``).

May import: ``config``, ``records``, ``analysis``.
"""
