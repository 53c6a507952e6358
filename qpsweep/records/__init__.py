"""The run's files and the one record type: ``RequestRecord`` and its
``requests.jsonl`` writer/reader (``record``), the columnar ``RecordTable`` and its fast reader
(``table*``, ``chunk_lists``, ``swar``), worker and shard parts (``parts``), the result
directory (``run_files``), ``metadata.json`` (``metadata``) and the scraped server metrics file
(``server_metrics``).

May import: ``config``.
"""
