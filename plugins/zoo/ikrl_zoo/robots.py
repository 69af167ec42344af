"""Building a zoo robot: its URDF from example-robot-data, cut from base to tip, limits checked.

Joint limits are the URDF's ``<limit>`` values, the ones ikrl's loader and Pinocchio read,
unless the catalogue says otherwise, and they are checked before a chain is handed out,
because a URDF's limits are sometimes not the joint's:

* a revolute or prismatic joint with ``lower == upper`` (URDFs write ``0 0`` when their
  author left the limits unset; example-robot-data's double pendulum does) cannot move,
  so every target would be drawn with it fixed and every policy would learn nothing for it.
  It is refused with a :class:`~ikrl.errors.ChainError` naming the joint; the fix is a
  ``limits`` entry in ``zoo.toml`` with the joint's real range, never a silent guess;
* a revolute joint with more than two turns of range (4 pi) is a continuous joint written
  as revolute, or a placeholder; it is refused the same way;
* soft limits (``<safety_controller soft_lower_limit soft_upper_limit>``, the range a
  controller keeps to, inside the hard one) are offered, not imposed: a robot whose URDF has
  them on its chain (the TIAGo and PR2 arms) takes ``soft_limits=true``.

The chain is float64 on the CPU, like ikrl's own robots (the environment converts it), is
named after the robot (not the URDF's ``<robot name>``: xArm's says ``UF_ROBOT``) and
declares the catalogue's tolerances and step sizes as its environments' defaults.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import torch

from ikrl import Chain
from ikrl.errors import BadParameterError, ChainError
from ikrl.kinematics.urdf import read_urdf_joints
from ikrl_zoo.catalog import ZooRobot
from ikrl_zoo.data import urdf_path

__all__ = ["MAX_REVOLUTE_RANGE", "build_chain", "check_ranges", "factory", "soft_limits_of"]

#: The widest range a revolute joint may have (radians): two full turns, as UR arms have.
MAX_REVOLUTE_RANGE = 4 * math.pi + 1e-6


def soft_limits_of(path: Path) -> dict[str, tuple[float, float]]:
    """The ``<safety_controller>`` soft limits of a URDF's joints that declare both,
    intersected with their ``<limit>``: joint -> (lower, upper)."""
    out = {}
    for joint in ET.parse(path).getroot().findall("joint"):  # not a <transmission>'s <joint>
        safety, limit = joint.find("safety_controller"), joint.find("limit")
        if safety is None or limit is None or joint.get("type") not in ("revolute", "prismatic"):
            continue
        soft_lower, soft_upper = safety.get("soft_lower_limit"), safety.get("soft_upper_limit")
        lower, upper = limit.get("lower"), limit.get("upper")
        if soft_lower is None or soft_upper is None or lower is None or upper is None:
            continue
        out[str(joint.get("name"))] = (max(float(soft_lower), float(lower)), min(float(soft_upper), float(upper)))
    return out


def check_ranges(chain: Chain, robot: str, source: str) -> None:
    """Refuse a chain with a joint that cannot move, or a revolute one with more than two
    turns of range (see the module docstring): a :class:`~ikrl.errors.ChainError`."""
    lower, upper = chain.lower.double().tolist(), chain.upper.double().tolist()
    for name, kind, lo, hi in zip(chain.joint_names, chain.joint_types, lower, upper, strict=True):
        if kind == "continuous":
            continue
        fix = (
            f"give its real range in zoo.toml (limits = {{ {name} = [lower, upper] }} in the entry of robot {robot!r}), "
            "or end the chain before it"
        )
        if hi - lo <= 0:
            raise ChainError(
                f"robot {robot!r}: {kind} joint {name!r} has limits [{lo:g}, {hi:g}], so it cannot move (URDFs write "
                f"this when the limits were left unset); {fix}",
                source=source,
            )
        if kind == "revolute" and hi - lo > MAX_REVOLUTE_RANGE:
            raise ChainError(
                f"robot {robot!r}: revolute joint {name!r} has limits [{lo:g}, {hi:g}], more than two turns "
                f"({hi - lo:.3f} rad > 4 pi): a continuous joint written as revolute, or a placeholder; {fix}",
                source=source,
            )


def _limits(robot: ZooRobot, path: Path, soft_limits: bool) -> Mapping[str, tuple[float, float]]:
    """The limits that replace the URDF's: soft ones if asked, then the catalogue's own."""
    replaced = dict(soft_limits_of(path)) if soft_limits else {}
    return replaced | dict(robot.limits)


def build_chain(
    robot: ZooRobot, *, soft_limits: bool = False, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> Chain:
    """The chain of ``robot`` from its URDF in example-robot-data (found through the
    installed distribution: a :class:`~ikrl.errors.MissingDependencyError` without it),
    limits checked (module docstring), declaring its environments' defaults."""
    if not isinstance(soft_limits, bool):
        raise BadParameterError(component=robot.name, parameter="soft_limits", accepted="true or false", value=soft_limits)
    if soft_limits and not robot.soft_limits:
        raise BadParameterError(
            f"{robot.name}: soft_limits=true, but its URDF ({robot.urdf}) declares no soft limits on the joints from "
            f"{robot.base} to {robot.tip}; leave soft_limits out"
        )
    path = urdf_path(robot.urdf, robot=robot.name)
    _, joints, links, source = read_urdf_joints(path)
    limits = _limits(robot, path, soft_limits)
    joints = [replace(j, lower=limits[j.name][0], upper=limits[j.name][1]) if j.name in limits else j for j in joints]
    chain = Chain.from_joints(
        joints, links=links, base=robot.base, tip=robot.tip, name=robot.name, dtype=torch.float64, source=source
    )
    if chain.dof != robot.dof:
        raise ChainError(
            f"robot {robot.name!r}: the chain {robot.base} -> {robot.tip} has {chain.dof} joints "
            f"({', '.join(chain.joint_names)}); ikrl-zoo expects {robot.dof}, so this URDF is not the one the zoo was "
            "written for (another example-robot-data version?); update the robot's entry in zoo.toml",
            source=source,
        )
    off_chain = sorted(set(robot.limits) - set(chain.joint_names))
    if off_chain:
        raise ChainError(
            f"robot {robot.name!r}: zoo.toml gives limits for {', '.join(off_chain)}, which "
            f"{'is' if len(off_chain) == 1 else 'are'} not on the chain {robot.base} -> {robot.tip} "
            f"(its joints: {', '.join(chain.joint_names)})",
            source=source,
        )
    check_ranges(chain, robot.name, source)
    prismatic = [kind == "prismatic" for kind in chain.joint_types]
    max_delta: float | list[float] = (
        [robot.prismatic_max_delta if p else robot.max_delta for p in prismatic] if any(prismatic) else robot.max_delta
    )
    chain = chain.with_env_defaults(
        position_tolerance=robot.position_tolerance, rotation_tolerance=robot.rotation_tolerance, max_delta=max_delta
    )
    return chain if (dtype, torch.device(device)) == (torch.float64, torch.device("cpu")) else chain.to(device, dtype)


def factory(robot: ZooRobot) -> Callable[..., Chain]:
    """The factory the ``ikrl_robots`` hook hands out for ``robot``: no parameters, or
    ``soft_limits`` for a robot whose URDF has soft limits on its chain. It reads nothing
    until called, so listing the robots needs neither the URDF nor example-robot-data."""

    def with_soft_limits(*, soft_limits: bool = False) -> Chain:
        return build_chain(robot, soft_limits=soft_limits)

    def without() -> Chain:
        return build_chain(robot)

    # The parameter only where it means something: ikrl checks a spec's parameters against
    # the signature, so ur10(soft_limits=true) is an error naming what ur10 accepts.
    load: Callable[..., Chain] = with_soft_limits if robot.soft_limits else without
    load.__name__ = load.__qualname__ = robot.name
    load.__doc__ = (
        f"{robot.title}: {robot.base} -> {robot.tip} of example-robot-data's {robot.urdf}, {robot.dof} joints "
        f"(float64, CPU). {robot.notes[:1].upper()}{robot.notes[1:]}."
    )
    return load
