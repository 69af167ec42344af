r"""MJCF loading: a thin adapter from MuJoCo's compiled model to :meth:`Chain.from_joints`.

MuJoCo's own compiler reads the file (``mujoco.MjModel.from_xml_path``), so every way MJCF
has of writing a pose or a joint is resolved exactly as MuJoCo resolves it: ``<default>``
classes and ``childclass``, ``<compiler angle>`` (MJCF's default is degrees) and
``eulerseq``, ``quat``, ``euler``, ``axisangle``, ``xyaxes`` and ``zaxis``, ``<frame>``,
``<include>``. ikrl reads only the compiled numbers (float64, metres and radians):
``body_pos``, ``body_quat``, ``body_parentid``, ``jnt_type``, ``jnt_bodyid``, ``jnt_pos``,
``jnt_axis``, ``jnt_range``, ``jnt_limited``, ``qpos0`` and ``site_pos``, ``site_quat``,
``site_bodyid``.

What becomes what:

* every body is a link named after it (``world`` is the world body; an unnamed body is
  ``body<id>``), and every named site a link named after it, fixed to its body (a site that
  shares a body's name is left out: the name means the body);
* a body without joints is welded to its parent (a fixed joint); a body's joints, in the
  order MuJoCo applies them, become consecutive :class:`Joint`\ s: ``hinge`` ->
  ``revolute`` (``continuous`` when it has no range), ``slide`` -> ``prismatic``; ``ball``
  and ``free`` joints cannot be on a chain (:class:`~ikrl.errors.UnsupportedJointError`);
* the joint values ``q`` are MuJoCo's ``qpos`` and the limits are ``jnt_range``, so a
  configuration means the same in both.

Frames. MuJoCo places a body at ``B = (body_pos, body_quat)`` in its parent's frame, then
moves it by each of its joints ``i = 1..k`` about (along) ``jnt_axis`` ``a_i`` through the
anchor ``jnt_pos`` ``p_i``, both in the body frame as moved by the joints before, by
``qpos_i - qpos0_i`` (``qpos0`` is the joint's ``ref``):
``T_parent_body = B  prod_i T(p_i) M_i(q_i - ref_i) T(-p_i)``. A :class:`Joint` turns about
an axis through its frame's origin, so the joint frame is put on the anchor:
``origin_1 = B T(p_1) M_1(-ref_1)``, ``origin_i = T(p_i - p_{i-1}) M_i(-ref_i)``, and a fixed
joint ``T(-p_k)`` takes the last anchor back to the body frame (left out when ``p_k = 0``).
The links between a body's joints (and the last anchor's, when it is not the body frame)
are named ``"<body>:<joint>"``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ikrl.errors import (
    ChainError,
    MissingDependencyError,
    MjcfError,
    UnknownLinkError,
    UnsupportedJointError,
    UrdfNotFoundError,
)
from ikrl.kinematics.chain import Chain, Joint
from ikrl.kinematics.se3 import quaternion_to_matrix, so3_exp

__all__ = ["WORLD", "MjcfRobot", "import_mujoco", "load_mjcf_chain", "read_mjcf"]

log = logging.getLogger(__name__)

#: The name MuJoCo gives the world body (body 0), the default base.
WORLD = "world"

# mjtJoint, as MuJoCo numbers it (mjJNT_FREE, mjJNT_BALL, mjJNT_SLIDE, mjJNT_HINGE): fixed
# by MuJoCo's C API since 1.0, so the adapter needs no import of mujoco to name them.
_MUJOCO_JOINT_TYPES = {0: "free", 1: "ball", 2: "slide", 3: "hinge"}


def import_mujoco(source: str) -> Any:
    """The ``mujoco`` module, or a :class:`~ikrl.errors.MissingDependencyError` naming the extra."""
    try:
        import mujoco
    except ImportError:
        raise MissingDependencyError(
            f"{source}: reading an MJCF file needs MuJoCo, which is not installed; install it with "
            'pip install "ikrl[mjcf]" (or pip install "mujoco>=3")'
        ) from None
    return mujoco


@dataclass(frozen=True)
class MjcfRobot:
    """What ikrl reads of a compiled MJCF model.

    ``joints`` describe the whole model for :meth:`Chain.from_joints` (origins float64,
    metres); ``links`` are every link they name. Per MuJoCo body id (0 is the world):
    ``bodies`` (names), ``parents`` (the parent's id; the world's is 0), ``body_joints``
    (the body's MuJoCo joints as ``(name, MuJoCo type, ikrl Joint)``, in MuJoCo's order).
    ``sites`` maps each site link to its body's id.
    """

    name: str
    joints: tuple[Joint, ...]
    links: tuple[str, ...]
    bodies: tuple[str, ...]
    parents: tuple[int, ...]
    body_joints: tuple[tuple[tuple[str, str, Joint], ...], ...]
    sites: dict[str, int]
    source: str

    def body_id(self, name: str) -> int | None:
        """The id of the body called ``name``, or None."""
        return self.bodies.index(name) if name in self.bodies else None


def _compile(mjcf: str | bytes | os.PathLike[str], source: str | None) -> tuple[Any, str]:
    """MuJoCo's compiled ``MjModel`` of a path or of XML text, and the source name."""
    path: Path | None = None
    text = ""
    if isinstance(mjcf, bytes):
        text = mjcf.decode("utf-8")
    elif isinstance(mjcf, str) and mjcf.lstrip().startswith("<"):
        text = mjcf
    elif isinstance(mjcf, str | os.PathLike):
        path = Path(mjcf)
    else:
        raise TypeError(f"mjcf must be a path or XML text; got {type(mjcf).__name__}")
    source = source or (str(path) if path is not None else "<string>")
    mujoco = import_mujoco(source)
    if path is not None and not path.is_file():
        raise UrdfNotFoundError("no such file (pass an MJCF path, or the XML text itself)", source=source)
    try:
        # A path, not its text: MuJoCo resolves <include> and asset files next to the file.
        model = mujoco.MjModel.from_xml_path(str(path)) if path is not None else mujoco.MjModel.from_xml_string(text)
    except Exception as exc:  # MuJoCo raises ValueError with its compiler's message
        message = " ".join(str(exc).split())
        hint = ""
        if "mass and inertia of moving bodies" in message:
            hint = (
                '; MuJoCo needs a mass for every moving body: give each an <inertial>, or, for a '
                'kinematics-only file, <compiler boundmass="1e-3" boundinertia="1e-9"/>'
            )
        raise MjcfError(f"MuJoCo cannot compile it: {message}{hint}", source=source) from exc
    return model, source


