"""``python -m qpsweep`` runs the same CLI as the ``qpsweep`` command."""

import sys

from qpsweep.cli.main import main

sys.exit(main())
