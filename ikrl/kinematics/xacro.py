"""xacro expansion without ROS: a ``.xacro`` file (``robot.urdf.xacro``) -> URDF text.

The ``xacro`` package (ROS's own xacro, published on PyPI by its maintainers) expands
macros, properties, ``${...}`` expressions, ``<xacro:arg>`` and includes. What it would ask
ROS for, ikrl finds itself (:func:`find_package`): the folder of a ROS package named by
``$(find PKG)`` or by a ``package://PKG/...`` include. A package that cannot be found is an
:class:`~ikrl.errors.UnresolvedPackageError` naming it. ``package://`` file names left in
the expanded URDF (meshes) are not resolved: kinematics never reads them.
"""

from __future__ import annotations

import glob
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeGuard

from ikrl.errors import MissingDependencyError, UnresolvedPackageError, UrdfNotFoundError, XacroError, closest

__all__ = ["expand_xacro", "find_package", "is_xacro_path"]

# xacro keeps its state (the file stack, the arguments, the include list) in module globals,
# and ikrl swaps two of its functions while it expands: one expansion at a time.
_xacro_lock = threading.Lock()
_PACKAGE_URL = "package://"


def is_xacro_path(description: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``description`` is a path (not XML text) whose name ends in ``.xacro``."""
    if isinstance(description, str):
        return not description.lstrip().startswith("<") and description.endswith(".xacro")
    return isinstance(description, os.PathLike) and os.fspath(description).endswith(".xacro")


def _import_xacro(source: str) -> Any:
    try:
        import xacro
        from xacro import substitution_args
    except ImportError:
        raise MissingDependencyError(
            f"{source}: expanding a xacro file needs the xacro package, which is not installed; install it "
            'with pip install "ikrl[xacro]" (or expand it with ROS\'s xacro and load the URDF)'
        ) from None
    return xacro, substitution_args


def _package_name(package_xml: Path) -> str | None:
    try:
        return (ET.parse(package_xml).getroot().findtext("name") or "").strip() or None
    except (OSError, ET.ParseError):
        return None


def _names(folder: Path, package: str) -> bool:
    return _package_name(folder / "package.xml") == package


def find_package(package: str, near: Path) -> Path | None:
    """The folder of ROS package ``package`` (the one holding its ``package.xml``), or None.

    Looked for, in order: a folder above ``near`` (the xacro file) whose ``package.xml``
    names the package, or a folder called ``package`` beside one of those (a repository
    holding several packages); then, for each entry of ``$ROS_PACKAGE_PATH``, the entry
    itself or a folder one or two levels below it; then ``PREFIX/share/package`` for each
    ``PREFIX`` on ``$AMENT_PREFIX_PATH`` whose ament index lists the package (ROS 2).
    """
    for folder in Path(near).resolve().parents:
        if _names(folder, package):
            return folder
        if _names(folder / package, package):
            return folder / package
    for entry in filter(None, os.environ.get("ROS_PACKAGE_PATH", "").split(os.pathsep)):
        root = Path(entry)
        candidates = [root, *(Path(p).parent for p in sorted(glob.glob(str(root / "*" / "package.xml"))))]
        candidates += [Path(p).parent for p in sorted(glob.glob(str(root / "*" / "*" / "package.xml")))]
        for folder in candidates:
            if _names(folder, package):
                return folder
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / package).is_file():
            return Path(prefix) / "share" / package
    return None


def _unresolved(reference: str, package: str, source: str) -> UnresolvedPackageError:
    where = "; ".join(
        f"{var}={os.environ[var]!r}" if os.environ.get(var) else f"{var} is not set"
        for var in ("ROS_PACKAGE_PATH", "AMENT_PREFIX_PATH")
    )
    return UnresolvedPackageError(
        f"{reference} names ROS package {package!r}, which cannot be found: no package.xml naming it in "
        f"the folders above the file or beside them, nor on the ROS paths ({where}). Put the folder holding "
        f"{package!r} on ROS_PACKAGE_PATH, or expand the file with ROS's xacro and load the URDF",
        package=package,
        source=source,
    )


@contextmanager
def _ros_free(xacro: Any, substitution_args: Any, find: Callable[[str, str], str]) -> Iterator[None]:
    """xacro with ``find(package, reference)`` instead of its ROS look-ups.

    xacro's only hooks are module functions: ``substitution_args._eval_find`` serves
    ``$(find PKG)`` (it imports ROS 2's ament index), ``_eval_dict['find']`` serves
    ``$(eval find('PKG'))``, and ``abs_filename_spec`` makes include file names absolute
    (it knows nothing of ``package://``). All three are put back afterwards.
    """
    eval_find, eval_dict_find, abs_filename_spec = (
        substitution_args._eval_find, substitution_args._eval_dict.get("find"), xacro.abs_filename_spec,
    )  # fmt: skip

    def include_file(spec: str) -> str:
        if spec.startswith(_PACKAGE_URL):
            package, _, rest = spec[len(_PACKAGE_URL) :].partition("/")
            return os.path.join(find(package, spec), rest)
        return abs_filename_spec(spec)

    substitution_args._eval_find = lambda package: find(package, f"$(find {package})")
    substitution_args._eval_dict["find"] = substitution_args._eval_find
    xacro.abs_filename_spec = include_file
    try:
        yield
    finally:
        substitution_args._eval_find = eval_find
        substitution_args._eval_dict["find"] = eval_dict_find
        xacro.abs_filename_spec = abs_filename_spec


def _mappings(args: Mapping[str, object] | None, source: str) -> dict[str, str]:
    """xacro_args as xacro takes them (what ``name:=value`` gives on its command line)."""
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise TypeError(f"{source}: xacro_args must be a mapping of argument names to values; got {type(args).__name__}")
    out = {}
    for name, value in args.items():
        if not isinstance(name, str) or not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"{source}: xacro_args must map names (str) to strings or numbers; got {name!r}: {value!r}"
            )
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


_ARG_NAMES = (
    re.compile(r"<\s*[\w.-]+:arg\b[^>]*?\bname\s*=\s*[\"']([^\"']+)[\"']"),  # <xacro:arg name="...">
    re.compile(r"\$\(\s*arg\s+([^)\s]+)\s*\)"),  # $(arg name)
    re.compile(r"\bxacro\.arg\(\s*[\"']([^\"']+)[\"']"),  # ${xacro.arg('name')}
)


def _unknown_args(given: Mapping[str, str], files: list[str]) -> tuple[list[str], set[str]]:
    """The given argument names that none of ``files`` declares or uses, and the names they do."""
    known: set[str] = set()
    for file in dict.fromkeys(files):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for pattern in _ARG_NAMES:
            known.update(pattern.findall(text))
    return [name for name in given if name not in known], known


def _unknown_args_message(unknown: list[str], known: set[str]) -> str:
    hint = closest(unknown[0], known)
    suggestion = f" (did you mean {hint!r}?)" if hint else ""
    return (
        f"xacro_args {', '.join(map(repr, unknown))}{suggestion}: the file declares no such argument; "
        f"its arguments: {', '.join(sorted(known)) or 'none'}"
    )


def expand_xacro(path: str | os.PathLike[str], args: Mapping[str, object] | None = None) -> str:
    """The XML text (a URDF, or whatever the file expands to) of the xacro file at ``path``.

    ``args`` are the values of its ``<xacro:arg>`` arguments, as ``name:=value`` gives them
    on xacro's command line (numbers and booleans are written as xacro reads them); a name
    the file (with its includes) neither declares nor uses is an error, since a misspelt
    argument would silently leave its default in place. ``$(find PKG)`` and
    ``package://PKG/...`` includes are resolved by :func:`find_package`.

    Raises :class:`~ikrl.errors.UnresolvedPackageError` for a package that cannot be found,
    :class:`~ikrl.errors.XacroError` for what xacro cannot expand (with xacro's message),
    :class:`~ikrl.errors.MissingDependencyError` without the ``xacro`` package.
    """
    source = os.fspath(path)
    file = Path(path)
    xacro, substitution_args = _import_xacro(source)
    if not file.is_file():
        raise UrdfNotFoundError("no such file (pass the path of a .xacro file)", source=source)
    mappings = _mappings(args, source)
    unresolved: list[UnresolvedPackageError] = []

    def find(package: str, reference: str) -> str:
        folder = find_package(package, file)
        if folder is None:
            unresolved.append(_unresolved(reference, package, source))
            raise unresolved[-1]
        return str(folder)

    with _xacro_lock, _ros_free(xacro, substitution_args, find):
        first_include = len(xacro.all_includes)
        try:
            # A copy: xacro writes the defaults of <xacro:arg> into the mapping it is given.
            document = xacro.process_file(str(file.resolve()), mappings=dict(mappings))
            text = document.toxml()
        except Exception as exc:  # xacro raises XacroException, and lets others through
            if unresolved:
                raise unresolved[0] from None
            message = " ".join(str(exc).split()) or type(exc).__name__
            unknown, known = _unknown_args(mappings, [str(file), *xacro.all_includes[first_include:]])
            note = f" ({_unknown_args_message(unknown, known)})" if unknown else ""
            raise XacroError(f"xacro cannot expand it: {message}{note}", source=source) from exc
        finally:
            included = list(xacro.all_includes[first_include:])
            del xacro.all_includes[first_include:]  # xacro only ever appends to it
    unknown, known = _unknown_args(mappings, [str(file), *included])
    if unknown:
        raise XacroError(_unknown_args_message(unknown, known), source=source)
    return text