def _pose(position: Any, quaternion: Any) -> Tensor:
    """4x4 float64 pose of a MuJoCo ``pos`` (metres) and ``quat`` (w, x, y, z)."""
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = quaternion_to_matrix(torch.tensor([float(v) for v in quaternion], dtype=torch.float64))
    pose[:3, 3] = torch.tensor([float(v) for v in position], dtype=torch.float64)
    return pose


def _translation(offset: Tensor) -> Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 3] = offset
    return pose


def _motion(kind: str, axis: Tensor, value: float) -> Tensor:
    """The 4x4 motion of a hinge (turn by ``value`` rad about ``axis``) or a slide (``value``
    metres along it); the identity for other joints."""
    pose = torch.eye(4, dtype=torch.float64)
    if kind == "hinge":
        pose[:3, :3] = so3_exp(axis * value)
    elif kind == "slide":
        pose[:3, 3] = axis * value
    return pose


def read_mjcf(mjcf: str | bytes | os.PathLike[str], *, source: str | None = None) -> MjcfRobot:
    """Compile an MJCF model (a path, or the XML text) with MuJoCo and describe it as
    :class:`Joint`\\ s, without building a chain (see the module docstring for the frames).

    ``source`` names the model in messages (default: the path, or ``"<string>"``).
    """
    model, source = _compile(mjcf, source)
    mujoco = import_mujoco(source)

    def name(kind: Any, index: int, fallback: str) -> str:
        return mujoco.mj_id2name(model, kind, index) or fallback

    f64 = torch.float64
    bodies = tuple(name(mujoco.mjtObj.mjOBJ_BODY, b, f"body{b}") for b in range(model.nbody))
    parents = tuple(int(model.body_parentid[b]) for b in range(model.nbody))
    joints: list[Joint] = []
    links = list(bodies)
    body_joints: list[tuple[tuple[str, str, Joint], ...]] = [()]
    for b in range(1, model.nbody):
        body, parent = bodies[b], bodies[parents[b]]
        placement = _pose(model.body_pos[b], model.body_quat[b])
        first, count = int(model.body_jntadr[b]), int(model.body_jntnum[b])
        if count == 0:
            joints.append(Joint(f"{body}/weld", "fixed", parent, body, placement))
            body_joints.append(())
            continue
        link, previous_anchor, own = parent, torch.zeros(3, dtype=f64), []
        for n, j in enumerate(range(first, first + count)):
            joint = name(mujoco.mjtObj.mjOBJ_JOINT, j, f"joint{j}")
            kind = _MUJOCO_JOINT_TYPES.get(int(model.jnt_type[j]), f"type {int(model.jnt_type[j])}")
            anchor = torch.tensor([float(v) for v in model.jnt_pos[j]], dtype=f64)
            axis = torch.tensor([float(v) for v in model.jnt_axis[j]], dtype=f64)
            ref = float(model.qpos0[int(model.jnt_qposadr[j])]) if kind in ("hinge", "slide") else 0.0
            limited = bool(model.jnt_limited[j])
            lower, upper = (float(model.jnt_range[j][0]), float(model.jnt_range[j][1])) if limited else (None, None)
            last = n == count - 1
            child = body if last and not bool(anchor.any()) else f"{body}:{joint}"
            # Joint values are qpos: MuJoCo moves by qpos - ref, so the frame is turned back by ref.
            origin = (placement if n == 0 else torch.eye(4, dtype=f64)) @ _translation(anchor - previous_anchor)
            origin = origin @ _motion(kind, axis, -ref)
            ikrl_type = {"hinge": "revolute" if limited else "continuous", "slide": "prismatic"}.get(kind, kind)
            ikrl_joint = Joint(
                joint, ikrl_type, link, child, origin, axis=(float(axis[0]), float(axis[1]), float(axis[2])),
                lower=lower, upper=upper,
            )  # fmt: skip
            joints.append(ikrl_joint)
            own.append((joint, kind, ikrl_joint))
            if child != body:
                links.append(child)
            link, previous_anchor = child, anchor
        if link != body:  # from the last anchor back to the body frame
            joints.append(Joint(f"{body}/anchor", "fixed", link, body, _translation(-previous_anchor)))
        body_joints.append(tuple(own))
    sites: dict[str, int] = {}
    for s in range(model.nsite):
        site = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s)
        if not site or site in bodies or site in sites:
            continue  # an unnamed site cannot be asked for; a body's name means the body
        body_id = int(model.site_bodyid[s])
        joints.append(Joint(f"{site}/site", "fixed", bodies[body_id], site, _pose(model.site_pos[s], model.site_quat[s])))
        sites[site] = body_id
        links.append(site)
    if model.neq:
        log.debug("%s: %d equality constraints ignored (kinematics follows joints only)", source, model.neq)
    names = bytes(model.names)
    robot_name = names[: names.index(b"\0")].decode("utf-8") if b"\0" in names else ""
    return MjcfRobot(
        name=robot_name or (Path(source).stem if source != "<string>" else "robot"),
        joints=tuple(joints), links=tuple(links), bodies=bodies, parents=parents,
        body_joints=tuple(body_joints), sites=sites, source=source,
    )  # fmt: skip


