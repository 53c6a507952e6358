"""``requests.npz``: a run's records as columns, written at the end of a run.

``requests.jsonl`` is the record of truth; parsing a million lines of it takes seconds, while
loading the same ``RecordTable`` from numpy's ``.npz`` takes a fraction of one.  So whoever
rebuilds a run's reports (the sweep at its end, ``qpsweep report``, ``qpsweep merge``) keeps
the table it read in ``requests.npz`` beside the file (``save_columns``), and the next reader
takes the columns instead (``load_columns``) as long as they are current: the stamp stored with
them (the size and modification time of ``requests.jsonl`` in nanoseconds, and the table's
layout: its field names and types) must equal the file's and the code's.  Anything else (no
file, a stale stamp, an unreadable file) reads as ``None``: the caller parses the lines.
Deleting ``requests.npz`` loses nothing.

Layout of the ``.npz`` (``allow_pickle=False``): each int and float column under its name;
each ``Labels`` column as ``NAME.codes`` (int32) and its names as one UTF-8 byte string
``NAME.text`` (``surrogatepass``) cut at ``NAME.ends``; ``stamp`` (int64: size, mtime_ns) and
``layout`` (the layout string's UTF-8 bytes).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from qpsweep.records.table import LABEL_FIELDS, Labels, RecordTable

COLUMNS_FILE = "requests.npz"
LAYOUT = ",".join(f"{f.name}:{f.type}" for f in fields(RecordTable))


Stamp = tuple[int, int]


def stamp_of(source: Path) -> Stamp | None:
    """``source``'s size and modification time (ns); ``None`` when it cannot be read."""
    try:
        st = source.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _encode_names(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [n.encode("utf-8", "surrogatepass") for n in names]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def _decode_names(text: np.ndarray, ends: np.ndarray) -> tuple[str, ...]:
    data = text.tobytes()
    cuts = pairwise([0, *ends.tolist()])
    return tuple(data[a:b].decode("utf-8", "surrogatepass") for a, b in cuts)


def save_columns(path: Path, table: RecordTable, stamp: Stamp) -> None:
    """Write ``table``, read from a file whose stamp was ``stamp`` before it was read, to
    ``path`` (a temporary file, then renamed).  A cache: when it cannot be written, nothing
    is."""
    arrays: dict[str, Any] = {"stamp": np.array(stamp, dtype=np.int64)}
    arrays["layout"] = np.frombuffer(LAYOUT.encode(), dtype=np.uint8)
    for f in fields(table):
        column = getattr(table, f.name)
        if isinstance(column, Labels):
            text, ends = _encode_names(column.names)
            arrays |= {f"{f.name}.codes": column.codes, f"{f.name}.text": text}
            arrays[f"{f.name}.ends"] = ends
        else:
            arrays[f.name] = column
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as file:
            np.savez(file, **arrays)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


_UNREADABLE = (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError)


def _current(npz: Any, stamp: Stamp | None) -> bool:
    saved = tuple(npz["stamp"].tolist())
    return stamp is not None and saved == stamp and npz["layout"].tobytes() == LAYOUT.encode()


def columns_current(path: Path, stamp: Stamp) -> bool:
    """Whether ``path`` holds the columns of a file whose stamp is ``stamp``."""
    try:
        with path.open("rb") as file, np.load(file, allow_pickle=False) as npz:
            return _current(npz, stamp)
    except _UNREADABLE:
        return False


def load_columns(path: Path, source: Path) -> RecordTable | None:
    """The table saved at ``path`` if it is current for ``source``, else ``None``."""
    try:
        with path.open("rb") as file, np.load(file, allow_pickle=False) as npz:
            if not _current(npz, stamp_of(source)):
                return None
            values: dict[str, Any] = {}
            for f in fields(RecordTable):
                if f.name in LABEL_FIELDS:
                    names = _decode_names(npz[f"{f.name}.text"], npz[f"{f.name}.ends"])
                    values[f.name] = Labels(npz[f"{f.name}.codes"], names)
                else:
                    values[f.name] = npz[f.name]
            return RecordTable(**values)
    except _UNREADABLE:
        return None
