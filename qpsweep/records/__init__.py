"""The run's files and the one record type: ``RequestRecord``, its ``requests.jsonl`` writer
and reader (``record``: the dataclass is the one definition of a line, decoded by msgspec),
the columnar ``RecordTable`` (``table``, with ``table_ops``) and its copy ``requests.npz``
(``columns``), worker and shard parts (``parts``), the result directory (``run_files``),
``metadata.json`` (``metadata``) and the scraped server metrics file (``server_metrics``).

May import: ``config``.
"""
