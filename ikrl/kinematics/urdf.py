"""URDF loading: a thin adapter from urdf-parser-py's model to :meth:`Chain.from_joints`.

Every number is read as a Python float (float64) and stays float64 until the chain is
built, so the chain's dtype is the only rounding step. :func:`load_chain` is also the one
entry point for the other robot descriptions: a ``.xacro`` file is expanded first
(:mod:`ikrl.kinematics.xacro`), and an MJCF model (root ``<mujoco>``) goes to
:mod:`ikrl.kinematics.mjcf`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from urdf_parser_py import urdf as urdf_model
from urdf_parser_py.xml_reflection import core as xml_core

from ikrl.errors import UrdfError, UrdfNotFoundError, XacroError
from ikrl.kinematics.chain import Chain, Joint, Mimic
from ikrl.kinematics.mjcf import load_mjcf_chain
from ikrl.kinematics.se3 import rpy_to_matrix
from ikrl.kinematics.xacro import expand_xacro, is_xacro_path
from ikrl.util.checks import check_device, check_dtype

__all__ = ["load_chain", "read_urdf_joints"]

log = logging.getLogger(__name__)
_parser_lock = threading.Lock()


@contextmanager
def _parser_messages_to_debug_log(source: str) -> Iterator[None]:
    """urdf-parser-py prints a line to stderr for every tag it does not know
    (transmissions, Gazebo extensions, ...). Those are normal in real URDFs: route them
    to this module's debug log instead. Its hook is a module global, hence the lock."""
    with _parser_lock:
        previous = xml_core.on_error
        xml_core.on_error = lambda message: log.debug("%s: %s", source, message)
        try:
            yield
        finally:
            xml_core.on_error = previous


