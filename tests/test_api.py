"""The package's public names: ``qpsweep.__all__`` is explicit, complete and importable."""

from __future__ import annotations

import types

import qpsweep


def test_all_is_unique_and_resolves() -> None:
    names = qpsweep.__all__  # its order: ruff's RUF022
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(qpsweep, name) is not None, name


def test_every_public_name_of_the_package_is_in_all() -> None:
    public = {
        name
        for name, value in vars(qpsweep).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(qpsweep.__all__), public - set(qpsweep.__all__)


def test_star_import_gives_exactly_all() -> None:
    space: dict[str, object] = {}
    exec("from qpsweep import *", space)
    assert set(space) - {"__builtins__"} == set(qpsweep.__all__)


def test_the_package_says_it_is_typed() -> None:
    from pathlib import Path

    assert (Path(qpsweep.__file__).parent / "py.typed").is_file()
