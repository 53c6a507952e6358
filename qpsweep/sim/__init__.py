"""The built-in OpenAI-compatible LLM simulator (``server``: a continuous-batching engine
of known capacity) on a small aiohttp app runner (``app``).  It stands apart: a test server, not
part of the pipeline.

May import: nothing of qpsweep but ``qpsweep.errors``.
"""
