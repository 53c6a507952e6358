"""Prompts: loading a conversation dataset into ``Prompt`` objects (``prompts``) and
generating synthetic ones (``synth``; the ``dataset synth`` command is in ``qpsweep.cli``),
and reading arrival traces for ``--arrival trace`` with the prompts built to their token
counts (``traces``).

May import: ``config``.
"""