def _read_text(urdf: str | bytes | os.PathLike[str]) -> tuple[str, str]:
    """(XML text, source name) of a path or of XML text."""
    if isinstance(urdf, bytes):
        return urdf.decode("utf-8"), "<string>"
    if isinstance(urdf, str) and urdf.lstrip().startswith("<"):
        return urdf, "<string>"
    if not isinstance(urdf, (str, os.PathLike)):
        raise TypeError(f"urdf must be a path or XML text; got {type(urdf).__name__}")
    path = Path(urdf)
    source = str(path)
    try:
        return path.read_text(encoding="utf-8"), source
    except FileNotFoundError:
        raise UrdfNotFoundError("no such file (pass a URDF path, or the XML text itself)", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UrdfError(f"cannot read the file: {exc}", source=source) from exc


def _origin(joint: str, origin: urdf_model.Pose | None) -> torch.Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    if origin is None:
        return pose
    values = [*(origin.xyz or ()), *(origin.rpy or ())]
    if not all(math.isfinite(float(v)) for v in values):
        # Every pose past this joint would be NaN, silently.
        raise UrdfError(f"joint {joint!r}: <origin xyz rpy> must be finite numbers; got xyz={origin.xyz}, rpy={origin.rpy}")
    if origin.rpy is not None:
        pose[:3, :3] = rpy_to_matrix(torch.tensor(origin.rpy, dtype=torch.float64))
    if origin.xyz is not None:
        pose[:3, 3] = torch.tensor(origin.xyz, dtype=torch.float64)
    return pose


def _parse(text: str, source: str) -> ET.Element:
    """The root element of a robot description's XML text."""
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise UrdfError(f"not well-formed XML: {exc}", source=source) from exc


def _kinematic_elements(robot: ET.Element, source: str) -> ET.Element:
    """The URDF's ``<robot>`` element (changed in place) with only what kinematics reads:
    links and joints.

    Visuals, collisions, inertials, materials, transmissions and extensions are dropped
    before urdf-parser-py sees them: it rejects, for instance, an old-style transmission
    without ``<type>`` or a texture without a file name, none of which moves the arm.
    What was dropped goes to the debug log.
    """
    if robot.tag != "robot":
        raise UrdfError(
            f"the root element is <{robot.tag}>; a URDF's is <robot> (an MJCF model's is <mujoco>)", source=source
        )
    dropped: dict[str, int] = {}
    for element in list(robot):
        if element.tag == "joint":
            continue
        if element.tag == "link":
            for child in list(element):
                dropped[f"link/{child.tag}"] = dropped.get(f"link/{child.tag}", 0) + 1
                element.remove(child)
            continue
        dropped[str(element.tag)] = dropped.get(str(element.tag), 0) + 1
        robot.remove(element)
    if dropped:
        log.debug("%s: not used by kinematics, ignored: %s", source, ", ".join(f"{n} <{t}>" for t, n in dropped.items()))
    return robot


def read_urdf_joints(urdf: str | bytes | os.PathLike[str]) -> tuple[str, list[Joint], list[str], str]:
    """Parse a URDF into ``(robot name, joints, link names, source)`` without building a chain."""
    text, source = _read_text(urdf)
    return _urdf_joints(_parse(text, source), source)


def _urdf_joints(root: ET.Element, source: str) -> tuple[str, list[Joint], list[str], str]:
    element = _kinematic_elements(root, source)
    try:
        with _parser_messages_to_debug_log(source):
            robot = urdf_model.URDF.from_xml_string(ET.tostring(element, encoding="unicode"))
    except Exception as exc:  # urdf-parser-py raises many types; name the file and its message
        raise UrdfError(f"not a valid URDF: {type(exc).__name__}: {exc}", source=source) from exc
    joints = []
    for j in robot.joints:
        limit = j.limit
        mimic = None
        if j.mimic is not None:
            mimic = Mimic(
                joint=j.mimic.joint,
                multiplier=1.0 if j.mimic.multiplier is None else float(j.mimic.multiplier),
                offset=0.0 if j.mimic.offset is None else float(j.mimic.offset),
            )
        joints.append(
            Joint(
                name=j.name,
                type=j.type,
                parent=j.parent,
                child=j.child,
                origin=_origin(j.name, j.origin),
                axis=(1.0, 0.0, 0.0) if j.axis is None else _axis(j.name, j.axis),
                lower=None if limit is None or limit.lower is None else float(limit.lower),
                upper=None if limit is None or limit.upper is None else float(limit.upper),
                mimic=mimic,
            )
        )
    return robot.name, joints, [link.name for link in robot.links], source


def load_chain(
    urdf: str | bytes | os.PathLike[str],
    *,
    base: str | None = None,
    tip: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    xacro_args: Mapping[str, object] | None = None,
) -> Chain:
    """Load the chain from ``base`` to ``tip`` of a robot description: a URDF, a xacro file
    or an MJCF model, given as a path or (URDF, MJCF) as the XML text.

    Poses are of the tip frame in the base frame (metres), for joint values ``q`` from base
    to tip (radians, metres); see :class:`Chain`. The format is told by the file, not by
    an option:

    * **URDF** (root ``<robot>``): ``base`` defaults to the root link, ``tip`` to the only
      leaf of the movable chain (see :meth:`Chain.from_joints`). Supports revolute,
      continuous, prismatic and fixed joints and mimic joints; floating and planar joints
      may exist elsewhere in the tree. Messages about URDF tags ikrl does not use go to the
      ``ikrl.kinematics.urdf`` debug log.
    * **xacro** (a path ending ``.xacro``, e.g. ``robot.urdf.xacro``): expanded without ROS
      by the ``xacro`` package (``pip install "ikrl[xacro]"``), ``xacro_args`` giving its
      ``<xacro:arg>`` values (``{"prefix": "left_"}``, as ``prefix:=left_`` on xacro's
      command line), then read as the URDF (or MJCF) it expands to. ``$(find PKG)`` and
      ``package://PKG/`` includes are found beside the file or on ``ROS_PACKAGE_PATH`` /
      ``AMENT_PREFIX_PATH`` (:func:`ikrl.kinematics.xacro.find_package`); a package that is
      not found is an :class:`~ikrl.errors.UnresolvedPackageError` naming it.
    * **MJCF** (root ``<mujoco>``, usually ``.xml``): compiled by MuJoCo (``pip install
      "ikrl[mjcf]"``), so defaults, angle units, Euler sequences and every orientation
      attribute mean what they mean to MuJoCo. ``base`` is a body (default: the world
      body), ``tip`` a body or a site (default: the one body below the base with joints and
      no jointed body below it); ``q`` is MuJoCo's ``qpos`` of those joints. See
      :mod:`ikrl.kinematics.mjcf`.

    A missing optional package is a :class:`~ikrl.errors.MissingDependencyError` naming the
    extra to install.

    Examples:
        >>> import ikrl_robots
        >>> folder = ikrl_robots.info("panda").urdf.parent
        >>> from_urdf = load_chain(folder / "panda.urdf", tip="panda_link8", dtype=torch.float64)
        >>> from_mjcf = load_chain(folder / "panda.xml", base="panda_link0", tip="panda_link8", dtype=torch.float64)
        >>> from_mjcf.joint_names == from_urdf.joint_names
        True
        >>> q = torch.tensor([0.1, -0.4, 0.2, -2.0, 0.3, 1.5, 0.6], dtype=torch.float64)
        >>> bool((from_mjcf.forward_kinematics(q) - from_urdf.forward_kinematics(q)).abs().max() < 1e-12)
        True
    """
    if not isinstance(urdf, str | bytes | os.PathLike):
        raise UrdfError(
            f"urdf must be a path (str or os.PathLike) or the XML text (str or bytes); got {type(urdf).__name__} {urdf!r:.60}",
            source="load_chain",
        )
    for role, link in (("base", base), ("tip", tip)):
        if link is not None and not isinstance(link, str):
            raise UrdfError(f"{role} must be a link name (a str) or None; got {type(link).__name__} {link!r:.60}", source="load_chain")
    check_dtype("load_chain", dtype)
    check_device(device, meta=True)
    if is_xacro_path(urdf):
        path = Path(urdf)
        text, source = expand_xacro(path, xacro_args), str(path)
        root = _parse(text, source)
        if root.tag == "mujoco":  # xacro can write MJCF too
            return load_mjcf_chain(text, base=base, tip=tip, dtype=dtype, device=device, source=source)
        name, joints, links, source = _urdf_joints(root, source)
    else:
        text, source = _read_text(urdf)
        if xacro_args is not None:
            raise XacroError(
                "xacro_args were given, but this is not a xacro file (a path whose name ends in .xacro); "
                "pass the .xacro file, or leave xacro_args out",
                source=source,
            )
        root = _parse(text, source)
        if root.tag == "mujoco":
            # The path itself where there is one: MuJoCo finds included and asset files beside it.
            description = urdf if isinstance(urdf, os.PathLike) or source != "<string>" else text
            return load_mjcf_chain(description, base=base, tip=tip, dtype=dtype, device=device, source=source)
        name, joints, links, source = _urdf_joints(root, source)
    return Chain.from_joints(
        joints, links=links, base=base, tip=tip, name=name, dtype=dtype, device=device, source=source
    )


def _axis(joint: str, values) -> tuple[float, float, float]:
    """A URDF joint's ``<axis xyz>`` as three floats (urdf-parser-py gives a list)."""
    if len(values) != 3:
        raise UrdfError(f"joint {joint!r}: <axis xyz> must hold 3 numbers; got {list(values)}")
    x, y, z = (float(a) for a in values)
    return (x, y, z)
