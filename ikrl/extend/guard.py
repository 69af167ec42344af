"""Plugin mistakes named where they happen: which component, which distribution, which line.

A component built from a plugin (a reward, sampler or transform) is wrapped in
:class:`Guarded`. It behaves as the component does (its attributes and ``repr`` are the
component's), but an exception raised inside the plugin's code becomes one
:class:`~ikrl.errors.PluginError` naming the component, its distribution, and the file and
line in the plugin where it was raised. Every caller (the environment, the trainers, the
checker, the CLI) then sees the same one-line message, never a bare traceback.

Example:
    >>> class Broken:
    ...     def __call__(self, before, after, success):
    ...         return after.positon  # a typo
    >>> reward = guard(Broken(), "reward 'broken' (mylab)")
    >>> from collections import namedtuple
    >>> reward(None, namedtuple("E", "position")(1.0), None)
    Traceback (most recent call last):
    ...
    ikrl.errors.PluginError: reward 'broken' (mylab) raised AttributeError: 'E' object has no attribute 'positon' (<doctest ...>:3, in __call__)
"""

from __future__ import annotations

import os
import sys
import traceback
from types import ModuleType, TracebackType
from typing import Any

from ikrl.errors import IkrlError, PluginError

__all__ = ["Guarded", "guard", "origin_of", "plugin_failure", "raised_at"]


class Guarded:
    """``inner`` with its calls guarded: see the module docstring. ``origin`` names it in
    messages, e.g. ``"reward 'huber' (ikrl-mylab)"``."""

    __slots__ = ("inner", "origin")

    def __init__(self, inner: Any, origin: str) -> None:
        self.inner = inner
        self.origin = origin

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.inner(*args, **kwargs)
        except IkrlError:
            raise  # a plugin's own named error already says what is wrong
        except Exception as exc:
            raise plugin_failure(self.origin, exc, self.inner) from exc

    def size(self, chain: Any) -> int:
        """A transform's ``size``, guarded like a call."""
        try:
            return self.inner.size(chain)
        except IkrlError:
            raise
        except Exception as exc:
            raise plugin_failure(f"{self.origin}.size()", exc, self.inner) from exc

    def __getattr__(self, name: str) -> Any:
        if name in Guarded.__slots__:  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __getstate__(self) -> tuple[Any, str]:
        return self.inner, self.origin

    def __setstate__(self, state: tuple[Any, str]) -> None:
        self.inner, self.origin = state

    def __repr__(self) -> str:
        return repr(self.inner)


def guard(component: Any, origin: str) -> Guarded:
    """``component`` wrapped in a :class:`Guarded` named ``origin`` (a guarded one is kept as it is)."""
    return component if isinstance(component, Guarded) else Guarded(component, origin)


def origin_of(component: Any, kind: str) -> str:
    """How messages name ``component``: its guard's origin, else ``kind`` and its class name."""
    if isinstance(component, Guarded):
        return component.origin
    return f"{kind} {type(component).__name__}"


def plugin_failure(origin: str, exc: BaseException, component: object = None) -> PluginError:
    """The :class:`PluginError` for ``exc`` raised inside ``origin``'s code, naming where."""
    message = " ".join(str(exc).split())
    where = raised_at(exc.__traceback__, component)
    return PluginError(f"{origin} raised {type(exc).__name__}: {message}{f' ({where})' if where else ''}")


def raised_at(tb: TracebackType | None, component: object = None) -> str:
    """``file:line, in function`` of the innermost frame of ``tb`` in the package that defines
    ``component`` (the plugin's own code), else of the innermost frame outside ikrl and the
    libraries it calls; ``""`` when there is no traceback."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    home = _package_folder(component)
    library = tuple(_package_folder(sys.modules.get(name)) for name in ("ikrl", "torch", "numpy", "tensordict", "torchrl"))
    library = tuple(folder for folder in library if folder)

    def inside(filename: str, folder: str) -> bool:
        filename = os.path.abspath(filename)
        return filename == folder or filename.startswith(folder + os.sep)

    # ikrl's own frames (the guard, the environment) are never the plugin's.
    outside = [f for f in frames if not any(inside(f.filename, lib) for lib in library)] or frames
    chosen = next((f for f in reversed(outside) if home and inside(f.filename, home)), outside[-1])
    return f"{chosen.filename}:{chosen.lineno}, in {chosen.name}"


def _package_folder(obj: object) -> str:
    """The folder of the top-level package (or the file) that defines ``obj``; ``""`` if unknown."""
    if obj is None:
        return ""
    module_name = obj.__name__ if isinstance(obj, ModuleType) else getattr(type(obj), "__module__", None)
    if not isinstance(module_name, str) or module_name in ("builtins", "__main__"):
        module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str):
        return ""
    top = sys.modules.get(module_name.split(".")[0])
    path = getattr(top, "__file__", None)
    if not path:
        return ""
    path = os.path.abspath(path)
    # A package's folder; a single-file module stands for itself (its folder may hold others).
    return os.path.dirname(path) if os.path.basename(path) == "__init__.py" else path
