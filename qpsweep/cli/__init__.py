"""The command line, one module per command: the sweep (``main``, its flags in ``sweep_flags``),
``check``, ``report``, ``diff``, ``export``, ``merge``, ``demo``, ``sim`` and ``dataset``. Each
parses its flags, makes library calls and maps ``QpsweepError`` to one line and exit code 2.

May import: every stage.
"""
