"""Where example-robot-data keeps its URDFs, found through the installed distribution.

The wheel (a cmeel package) installs its files under ``cmeel.prefix/share/example-robot-data/
robots/``, but nothing here assumes that prefix or any path on one machine: the file is
looked up in the distribution's own file list (its ``RECORD``), so another prefix, another
site-packages or a ``--target`` folder all work. Nothing is looked up at import: the plugin
loads (``ikrl list`` works) without example-robot-data, and building a robot then raises a
:class:`~ikrl.errors.MissingDependencyError` that says what to install.
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path, PurePosixPath

from ikrl.errors import MissingDependencyError

__all__ = ["DISTRIBUTION", "ROBOTS_FOLDER", "clear_cache", "urdf_path", "version"]

#: The distribution that holds the URDFs.
DISTRIBUTION = "example-robot-data"
#: The folder the robots' files lie in, inside whatever prefix the wheel installs to.
ROBOTS_FOLDER = "share/example-robot-data/robots/"

_INSTALL = f"pip install {DISTRIBUTION} (pip install ikrl-zoo installs it as a dependency)"


def _distribution(robot: str | None = None) -> importlib.metadata.Distribution:
    """The installed example-robot-data; a MissingDependencyError naming ``robot`` if none."""
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        who = "ikrl-zoo's robots are" if robot is None else f"robot {robot!r} (ikrl-zoo) is"
        raise MissingDependencyError(
            f"{who} built from the URDFs of {DISTRIBUTION}, which is not installed; install it with {_INSTALL}"
        ) from None


@functools.cache
def _files() -> dict[str, PurePosixPath]:
    """Each robot file of the installed distribution, by its path relative to the robots folder."""
    dist = _distribution()
    found = {}
    for file in dist.files or ():
        text = PurePosixPath(file).as_posix()
        _, marker, relative = text.partition(ROBOTS_FOLDER)
        if marker and relative:
            found[relative] = PurePosixPath(file)
    return found


def version() -> str:
    """The installed example-robot-data's version (a MissingDependencyError if there is none)."""
    return _distribution().version


def urdf_path(relative: str, *, robot: str) -> Path:
    """The installed file ``relative`` (to example-robot-data's robots/ folder), for ``robot``.

    Raises :class:`~ikrl.errors.MissingDependencyError` naming ``robot`` when example-robot-data
    is not installed, or when the installed version has no such file.
    """
    dist = _distribution(robot)
    entry = _files().get(relative)
    if entry is None:
        raise MissingDependencyError(
            f"robot {robot!r} (ikrl-zoo) needs {relative} from {DISTRIBUTION}, which version {dist.version} "
            f"does not have (its files list no such path under {ROBOTS_FOLDER}); install a version that has it, "
            f"e.g. pip install '{DISTRIBUTION}>=4.1'"
        )
    path = Path(str(dist.locate_file(entry)))
    if not path.is_file():
        raise MissingDependencyError(
            f"robot {robot!r} (ikrl-zoo): {DISTRIBUTION} {dist.version} lists {entry} but the file is not at {path}; "
            f"reinstall it: pip install --force-reinstall {DISTRIBUTION}"
        )
    return path


def clear_cache() -> None:
    """Forget the file list read so far (after installing or removing example-robot-data)."""
    _files.cache_clear()
