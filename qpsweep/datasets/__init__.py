"""Prompts: loading a conversation dataset into ``Prompt`` objects (``prompts``) and
generating synthetic ones (``synth``; the ``dataset synth`` command is in ``qpsweep.cli``).

May import: ``config``.
"""
