"""Generating the load: the open-loop schedule (``schedule``), one level's sends
(``attack``), the sweep across levels (``sweep``), worker processes (``worker_pool``,
``worker_process``), the event loop, clock offset, resource limits and interrupt handling, and
the merge of shard runs (``merge``).

May import: ``config``, ``datasets``, ``records``, ``analysis``, ``output``, ``http``.
"""