def _default_tip(robot: MjcfRobot, base: int) -> str:
    """The one body below ``base`` that has joints and no jointed body below it."""
    n = len(robot.bodies)
    below = [False] * n  # MuJoCo numbers bodies so that a parent comes before its children
    for b in range(1, n):
        below[b] = below[robot.parents[b]] or robot.parents[b] == base
    moving_below = [False] * n
    for b in range(n - 1, 0, -1):
        moving_below[robot.parents[b]] |= bool(robot.body_joints[b]) or moving_below[b]
    ends = [b for b in range(1, n) if below[b] and robot.body_joints[b] and not moving_below[b]]
    where = f"below base body {robot.bodies[base]!r}"
    if not ends:
        raise ChainError(f"no body with a joint {where}; nothing to move", source=robot.source)
    if len(ends) > 1:
        above = [set(_ancestors(robot, b)) for b in ends]
        common = next(b for b in _ancestors(robot, ends[0]) if all(b in a for a in above))
        raise ChainError(
            f"cannot choose a default tip: {where} the jointed bodies end in {len(ends)} bodies "
            f"({', '.join(sorted(robot.bodies[b] for b in ends))}). Pass tip= one of them (or one of "
            f"their sites), or a body above them such as {robot.bodies[common]!r}",
            source=robot.source,
        )
    return robot.bodies[ends[0]]


