"""Every error ikrl raises on purpose, in one hierarchy.

Each message says what was wrong and what would be right. Catch :class:`IkrlError`
to handle them all; the subclasses also derive from the matching built-in
(``ValueError``, ``LookupError``, ``FileNotFoundError``) so generic handlers work.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BadParameterError",
    "ChainError",
    "CheckpointError",
    "CheckpointMismatchError",
    "DestinationError",
    "DuplicateNameError",
    "GridError",
    "IkrlError",
    "JointInputError",
    "MissingDependencyError",
    "MjcfError",
    "NotAPoseError",
    "PluginError",
    "ShapeError",
    "SpecError",
    "SpecSyntaxError",
    "TargetsFileError",
    "TrainingError",
    "UnknownLinkError",
    "UnknownNameError",
    "UnresolvedPackageError",
    "UnsupportedJointError",
    "UrdfError",
    "UrdfNotFoundError",
    "XacroError",
    "closest",
]


class IkrlError(Exception):
    """Base class of every error ikrl raises on purpose."""


class ShapeError(IkrlError, ValueError):
    """A tensor has the wrong shape for the operation (names the expected shape)."""


class UrdfError(IkrlError, ValueError):
    """A URDF could not be read: bad XML, a missing required attribute, ...

    ``source`` is the file path, or ``"<string>"`` for XML text.
    """

    def __init__(self, message: str, *, source: str = "<string>") -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class UrdfNotFoundError(UrdfError, FileNotFoundError):
    """The URDF path names no file."""


class XacroError(UrdfError):
    """A xacro file could not be expanded into a URDF: xacro's own message (a macro, a
    property or an argument it cannot evaluate), or ``xacro_args`` it does not declare.

    A :class:`UrdfError`, so code handling unreadable robot descriptions handles it too.
    """


class UnresolvedPackageError(XacroError, LookupError):
    """A ``$(find PKG)`` or ``package://PKG/...`` reference that xacro needs names a ROS
    package that cannot be found; ``package`` is its name."""

    def __init__(self, message: str, *, package: str, source: str = "<string>") -> None:
        super().__init__(message, source=source)
        self.package = package


class MjcfError(UrdfError):
    """An MJCF (MuJoCo XML) file could not be read: MuJoCo's compiler rejects it (its message
    is given), or it asks for something ikrl's chains do not have.

    A :class:`UrdfError`, so code handling unreadable robot descriptions handles it too.
    """


class ChainError(IkrlError, ValueError):
    """The kinematic structure cannot make a chain (no movable joint, ambiguous tip, ...).

    ``source`` is where the structure came from (a URDF path, ``"<string>"``, or a
    description given by the caller).
    """

    def __init__(self, message: str, *, source: str = "<chain>") -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class UnknownLinkError(ChainError, LookupError):
    """A base or tip link name that the robot does not have."""

    def __init__(self, link: str, role: str, known: Iterable[str], *, source: str = "<chain>") -> None:
        known = sorted(known)
        hint = closest(link, known)
        suggestion = f" Did you mean {hint!r}?" if hint else ""
        super().__init__(
            f"unknown {role} link {link!r}.{suggestion} Links: {', '.join(known)}",
            source=source,
        )
        self.link = link
        self.role = role


class UnknownNameError(IkrlError, LookupError):
    """A name (robot, reward, sampler, ...) that nothing provides; suggests the closest."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        hint = closest(name, known)
        suggestion = f" Did you mean {hint!r}?" if hint else ""
        super().__init__(f"unknown {kind} {name!r}.{suggestion} Known {kind}s: {', '.join(known) or 'none'}")
        self.kind = kind
        self.name = name
        self.known = known


class UnsupportedJointError(ChainError):
    """A joint type ikrl cannot move along (floating, planar, ...)."""


class NotAPoseError(IkrlError, ValueError):
    """A 4x4 given as a pose is not one: a non-finite entry, a rotation block that is not
    orthonormal with determinant +1, or a bottom row other than ``0 0 0 1``."""


class JointInputError(IkrlError, ValueError):
    """Joint values ``q`` given to a chain have the wrong width, dtype or device."""


class PluginError(IkrlError):
    """A plugin could not be loaded or registered; the message names its distribution."""


class DuplicateNameError(PluginError):
    """Two plugins provide the same name; the message names both distributions."""


class CheckpointError(IkrlError, ValueError):
    """A checkpoint or run folder is missing, unreadable, or not an ikrl checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was trained for other kinematics (another robot, or a changed URDF)."""


class TrainingError(IkrlError, RuntimeError):
    """A training run could not finish: a worker process it started failed (the message
    holds the end of the worker's log)."""


class GridError(IkrlError, ValueError):
    """An ablation grid cannot run as asked: its folder, configuration or backend."""


class TargetsFileError(IkrlError, ValueError):
    """A file of target poses (or of solutions to write) is missing, unreadable or malformed."""


class DestinationError(IkrlError, ValueError):
    """A result cannot be written where asked: the path is a folder (or a file) where the
    other is needed, its folder cannot be created, or it is not writable. Checked before
    any work starts."""


class MissingDependencyError(IkrlError, ImportError):
    """An optional dependency is needed for what was asked (names the pip extra)."""


class SpecError(IkrlError, ValueError):
    """A spec string (``robot+part+part...``) is not valid."""


class SpecSyntaxError(SpecError):
    """A spec string does not follow the grammar; the message points at the position."""


_UNSET = object()


class BadParameterError(SpecError):
    """A component got a parameter it does not accept, or a value it rejects.

    Built from a message, or from data (as the checks in :mod:`ikrl.util.checks` build it),
    which it keeps as fields for code and tests:

    >>> error = BadParameterError(component="near_target", parameter="noise", accepted="a number >= 0", value=-1)
    >>> str(error), error.parameter, error.value
    ('near_target: noise must be a number >= 0; got -1', 'noise', -1)
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        component: str | None = None,
        parameter: str | None = None,
        accepted: str | None = None,
        value: object = _UNSET,
    ) -> None:
        if message is None:
            message = f"{component}: {parameter} must be {accepted}; got {value!r}"
        super().__init__(message)
        self.component, self.parameter, self.accepted = component, parameter, accepted
        self.value = None if value is _UNSET else value


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (for "did you mean" hints), or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
