"""What the user asked for, as checked frozen settings: ``Scenario`` and ``Target``
(``scenario``), the YAML targets and scenarios (``files``), shards (``shards``), SLOs
(``slo``), the verdict's thresholds and an adaptive sweep's plan (``thresholds``), the
servers' metric names for ``--metrics-preset`` (``metrics_presets``), and how secrets are
masked (``secrets``).  Parsing raises ``ConfigError`` with one line naming the flag
or file.

May import: ``qpsweep.errors`` only.  Every other stage may import it.
"""
