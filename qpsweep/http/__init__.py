"""Talking to the endpoint: the streaming client (``client``) over qpsweep's own
HTTP/1.1 connections (``http1``), SSE and plain chunk parsing, the pre-flight probe
(``probe``) and the Prometheus scraper (``prometheus``).

May import: ``config``, ``datasets``, ``records``.
"""
