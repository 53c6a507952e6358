"""The files shipped with qpsweep: ``config/targets.yaml``, ``config/scenarios.yaml`` and
``datasets/*``, found wherever qpsweep is installed.

An installed qpsweep carries them as package data, ``qpsweep/_shipped/config/`` and
``qpsweep/_shipped/datasets/`` (``setup.py`` copies them there when the wheel is built), read
with ``importlib.resources``.  A source checkout (an editable install, or ``python -m qpsweep``
in the tree) has them at the top of the repository, which the checkout's ``pyproject.toml``
marks.  ``shipped_path("datasets/conversations.json")`` is the first of those two places that
holds the file; ``None`` when neither does.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path, PurePosixPath

PACKAGE_DATA = "_shipped"  # the folder inside the package that setup.py fills
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository root of a source checkout


def shipped_roots() -> list[Path]:
    """The folders that may hold ``config/`` and ``datasets/``, in search order: the
    installed package data, then the source checkout."""
    roots = []
    installed = files("qpsweep") / PACKAGE_DATA
    if isinstance(installed, Path) and installed.is_dir():  # a plain install is on disk
        roots.append(installed)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "qpsweep").is_dir():
        roots.append(CHECKOUT)
    return roots


def shipped_path(relative: str) -> Path | None:
    """The shipped file ``relative`` names (``config/NAME`` or ``datasets/NAME``, as in the
    repository), or ``None``; an absolute path or one that climbs out (``..``) is never
    looked up."""
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    for root in shipped_roots():
        candidate = root.joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None