def _ancestors(robot: MjcfRobot, body: int) -> list[int]:
    """``body`` and the bodies above it, up to the world."""
    out = [body]
    while out[-1] != 0:
        out.append(robot.parents[out[-1]])
    return out


def _check_path(robot: MjcfRobot, base: int, tip: str) -> None:
    """The tip is below the base, and every joint between them can be on a chain."""
    tip_body = robot.sites[tip] if tip not in robot.bodies else robot.bodies.index(tip)
    above = _ancestors(robot, tip_body)
    if base not in above:
        names = ", ".join(robot.bodies[b] for b in (above[1:] if tip in robot.bodies else above))
        raise ChainError(
            f"tip {tip!r} is not below base body {robot.bodies[base]!r} (the bodies above it are {names}); "
            "pass a base that holds the tip",
            source=robot.source,
        )
    for b in above[: above.index(base)]:
        for joint, kind, ikrl_joint in robot.body_joints[b]:
            if kind not in ("hinge", "slide"):
                raise UnsupportedJointError(
                    f"joint {joint!r} of body {robot.bodies[b]!r} is a MuJoCo {kind} joint; a chain moves only "
                    "along hinge and slide joints (choose a base and tip that avoid it)",
                    source=robot.source,
                )
            if kind == "slide" and ikrl_joint.lower is None:
                raise ChainError(
                    f"slide joint {joint!r} of body {robot.bodies[b]!r} has no range; a chain needs its "
                    'limits: give it range="LOWER UPPER" (metres)',
                    source=robot.source,
                )


def load_mjcf_chain(
    mjcf: str | bytes | os.PathLike[str],
    *,
    base: str | None = None,
    tip: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    source: str | None = None,
) -> Chain:
    """Load the chain from body ``base`` to body or site ``tip`` of an MJCF model (a path,
    or the XML text), compiled by MuJoCo.

    ``base`` defaults to the world body (``"world"``); ``tip`` to the one body below it that
    has joints and no jointed body below it. Poses are of the tip's frame (the body's, or
    the site's) in the base body's frame, in metres, exactly MuJoCo's
    ``xpos``/``xmat`` of the tip seen from the base's, for ``q`` = MuJoCo's ``qpos`` of the
    chain's joints (from base to tip, in MuJoCo's order). Hinges with a range are
    ``revolute``, without one ``continuous``; slides are ``prismatic`` and need a range.
    Needs the ``mujoco`` package (``pip install "ikrl[mjcf]"``).
    """
    robot = read_mjcf(mjcf, source=source)
    if base is None:
        base = WORLD
    base_id = robot.body_id(base)
    if base_id is None:
        raise UnknownLinkError(base, "base", robot.bodies, source=robot.source)
    if tip is None:
        tip = _default_tip(robot, base_id)
    elif tip not in robot.bodies and tip not in robot.sites:
        raise UnknownLinkError(tip, "tip", [*robot.bodies, *robot.sites], source=robot.source)
    if tip == base:
        raise ChainError(f"base and tip are the same body ({base!r})", source=robot.source)
    _check_path(robot, base_id, tip)
    return Chain.from_joints(
        robot.joints, links=robot.links, base=base, tip=tip, name=robot.name, dtype=dtype, device=device,
        source=robot.source,
    )  # fmt: skip
