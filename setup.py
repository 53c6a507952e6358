"""Build hook: the shipped ``config/*.yaml`` and ``datasets/*`` travel inside the wheel.

They have one copy, at the top of the repository, where the README shows them.  Building the
package (``pip install .``, ``pip wheel .``) copies them into it as
``qpsweep/_shipped/config/`` and ``qpsweep/_shipped/datasets/``, where an installed qpsweep
finds them with ``importlib.resources`` (``qpsweep.config.shipped``).  An editable install
copies nothing: it reads them from the checkout.  ``config/k8s/`` is not shipped: it builds a
container image from the checkout, and qpsweep never reads it.  Everything else is in
``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"config": "*.yaml", "datasets": "*"}  # folder -> the files of it that ship


class BuildWithShipped(build_py):
    """``build_py``, then the shipped files into ``build_lib/qpsweep/_shipped/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for folder, pattern in SHIPPED.items():
            target = Path(self.build_lib, "qpsweep", "_shipped", folder)
            self.mkpath(str(target))
            for source in sorted((ROOT / folder).glob(pattern)):
                if source.is_file():
                    self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithShipped})
