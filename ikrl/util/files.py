"""Writing files atomically: a reader (or a crash) never sees half of one.

Each writes to ``<name>.partial`` beside the target, then renames it over the target
(``os.replace`` is atomic on one filesystem).

Examples:
    >>> import pathlib, tempfile
    >>> path = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.json", "{}\\n")
    >>> path.read_text()
    '{}\\n'
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ikrl.errors import DestinationError

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "check_destination", "unused_path"]

PARTIAL_SUFFIX = ".partial"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(partial_path)``, then move the partial file onto ``path``; returns ``path``.
    The parent folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    write(partial)
    partial.replace(path)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (``default=str`` for paths and the like) atomically.
    NaN and infinities, which JSON has no words for, are written as ``null``.

    >>> import json, pathlib, tempfile
    >>> path = atomic_write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"x": float("nan"), "y": [1.5]})
    >>> json.loads(path.read_text())
    {'x': None, 'y': [1.5]}
    """
    return atomic_write_text(path, json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def unused_path(folder: str | Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or ``stem-2``, ``stem-3``... when taken: a new result never
    replaces an old one.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> unused_path(folder, "eval", ".json").name
    'eval.json'
    >>> _ = (folder / "eval.json").write_text("{}")
    >>> unused_path(folder, "eval", ".json").name
    'eval-2.json'
    """
    folder = Path(folder)
    path, number = folder / f"{stem}{suffix}", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}{suffix}"
    return path


def check_destination(path: str | Path, *, what: str = "--out", folder: bool = False) -> Path:
    """``path`` if a result can be written there (a file, or a ``folder``), else a
    :class:`~ikrl.errors.DestinationError` naming the path and the problem, so that a command
    fails before its work rather than at the write. Missing parent folders are fine if they
    can be created; writability is tried with a temporary file in the nearest existing one.

    >>> import pathlib, tempfile
    >>> here = pathlib.Path(tempfile.mkdtemp())
    >>> check_destination(here / "new" / "solutions.csv") == here / "new" / "solutions.csv"
    True
    >>> check_destination(here, what="--out")
    Traceback (most recent call last):
    ...
    ikrl.errors.DestinationError: --out .../: is a folder; give a file path (e.g. .../result.csv)
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise DestinationError(f"{what} {path}: is a file; give a folder (it is created if missing)")
    if not folder and path.is_dir():
        raise DestinationError(f"{what} {path}/: is a folder; give a file path (e.g. {path / 'result'}.csv)")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DestinationError(f"{what} {path}: {existing} is a file, so no folder can be made inside it")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".ikrl-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise DestinationError(f"{what} {path}: cannot write in {existing} ({error.strerror or error})") from None
    return path
